//! The operator's tools end to end: JSONL files uploaded from the browser (picker and drag-and-drop, all or
//! nothing, refused past the size limit), gold items that measure annotators, the annotator table and its
//! export, and pausing an annotator. Real server on loopback, real sled, headless Chromium.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{api::Session, webdriver::Browser, Server};

/// POSTs `body` to the upload endpoint as `session` (with its CSRF token unless `csrf` is false).
fn upload(server: &Server, session: Option<&Session>, name: &str, body: &[u8], csrf: bool) -> (u16, String) {
    let mut req = ureq::post(&server.url(&format!("/api/import/upload?name={name}")));
    if let Some(s) = session {
        req = req.set("cookie", &s.cookie);
        if csrf {
            req = req.set("x-csrf-token", &s.csrf);
        }
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("upload: {e}"),
    }
}

#[test]
fn uploads_need_an_operator_and_the_token_are_all_or_nothing_and_refused_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    support::must(&["users", "add", "olga", "--role", "operator"], dir.path());
    support::must(&["users", "add", "ann", "--role", "annotator"], dir.path());
    let server = Server::start_with(dir.path(), &["--max-upload-mb", "1"]);
    let olga = Session::login(&server.base, "olga", support::PASSWORD);
    let ann = Session::login(&server.base, "ann", support::PASSWORD);
    let good = b"{\"prompt\": \"one\"}\n{\"prompt\": \"two\", \"responses\": [\"a\", \"b\"], \"tiers\": [[1], [0]], \"gold\": true}\n";

    assert_eq!(upload(&server, None, "x.jsonl", good, false).0, 401);
    assert_eq!(upload(&server, Some(&ann), "x.jsonl", good, true).0, 403);
    let (status, body) = upload(&server, Some(&olga), "x.jsonl", good, false);
    assert_eq!((status, body.as_str()), (403, "missing or wrong CSRF token"));

    // A bad second line refuses the whole file, naming file, line and field.
    let bad = b"{\"prompt\": \"fine\"}\n{\"prompt\": \"p\", \"responses\": [\"a\", \"a2\"], \"tiers\": [[0], [0]]}\n";
    let (status, body) = upload(&server, Some(&olga), "dir%2Fbad.jsonl", bad, true);
    assert_eq!(status, 422, "{body}");
    assert!(body.starts_with("bad.jsonl:2: field `tiers`: index 0 appears twice"), "{body}");

    // Past the limit: 413 at once, from Content-Length, before any of the body is sent.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /api/import/upload?name=big.jsonl HTTP/1.1\r\nHost: {addr}\r\nCookie: {}\r\nX-CSRF-Token: {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        olga.cookie,
        olga.csrf,
        (1 << 20) + 1
    );
    std::io::Write::write_all(&mut conn, head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut conn, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("1 MiB (--max-upload-mb)"), "{answer}");
    // A body that passes the limit without saying so beforehand (chunked) is cut off as it arrives.
    let mut big = Vec::new();
    while big.len() <= 1 << 20 {
        big.extend_from_slice(b"{\"prompt\": \"filler filler filler filler filler filler filler\"}\n");
    }
    let chunked = ureq::post(&server.url("/api/import/upload?name=big.jsonl"))
        .set("cookie", &olga.cookie)
        .set("x-csrf-token", &olga.csrf)
        .send(std::io::Cursor::new(big));
    match chunked {
        Err(ureq::Error::Status(code, _)) => assert_eq!(code, 413),
        Err(ureq::Error::Transport(_)) => {} // the server answered 413 and closed while the body was still coming
        Ok(r) => panic!("an oversized upload was accepted: {}", r.status()),
    }

    let (status, body) = upload(&server, Some(&olga), "good.jsonl", good, true);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            "imported 2 prompts, 2 candidates, 0 rankings, 0 demonstrations, 1 gold items from good.jsonl ({} bytes)",
            good.len()
        )
    );
    let (_, log) = server.terminate();
    let store = store::Store::open(&dir.path().join("store")).unwrap();
    let prompts = store.prompts().unwrap();
    assert_eq!(prompts.len(), 2, "only the good file was imported: {log}");
    assert_eq!(prompts[0].source, "good.jsonl:1");
    assert_eq!(store.gold_items().unwrap().len(), 1);
    assert!(store.audit_log().unwrap().iter().any(|e| e.action == "import" && e.actor == "olga"));
}

/// Waits until `#upload-message` says something other than `before`; returns it.
fn upload_answer(browser: &Browser, before: &str) -> String {
    let mut text = String::new();
    browser.wait_until(Duration::from_secs(20), "the upload's answer", || {
        text = browser.find("#upload-message").map(|m| browser.text(&m)).unwrap_or_default();
        !text.is_empty() && text != before
    });
    text
}

