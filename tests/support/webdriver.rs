//! A minimal W3C WebDriver client for headless Chromium through chromedriver: just what the browser tests use.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one headless Chromium session; both end when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// A reference to an element in the page.
#[derive(Clone, Debug)]
pub struct Element(String);

fn find_binary(names: &[&str]) -> Option<String> {
    names.iter().find(|p| std::path::Path::new(p).exists()).map(|p| p.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with the flags this machine kind needs (../shared/BUILD.md).
    pub fn start() -> Browser {
        let chromium = find_binary(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]).expect(
            "Chromium is not installed: run scripts/test.sh (it installs chromium and chromium-driver)",
        );
        let chromedriver = find_binary(&["/usr/bin/chromedriver"])
            .expect("chromedriver is not installed: run scripts/test.sh (it installs chromium-driver)");
        let port = super::free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not come up within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let resp: Value = ureq::post(&format!("{base}/session"))
            .send_json(caps)
            .expect("create a WebDriver session")
            .into_json()
            .unwrap();
        let session = resp["value"]["sessionId"].as_str().expect("sessionId").to_string();
        Browser { driver, base, session, _profile: profile }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let req = ureq::request(method, &url);
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match resp {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(code, r)) => {
                panic!("WebDriver {method} {path} failed ({code}): {}", r.into_string().unwrap_or_default())
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    /// Logs in through the form at `login_url` as `name`, retrying until `until_css` is on the page (the form
    /// only works once the page has hydrated); panics after 30 s.
    pub fn log_in(&self, login_url: &str, name: &str, password: &str, until_css: &str) {
        self.goto(login_url);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.find(until_css).is_none() {
            assert!(Instant::now() < deadline, "log-in as {name} never showed {until_css}");
            if self.find("#login-submit").is_none() {
                self.goto(login_url);
            }
            let fields =
                ["#login-name", "#login-password"].map(|css| self.wait_for(css, Duration::from_secs(10)));
            self.execute(
                "document.getElementById('login-name').value=''; document.getElementById('login-password').value='';",
            );
            self.send_keys(&fields[0], name);
            self.send_keys(&fields[1], password);
            self.click(&self.wait_for("#login-submit", Duration::from_secs(10)));
            std::thread::sleep(Duration::from_millis(700));
        }
    }

    /// Saves a PNG of the viewport to `dir/name.png` when `dir` is given (`ALIGNBOX_SCREENSHOTS`: the pictures
    /// in docs/ are made so).
    pub fn screenshot_to(&self, dir: Option<&std::path::Path>, name: &str) {
        use base64::Engine;
        let Some(dir) = dir else { return };
        let png = self.call("GET", "/screenshot", None);
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("base64 PNG")).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Navigates to `url` and waits for the load event.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The first element matching a CSS selector, or None.
    pub fn find(&self, css: &str) -> Option<Element> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        match ureq::post(&url).send_json(json!({"using": "css selector", "value": css})) {
            Ok(r) => {
                let v: Value = r.into_json().unwrap();
                v["value"][ELEMENT_KEY].as_str().map(|s| Element(s.to_string()))
            }
            Err(_) => None,
        }
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(Instant::now() < deadline, "no element matches {css} after {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks an element.
    pub fn click(&self, el: &Element) {
        self.call("POST", &format!("/element/{}/click", el.0), Some(json!({})));
    }

    /// The rendered text of an element.
    pub fn text(&self, el: &Element) -> String {
        self.call("GET", &format!("/element/{}/text", el.0), None).as_str().unwrap_or_default().to_string()
    }

    /// Runs a script in the page and returns its value.
    pub fn execute(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// WebDriver's key code for Enter.
pub const ENTER: &str = "\u{E007}";

impl Browser {
    /// Types `text` into an element (focusing it first).
    pub fn send_keys(&self, el: &Element, text: &str) {
        self.call("POST", &format!("/element/{}/value", el.0), Some(json!({ "text": text })));
    }

    /// Presses the mouse on `from`, moves to `to` and releases there.
    pub fn drag(&self, from: &Element, to: &Element) {
        let origin = |e: &Element| json!({ ELEMENT_KEY: e.0 });
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "origin": origin(from), "x": 0, "y": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "origin": origin(to), "x": 0, "y": 0, "duration": 150},
                {"type": "pointerUp", "button": 0}
            ]
        }]});
        self.call("POST", "/actions", Some(actions));
        let _ = ureq::delete(&format!("{}/session/{}/actions", self.base, self.session)).call();
    }

    /// All elements matching a CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        v.as_array()
            .map(|a| {
                a.iter().filter_map(|e| e[ELEMENT_KEY].as_str()).map(|s| Element(s.to_string())).collect()
            })
            .unwrap_or_default()
    }

    /// An attribute of an element.
    pub fn attr(&self, el: &Element, name: &str) -> Option<String> {
        self.call("GET", &format!("/element/{}/attribute/{name}", el.0), None).as_str().map(String::from)
    }

    /// Waits until `f` returns true (polling every 100 ms), or panics with `what`.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !f() {
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
