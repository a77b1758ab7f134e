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

#[test]
fn an_operator_loads_the_sample_prompts_from_the_first_steps_panel_and_ranks_the_first_item() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fixture = support::fixture("tiny-llama-gqa-tied");
    support::must(&["models", "import", fixture.to_str().unwrap(), "--name", "tiny"], d);
    support::must(&["users", "add", "olga", "--role", "operator"], d);
    let server = Server::start_with(
        d,
        &["--candidates", "3", "--candidate-tokens", "4", "--overlap", "1", "--device", "cpu"],
    );
    let browser = Browser::start();

    // A visitor sees the first steps on the home page, without the button.
    browser.goto(&server.url("/"));
    browser.wait_for("#first-steps", Duration::from_secs(10));
    assert!(browser.find("#load-samples").is_none());

    browser.log_in(&server.url("/login"), "olga", support::PASSWORD, "#account-name");

    // The operator page offers the samples too; load them from the home page.
    browser.goto(&server.url("/operator"));
    browser.wait_for("#first-steps #load-samples", Duration::from_secs(10));
    let link = browser.wait_for("#download-rankings", Duration::from_secs(5));
    assert_eq!(browser.attr(&link, "href").as_deref(), Some("/api/data/rankings.jsonl"));
    browser.goto(&server.url("/"));
    let button = browser.wait_for("#load-samples", Duration::from_secs(10));
    assert_eq!(browser.text(&button), "Load 64 sample prompts");
    browser.wait_until(Duration::from_secs(30), "the samples to load", || {
        let text = browser.find("#samples-message").map(|m| browser.text(&m)).unwrap_or_default();
        if text.is_empty() {
            if let Some(b) = browser.find("#load-samples") {
                browser.click(&b);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        text.starts_with("Loaded 64 sample prompts")
    });
    // A second click adds nothing.
    browser.click(&browser.find("#load-samples").unwrap());
    browser.wait_until(Duration::from_secs(10), "the second answer", || {
        browser.find("#samples-message").is_some_and(|m| browser.text(&m).contains("already loaded"))
    });

    // The first item (a sample prompt with answers from the tiny policy) arrives and is ranked.
    let samples = include_str!("../assets/demo/prompts.jsonl");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        browser.goto(&server.url("/annotate"));
        if let Some(p) = browser.find("#prompt") {
            let text = browser.text(&p);
            assert!(samples.contains(&format!("\"{text}\"")), "{text:?} is not a sample prompt");
            break;
        }
        assert!(Instant::now() < deadline, "no item within 90 s of loading the samples");
        std::thread::sleep(Duration::from_millis(1000));
    }
    browser.wait_until(Duration::from_secs(30), "the ranking to be acknowledged", || {
        if let Some(b) = browser.find("#submit") {
            browser.click(&b);
        }
        std::thread::sleep(Duration::from_millis(1500));
        browser.find("#saved").is_some_and(|s| browser.text(&s).starts_with("Saved ranking"))
    });
    drop(browser);
    let (_, log) = server.terminate();
    let store = store::Store::open(&d.join("store")).unwrap();
    assert_eq!(store.prompts().unwrap().len(), 64, "{log}");
    // (A click before the page hydrated does nothing; one after the first answer may rank the next item too.)
    assert!(!store.rankings().unwrap().is_empty(), "the ranking is in sled");
}

#[test]
fn guidelines_saved_by_an_operator_reach_annotators_with_their_version() {
    let dir = tempfile::tempdir().unwrap();
    support::must(&["users", "add", "otto", "--role", "operator"], dir.path());
    let server = Server::start(dir.path());
    let browser = Browser::start();
    browser.log_in(&server.url("/login"), "otto", support::PASSWORD, "#account-name");
    browser.goto(&server.url("/operator"));
    let text = browser.wait_for("#guidelines-text", Duration::from_secs(10));
    browser.wait_until(Duration::from_secs(30), "the guidelines to be saved", || {
        let message = browser.find("#operator-message").map(|m| browser.text(&m)).unwrap_or_default();
        if message.is_empty() {
            browser.execute("document.getElementById('guidelines-text').value='';");
            browser.send_keys(&text, "Prefer the correct answer.");
            browser.click(&browser.find("#save-guidelines").unwrap());
            std::thread::sleep(Duration::from_millis(400));
        }
        message == "Guidelines saved as version 1."
    });
    browser.goto(&server.url("/annotate"));
    let title = browser.wait_for("#guidelines-title", Duration::from_secs(10));
    assert_eq!(browser.text(&title), "Guidelines (version 1)");
    browser.click(&title);
    let rules = browser.wait_for("#guidelines .rules", Duration::from_secs(5));
    assert_eq!(browser.text(&rules), "Prefer the correct answer.");
}

#[test]
fn repeated_wrong_passwords_are_refused_on_the_login_page_and_the_right_one_works_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    support::must(&["users", "add", "tess", "--role", "annotator"], dir.path());
    let server = Server::start_with(dir.path(), &["--login-failures", "2", "--login-window-s", "4"]);
    let browser = Browser::start();
    browser.goto(&server.url("/login"));
    let submit = |password: &str| {
        let name = browser.wait_for("#login-name", Duration::from_secs(10));
        let pw = browser.wait_for("#login-password", Duration::from_secs(10));
        browser.execute(
            "document.getElementById('login-name').value=''; document.getElementById('login-password').value='';",
        );
        browser.send_keys(&name, "tess");
        browser.send_keys(&pw, password);
        browser.click(&browser.wait_for("#login-submit", Duration::from_secs(10)));
    };
    // Wrong passwords until the page says they are throttled (before hydration a submit does nothing).
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let refusal = loop {
        submit("wrong-password");
        std::thread::sleep(Duration::from_millis(500));
        let text = browser.find("#login-error").map(|e| browser.text(&e)).unwrap_or_default();
        if text.starts_with("too many failed log-ins") {
            break text;
        }
        if !text.is_empty() {
            seen.push(text);
        }
        assert!(Instant::now() < deadline, "never throttled; the page said {seen:?}");
        if browser.find("#login-submit").is_none() {
            browser.goto(&server.url("/login"));
        }
    };
    assert!(refusal.contains("try again in"), "{refusal}");
    assert!(seen.iter().all(|t| t.contains("wrong name or password")), "{seen:?}");
    // After the window the right password works.
    std::thread::sleep(Duration::from_secs(5));
    browser.wait_until(Duration::from_secs(20), "the log-in after the window", || {
        if browser.find("#login-submit").is_some() {
            submit(support::PASSWORD);
            std::thread::sleep(Duration::from_millis(700));
        }
        browser.find("#account-name").is_some_and(|e| browser.text(&e) == "tess")
    });
    drop(browser);
    let (_, log) = server.terminate();
    assert!(log.contains("log-ins throttled"), "the refusal is logged: {log}");
}