#[test]
fn an_operator_imports_files_with_the_picker_and_by_dropping_them_and_a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::must(&["users", "add", "olga", "--role", "operator"], d);
    let server = Server::start(d);
    let browser = Browser::start();
    browser.log_in(&server.url("/login"), "olga", support::PASSWORD, "#account-name");
    browser.goto(&server.url("/operator"));
    let files = tempfile::tempdir().unwrap();
    let bad = files.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"prompt\": \"fine\"}\n{\"prompt\": 5}\n").unwrap();

    // The picker: a file with a bad second line is refused with its line and field (retrying until the page has
    // hydrated: before that, choosing a file does nothing).
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let input = browser.wait_for("#import-file", Duration::from_secs(10));
        browser.send_keys(&input, bad.to_str().unwrap());
        std::thread::sleep(Duration::from_millis(800));
        let text = browser.find("#upload-message").map(|m| browser.text(&m)).unwrap_or_default();
        if !text.is_empty() {
            break text;
        }
        assert!(Instant::now() < deadline, "the upload never answered");
    };
    assert_eq!(refused, "bad.jsonl:2: field `prompt`: must be a string or messages, found a number");
    let message = browser.find("#upload-message").unwrap();
    assert_eq!(browser.attr(&message, "class").as_deref(), Some("error"));
    assert_eq!(browser.text(&browser.find("#stat-prompts").unwrap()), "0 prompts", "nothing was imported");

    let good = files.path().join("good.jsonl");
    let text = "{\"prompt\": \"Name a colour.\"}\n{\"prompt\": \"Name a fruit.\"}\n\
                {\"prompt\": \"Pick the better answer.\", \"responses\": [\"right\", \"wrong\"], \"tiers\": [[0], [1]], \"gold\": true}\n";
    std::fs::write(&good, text).unwrap();
    browser.send_keys(&browser.find("#import-file").unwrap(), good.to_str().unwrap());
    let imported = upload_answer(&browser, &refused);
    assert_eq!(
        imported,
        format!(
            "imported 3 prompts, 2 candidates, 0 rankings, 0 demonstrations, 1 gold items from good.jsonl ({} bytes)",
            text.len()
        )
    );
    assert_eq!(browser.text(&browser.find("#upload-file").unwrap()), format!("good.jsonl, {} B", text.len()));
    let progress = browser.execute("return document.getElementById('upload-progress').value;");
    assert_eq!(progress.as_f64(), Some(100.0), "the progress bar is full");
    browser.wait_until(Duration::from_secs(10), "the counts to refresh", || {
        browser.find("#stat-prompts").is_some_and(|e| browser.text(&e) == "3 prompts")
    });

    // Drag and drop: a file dropped on the zone is imported the same way.
    browser.execute(
        "const dt = new DataTransfer();\
         dt.items.add(new File(['{\"prompt\": \"Dropped one\"}\\n{\"prompt\": \"Dropped two\"}\\n'], 'dropped.jsonl', {type: 'application/x-ndjson'}));\
         const zone = document.getElementById('upload-zone');\
         zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));\
         zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));",
    );
    let dropped = upload_answer(&browser, &imported);
    assert!(
        dropped
            .starts_with("imported 2 prompts, 0 candidates, 0 rankings, 0 demonstrations from dropped.jsonl"),
        "{dropped}"
    );
    drop(browser);
    drop(server);
    let store = store::Store::open(&d.join("store")).unwrap();
    let sources: Vec<String> = store.prompts().unwrap().into_iter().map(|p| p.source).collect();
    assert_eq!(
        sources,
        ["good.jsonl:1", "good.jsonl:2", "good.jsonl:3", "dropped.jsonl:1", "dropped.jsonl:2"]
    );
    assert_eq!(store.gold_items().unwrap().len(), 1);
}

/// Presses `key` on the arena until the verdict is acknowledged (keys reach the page once it has hydrated).
fn arena_verdict(browser: &Browser, key: &str, previous: &mut String) {
    let arena = browser.wait_for("#arena", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        browser.send_keys(&arena, key);
        std::thread::sleep(Duration::from_millis(600));
        let saved = browser.find("#saved").map(|s| browser.text(&s)).unwrap_or_default();
        if saved.starts_with("Saved ranking") && saved != *previous {
            *previous = saved;
            return;
        }
        assert!(Instant::now() < deadline, "key {key:?} was never acknowledged");
    }
}

/// The text of a cell of the annotator table's row for `name`.
fn cell(browser: &Browser, name: &str, class: &str) -> String {
    browser
        .find(&format!("#annotators tr[data-annotator=\"{name}\"] td.{class}"))
        .map(|c| browser.text(&c))
        .unwrap_or_default()
}

