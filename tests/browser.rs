//! The UI in headless Chromium against the real server: proves that the page hydrates.

mod support;

use std::time::{Duration, Instant};

use support::{webdriver::Browser, Server};

#[test]
fn clicking_check_server_after_hydration_calls_the_server_and_updates_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let browser = Browser::start();
    browser.goto(&server.url("/"));

    let button = browser.wait_for("#check-server", Duration::from_secs(10));
    let count = browser.wait_for("#check-count", Duration::from_secs(10));
    assert_eq!(browser.text(&count), "checks: 0");

    // Until the wasm client runs, a click changes nothing; keep clicking until it does (hydration is async).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        browser.click(&button);
        std::thread::sleep(Duration::from_millis(250));
        if browser.text(&count) != "checks: 0" {
            break;
        }
        assert!(Instant::now() < deadline, "the page never hydrated: clicks did nothing for 30 s");
    }

    // The click dispatched the server function; its answer replaces the placeholder.
    let status = browser.wait_for("#server-status", Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = browser.text(&status);
        if text.starts_with("alignbox ") {
            assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
            assert!(text.contains("cpu-flex") || text.contains("cuda"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "server status never arrived, page shows {text:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
