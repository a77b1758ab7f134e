//! Helpers shared by the end-to-end tests: the real `alignbox` binary on a loopback port over a temp data dir.
#![allow(dead_code)]

pub mod api;
pub mod webdriver;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The binary under test.
pub fn alignbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_alignbox"))
}

/// The password `cli` gives accounts it adds (`users add` reads ALIGNBOX_PASSWORD).
pub const PASSWORD: &str = "pw-123456";

/// A model directory of trainer/tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../trainer/tests/fixtures").join(name)
}

/// Runs `alignbox ARGS --data-dir DATA`; (success, stdout, stderr).
pub fn cli(args: &[&str], data: &Path) -> (bool, String, String) {
    let out = alignbox()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("ALIGNBOX_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Like [`cli`], asserting success; returns stdout.
pub fn must(args: &[&str], data: &Path) -> String {
    let (ok, out, err) = cli(args, data);
    assert!(ok, "alignbox {args:?}: {out}{err}");
    out
}

/// A running `alignbox serve`, stopped with SIGTERM (then killed) when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `alignbox serve` on a free loopback port over `data_dir` and waits until it prints its address.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// Like [`Server::start`] with extra `serve` arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = alignbox()
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("ALIGNBOX_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn alignbox serve");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let errs = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("alignbox listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("alignbox serve did not print its address within 60 s");
        });
        Server { child, base, data_dir: data_dir.to_path_buf(), stderr: Some(errs) }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends SIGTERM and waits for the exit; returns (exit status success, everything written to stderr).
    pub fn terminate(mut self) -> (bool, String) {
        let ok = self.stop();
        let log = self.stderr.take().unwrap().join().unwrap_or_default();
        (ok, log)
    }

    fn stop(&mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A free TCP port on loopback (released before returning; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
