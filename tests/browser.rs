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

#[test]
fn the_top_bar_shows_who_is_logged_in_and_logs_out_and_a_wrong_password_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    support::must(&["users", "add", "carol", "--role", "operator"], dir.path());
    let server = Server::start(dir.path());
    let browser = Browser::start();
    browser.goto(&server.url("/login"));
    assert!(browser.find("#login-link").is_some(), "anonymous visitors see a Log in link");

    let submit = |password: &str| {
        let name = browser.wait_for("#login-name", Duration::from_secs(10));
        let pw = browser.wait_for("#login-password", Duration::from_secs(10));
        browser.execute(
            "document.getElementById('login-name').value=''; document.getElementById('login-password').value='';",
        );
        browser.send_keys(&name, "carol");
        browser.send_keys(&pw, password);
        browser.click(&browser.wait_for("#login-submit", Duration::from_secs(10)));
    };
    // A wrong password is explained on the page (retrying until hydrated: before that, the form does nothing useful).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        submit("wrong-password");
        std::thread::sleep(Duration::from_millis(500));
        if let Some(e) = browser.find("#login-error") {
            if browser.text(&e).contains("wrong name or password") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the login error never appeared");
        if browser.find("#login-submit").is_none() {
            browser.goto(&server.url("/login"));
        }
    }
    submit(support::PASSWORD);
    browser.wait_until(Duration::from_secs(15), "the top bar names the user", || {
        browser.find("#account-name").is_some_and(|e| browser.text(&e) == "carol")
    });
    assert!(browser.find("#login-link").is_none());
    assert!(browser.find("#logout-everywhere").is_some(), "and can end its sessions on every browser");
    // The name stays after a full page load (rendered on the server from the session cookie).
    browser.goto(&server.url("/"));
    let name = browser.wait_for("#account-name", Duration::from_secs(10));
    assert_eq!(browser.text(&name), "carol");

    let logout = browser.wait_for("#logout", Duration::from_secs(10));
    browser.wait_until(Duration::from_secs(30), "log out leads to the login page", || {
        if browser.find("#login-submit").is_none() {
            if let Some(b) = browser.find("#logout") {
                browser.click(&b);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        browser.find("#login-submit").is_some() && browser.find("#login-link").is_some()
    });
    let _ = logout;
    // The session is gone on the server too.
    browser.goto(&server.url("/"));
    browser.wait_for("#login-link", Duration::from_secs(10));
    assert!(browser.find("#account-name").is_none());
}
