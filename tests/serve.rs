//! `alignbox serve` end to end over a real socket: health, server-side rendering, the client bundle, the data
//! directory lock and graceful shutdown.

mod support;

use std::time::{Duration, Instant};

use support::{alignbox, Server};

#[test]
fn healthz_reports_version_backend_and_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let body: serde_json::Value = ureq::get(&server.url("/healthz")).call().unwrap().into_json().unwrap();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // `auto`: the CPU here, a CUDA device where the driver has one; never a software Vulkan device.
    let device = body["device"]["id"].as_str().unwrap();
    match body["backend"].as_str().unwrap() {
        "cpu-flex" => assert_eq!(device, "cpu", "{body}"),
        "cuda" => assert!(device.starts_with("cuda:"), "{body}"),
        other => panic!("backend {other} under --device auto: {body}"),
    }
    assert!(!body["device"]["name"].as_str().unwrap().is_empty(), "{body}");
    assert!(body["device"]["memory_total"].as_u64().unwrap() > 0, "{body}");
    assert!(body["store_bytes"].as_u64().is_some(), "{body}");
}

#[test]
fn a_device_that_is_not_there_or_not_a_device_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (device, says) in
        [("tpu", "expected auto, cpu, cuda[:N] or vulkan[:N]"), ("vulkan:7", "--device vulkan:7: ")]
    {
        let out = alignbox()
            .args(["generate", "-p", "hi", "--data-dir"])
            .arg(dir.path())
            .args(["--device", device])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "--device {device}: {err}");
    }
}

#[test]
fn home_page_is_server_rendered_with_hydration_scripts_and_the_bundle_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let html = ureq::get(&server.url("/")).call().unwrap().into_string().unwrap();
    assert!(html.contains(r#"<button id="check-server">Check server</button>"#), "{html}");
    assert!(html.contains("checks: 0"), "{html}");
    assert!(html.contains("/pkg/alignbox.js"), "hydration script missing: {html}");

    let wasm = ureq::get(&server.url("/pkg/alignbox_bg.wasm")).call().unwrap();
    assert_eq!(wasm.content_type(), "application/wasm");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut wasm.into_reader(), &mut bytes).unwrap();
    assert_eq!(&bytes[..4], b"\0asm", "not a wasm module");

    let css = ureq::get(&server.url("/pkg/alignbox.css")).call().unwrap();
    assert!(css.content_type().starts_with("text/css"));
    let missing = ureq::get(&server.url("/pkg/nope.js")).call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
}

#[test]
fn unknown_page_renders_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    match ureq::get(&server.url("/no/such/page")).call() {
        Err(ureq::Error::Status(404, r)) => assert!(r.into_string().unwrap().contains("Page not found")),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[test]
fn a_second_serve_on_the_same_data_directory_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path());
    let started = Instant::now();
    let out =
        alignbox().args(["serve", "--addr", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "the second serve hung");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another alignbox"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.child.id())), "{stderr}");
    // The first one is unharmed.
    ureq::get(&first.url("/healthz")).call().expect("first server still answers");
}

#[test]
fn sigterm_shuts_down_gracefully_flushes_and_frees_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    ureq::get(&server.url("/healthz")).call().unwrap();
    let (ok, log) = server.terminate();
    assert!(ok, "serve did not exit cleanly on SIGTERM:\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("store flushed"), "{log}");
    // The lock is released: a new serve on the same directory starts.
    let again = Server::start(dir.path());
    ureq::get(&again.url("/healthz")).call().unwrap();
}

#[test]
fn help_lists_serve() {
    let out = alignbox().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("serve"), "{help}");
    let out = alignbox().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--addr", "--data-dir", "127.0.0.1:3000", "./alignbox-data"] {
        assert!(help.contains(flag), "serve --help lacks {flag}: {help}");
    }
}