#[test]
fn gold_items_measure_annotators_in_the_table_and_an_operator_pauses_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::must(&["users", "add", "olga", "--role", "operator"], d);
    support::must(&["users", "add", "ann", "--role", "annotator"], d);
    let mut lines: Vec<String> = (0..3)
        .map(|i| {
            serde_json::json!({"prompt": format!("Gold question {i}"), "responses": [format!("Right {i}"), format!("Wrong {i}")],
                "tiers": [[0], [1]], "gold": true})
            .to_string()
        })
        .collect();
    lines.push(
        serde_json::json!({"prompt": "Ordinary question", "responses": ["First", "Second"]}).to_string(),
    );
    let file = d.join("items.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    support::must(&["import", file.to_str().unwrap()], d);
    let server = Server::start_with(d, &["--gold-rate", "1", "--overlap", "1"]);

    // ann judges every gold item wrongly (not knowing which items are gold), then the ordinary one.
    let annotator = Browser::start();
    annotator.log_in(&server.url("/login"), "ann", support::PASSWORD, "#arena");
    let mut previous = String::new();
    let mut last = String::new();
    for _ in 0..4 {
        let mut prompt = String::new();
        annotator.wait_until(Duration::from_secs(10), "the next item", || {
            prompt = annotator.find("#arena #prompt").map(|p| annotator.text(&p)).unwrap_or_default();
            !prompt.is_empty() && prompt != last
        });
        let left = annotator.text(&annotator.find("#arena-left").unwrap());
        // ← prefers the left answer, → the right one: prefer the "Wrong" answer of gold items.
        let key = if prompt.starts_with("Gold") == left.contains("Wrong") { "\u{E012}" } else { "\u{E014}" };
        arena_verdict(&annotator, key, &mut previous);
        last = prompt;
    }
    assert!(last.starts_with("Ordinary"), "the three gold items came first at --gold-rate 1, then {last:?}");

    let operator = Browser::start();
    operator.log_in(&server.url("/login"), "olga", support::PASSWORD, "#account-name");
    operator.goto(&server.url("/operator"));
    operator.wait_for("#annotators tr[data-annotator=\"ann\"]", Duration::from_secs(10));
    assert_eq!(cell(&operator, "ann", "gold-accuracy"), "0%");
    assert_eq!(cell(&operator, "ann", "weight"), "0.00");
    assert_eq!(cell(&operator, "ann", "queue-state"), "active");
    let shots = std::env::var_os("ALIGNBOX_SCREENSHOTS").map(std::path::PathBuf::from);
    if shots.is_some() {
        operator.execute("document.getElementById('upload-zone').scrollIntoView();");
        operator.screenshot_to(shots.as_deref(), "operator-annotators");
    }

    // The ordinary item's one judgement becomes its gold order.
    operator.wait_until(Duration::from_secs(20), "the item to become gold", || {
        if let Some(b) = operator.find("#items tr:not(.gold) .make-gold") {
            operator.click(&b);
            std::thread::sleep(Duration::from_millis(500));
        }
        operator.find("#operator-message").is_some_and(|m| operator.text(&m).contains("is a gold item now"))
    });
    operator.wait_until(Duration::from_secs(10), "four gold rows", || {
        operator.find_all("#items tr.gold").len() == 4
    });

    // Pausing ann: the table says so and her queue says why it is empty.
    operator.wait_until(Duration::from_secs(20), "ann to be paused", || {
        if cell(&operator, "ann", "queue-state") == "active" {
            if let Some(b) = operator.find("#annotators tr[data-annotator=\"ann\"] button.pause") {
                operator.click(&b);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        cell(&operator, "ann", "queue-state") == "paused"
    });
    annotator.goto(&server.url("/annotate"));
    let paused = annotator.wait_for("#queue-paused", Duration::from_secs(10));
    assert!(annotator.text(&paused).starts_with("An operator has paused your queue"));

    // The table as JSONL, for operators only.
    let olga = Session::login(&server.base, "olga", support::PASSWORD);
    let (status, body) = olga.get("/api/data/annotators.jsonl");
    assert_eq!(status, 200);
    let rows: Vec<Value> =
        String::from_utf8(body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ann_row = rows.iter().find(|r| r["name"] == "ann").expect("ann's line");
    // Her judgement of the item made gold from it now counts as a right gold answer: 1 of 4 pairs.
    assert_eq!((ann_row["judged"].as_u64(), ann_row["gold_judged"].as_u64()), (Some(4), Some(4)));
    assert_eq!((ann_row["gold_accuracy"].as_f64(), ann_row["weight"].as_f64()), (Some(0.25), Some(0.0)));
    assert_eq!(ann_row["paused"], true);
    let ann = Session::login(&server.base, "ann", support::PASSWORD);
    assert_eq!(ann.get("/api/data/annotators.jsonl").0, 403);
}
