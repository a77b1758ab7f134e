//! Annotation end to end: annotators rank in headless Chromium with the mouse and with the keyboard, and every
//! acknowledged ranking survives SIGKILL.

mod support;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use support::{alignbox, webdriver::Browser, Server};

/// Adds an account with the CLI (before serve: the store is locked while a server runs).
fn add_user(data: &Path, name: &str, role: &str, password: &str) {
    let out = alignbox()
        .args(["users", "add", name, "--role", role, "--data-dir"])
        .arg(data)
        .env("ALIGNBOX_PASSWORD", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn import(data: &Path, jsonl: &str) {
    let file = data.join("items.jsonl");
    std::fs::write(&file, jsonl).unwrap();
    let out = alignbox().arg("import").arg(&file).arg("--data-dir").arg(data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Two prompts of four answers named so the intended order is alphabetical ("A …" best).
const ITEMS: &str = concat!(
    r#"{"prompt": "Name a primary colour. <b>not bold</b>", "responses": ["C blue-ish", "A red", "D green", "B <i>yellow</i>"]}"#,
    "\n",
    r#"{"prompt": "Count to three.", "responses": ["B one two three!", "D three", "A 1, 2, 3", "C one, two"]}"#,
    "\n"
);

fn login(browser: &Browser, server: &Server, name: &str, password: &str) {
    browser.goto(&server.url("/login"));
    let button = browser.wait_for("#login-submit", Duration::from_secs(10));
    // The form only works once hydrated: retry until the annotate page appears.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let name_input = browser.wait_for("#login-name", Duration::from_secs(5));
        let pw_input = browser.wait_for("#login-password", Duration::from_secs(5));
        browser.execute("document.getElementById('login-name').value=''; document.getElementById('login-password').value='';");
        browser.send_keys(&name_input, name);
        browser.send_keys(&pw_input, password);
        browser.click(&button);
        std::thread::sleep(Duration::from_millis(500));
        if browser.find("#prompt").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "login never reached the annotate page");
        if browser.find("#login-submit").is_none() {
            browser.goto(&server.url("/login"));
        }
    }
}

/// Candidate card texts in displayed order.
fn card_texts(browser: &Browser) -> Vec<String> {
    browser.find_all("#candidates li .text").iter().map(|e| browser.text(e)).collect()
}

fn card_with(browser: &Browser, prefix: &str) -> support::webdriver::Element {
    browser
        .find_all("#candidates li")
        .into_iter()
        .find(|li| browser.text(li).contains(prefix))
        .unwrap_or_else(|| panic!("no card starting {prefix}"))
}

/// Orders the four answers A, B, C, D with number keys, ties C with B (`t`) and submits with Enter.
fn rank_by_keyboard_with_a_tie(browser: &Browser) {
    browser.wait_for("#prompt", Duration::from_secs(10));
    for (rank, prefix) in ["A ", "B ", "C ", "D "].iter().enumerate() {
        let card = card_with(browser, prefix);
        browser.send_keys(&card, &(rank + 1).to_string());
        browser.wait_until(Duration::from_secs(5), "the key to move the answer", || {
            card_texts(browser).get(rank).is_some_and(|t| t.starts_with(prefix))
        });
    }
    let c = card_with(browser, "C ");
    browser.send_keys(&c, "t");
    browser.wait_until(Duration::from_secs(5), "the tie badge", || {
        browser.find("#candidates li.tied").is_some()
    });
    browser.send_keys(&card_with(browser, "A "), support::webdriver::ENTER);
}

fn wait_saved(browser: &Browser, previous: &str) -> String {
    let saved = browser.wait_for("#saved", Duration::from_secs(5));
    let mut text = String::new();
    browser.wait_until(Duration::from_secs(15), "the ranking to be acknowledged", || {
        text = browser.text(&saved);
        text.starts_with("Saved ranking") && text != previous
    });
    text
}

#[test]
fn annotators_rank_with_the_mouse_and_the_keyboard_and_sled_holds_the_order() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "alice", "annotator", "alice-pw-1");
    add_user(data.path(), "bob", "annotator", "bob-pw-123");
    import(data.path(), ITEMS);
    let server = Server::start(data.path());
    let browser = Browser::start();
    login(&browser, &server, "alice", "alice-pw-1");

    // Prompts and answers are text, never HTML.
    let prompt = browser.text(&browser.wait_for("#prompt", Duration::from_secs(10)));
    assert!(prompt.contains("<b>not bold</b>") || prompt.contains("Count to three"), "{prompt}");
    assert!(
        browser.find("#prompt b").is_none() && browser.find("#candidates i").is_none(),
        "HTML was injected"
    );

    // Item 1, mouse only: drag each answer to its place, best first.
    for (pos, prefix) in ["A ", "B ", "C ", "D "].iter().enumerate() {
        let cards = browser.find_all("#candidates li");
        let from = card_with(&browser, prefix);
        browser.drag(&from, &cards[pos]);
        browser.wait_until(Duration::from_secs(5), "the drag to reorder the list", || {
            card_texts(&browser).get(pos).is_some_and(|t| t.starts_with(prefix))
        });
    }
    let first_prompt = browser.text(&browser.find("#prompt").unwrap());
    browser.click(&browser.find("#submit").unwrap());
    let saved1 = wait_saved(&browser, "");

    // Item 2, keyboard only: focus a card by typing its rank number, tie C with B using `t`, submit with Enter.
    browser.wait_until(Duration::from_secs(10), "the second item", || {
        browser.find("#prompt").is_some_and(|p| browser.text(&p) != first_prompt)
    });
    rank_by_keyboard_with_a_tie(&browser);
    wait_saved(&browser, &saved1);
    browser.wait_for("#queue-empty", Duration::from_secs(10));
    drop(browser);

    // Another annotator, keyboard only, on a fresh browser: gets the first item too (overlap 2).
    let browser = Browser::start();
    login(&browser, &server, "bob", "bob-pw-123");
    rank_by_keyboard_with_a_tie(&browser);
    wait_saved(&browser, "");
    drop(browser);
    let (ok, log) = server.terminate();
    assert!(ok, "{log}");

    // What sled holds: item by item, the candidate texts of each tier.
    let store = store::Store::open(&data.path().join("store")).unwrap();
    let alice = store.user_by_name("alice").unwrap().unwrap();
    let bob = store.user_by_name("bob").unwrap().unwrap();
    let mut seen = Vec::new();
    let rankings = store.rankings().unwrap();
    assert_eq!(
        rankings.iter().map(|r| r.user_id).collect::<Vec<_>>(),
        vec![Some(alice.id), Some(alice.id), Some(bob.id)]
    );
    for r in rankings {
        let tiers: Vec<Vec<String>> = r
            .tiers
            .iter()
            .map(|t| {
                t.iter().map(|id| store.candidate(*id).unwrap().unwrap().text[..1].to_string()).collect()
            })
            .collect();
        seen.push(tiers);
    }
    let s = |v: &[&[&str]]| {
        v.iter().map(|t| t.iter().map(|x| x.to_string()).collect()).collect::<Vec<Vec<String>>>()
    };
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], s(&[&["A"], &["B"], &["C"], &["D"]]), "alice's mouse ranking");
    assert_eq!(seen[1], s(&[&["A"], &["B", "C"], &["D"]]), "alice's keyboard ranking with a tie");
    assert_eq!(seen[2], s(&[&["A"], &["B", "C"], &["D"]]), "bob's keyboard ranking with a tie");
}

/// HTTP client with a cookie jar of one cookie.
struct Client {
    base: String,
    cookie: String,
    csrf: String,
}

impl Client {
    fn login(base: &str, name: &str, password: &str) -> Client {
        let resp = ureq::post(&format!("{base}/api/login"))
            .send_form(&[("name", name), ("password", password)])
            .expect("login");
        let cookie =
            resp.header("set-cookie").expect("session cookie").split(';').next().unwrap().to_string();
        let me: serde_json::Value = resp.into_json().unwrap();
        Client { base: base.into(), cookie, csrf: me["csrf"].as_str().unwrap().into() }
    }

    fn next_item(&self) -> serde_json::Value {
        ureq::post(&format!("{}/api/next_item", self.base))
            .set("cookie", &self.cookie)
            .send_form(&[])
            .expect("next_item")
            .into_json()
            .unwrap()
    }

    fn submit(&self, item: &serde_json::Value) -> u64 {
        let ids: Vec<u64> =
            item["candidates"].as_array().unwrap().iter().map(|c| c["id"].as_u64().unwrap()).collect();
        let body = serde_json::json!({
            "csrf": self.csrf,
            "submission": {"prompt_id": item["prompt_id"], "tiers": ids.iter().map(|i| vec![*i]).collect::<Vec<_>>(),
                "skipped": null, "flags": [], "better_answer": null, "time_spent_ms": 5}
        });
        ureq::post(&format!("{}/api/submit_ranking", self.base))
            .set("cookie", &self.cookie)
            .send_json(body)
            .expect("submit")
            .into_json::<u64>()
            .unwrap()
    }
}

#[test]
fn every_acknowledged_ranking_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "bob", "annotator", "bob-pw-123");
    let mut items = String::new();
    for i in 0..25 {
        items.push_str(&format!("{{\"prompt\": \"p{i}\", \"responses\": [\"a{i}\", \"b{i}\", \"c{i}\"]}}\n"));
    }
    import(data.path(), &items);
    let mut acknowledged = Vec::new();
    for trial in 0..20 {
        let mut server = Server::start(data.path());
        let client = Client::login(&server.base, "bob", "bob-pw-123");
        let item = client.next_item();
        assert!(!item.is_null(), "trial {trial}: queue empty");
        let id = client.submit(&item);
        // Acknowledged: kill at once, no chance to flush on the way out.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        acknowledged.push(id);
        let store = store::Store::open(&data.path().join("store")).unwrap();
        let ids: Vec<u64> = store.rankings().unwrap().iter().map(|r| r.id).collect();
        for a in &acknowledged {
            assert!(ids.contains(a), "trial {trial}: acknowledged ranking {a} lost after SIGKILL");
        }
    }
}

#[test]
fn a_bad_import_names_file_line_and_field_and_writes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("bad.jsonl");
    let cases: [(&[u8], &str); 7] = [
        (
            b"{\"prompt\": \"ok\"}\n{\"prompt\": \"p\", \"responses\": [\"a\", 7]}\n",
            "bad.jsonl:2: field `responses[1]`: must be a string",
        ),
        (b"{\"prompt\": \"ok\"}\n{\"prompt\": \"ok\"}\n{oops\n", "bad.jsonl:3: invalid JSON"),
        (
            b"{\"prompt\": \"ok\"}\n{\"chosen\": \"a\", \"rejected\": \"b\", \"prompt\": 3}\n",
            "bad.jsonl:2: field `prompt`",
        ),
        (b"{\"prompt\": \"\xc3\x28\"}\n", "bad.jsonl:1: not valid UTF-8"),
        (b"{\"nothing\": 1}\n", "bad.jsonl:1: field `prompt`: is missing"),
        (
            b"{\"prompt\": \"ok\"}\n{\"prompt\": \"p\", \"chosen\": \"same\", \"rejected\": \"same\"}\n",
            "bad.jsonl:2: field `rejected`: is the same as `chosen`",
        ),
        (
            b"{\"prompt\": \"p\", \"responses\": [\"only\"], \"tiers\": [[0]]}\n",
            "bad.jsonl:1: field `responses`: a ranking needs at least two answers",
        ),
    ];
    for (bytes, want) in cases {
        std::fs::write(&file, bytes).unwrap();
        let out = alignbox().arg("import").arg(&file).arg("--data-dir").arg(data.path()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    let mut huge = b"{\"prompt\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 << 20));
    huge.extend(b"\"}\n");
    std::fs::write(&file, huge).unwrap();
    let out = alignbox().arg("import").arg(&file).arg("--data-dir").arg(data.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:1: line is"), "huge line");
    // More answers than `--max-answers` (default 16) are refused.
    std::fs::write(&file, "{\"prompt\": \"p\", \"responses\": [\"a\", \"b\", \"c\"]}\n").unwrap();
    let mut import = alignbox();
    import.args(["import", "--max-answers", "2"]).arg(&file).arg("--data-dir").arg(data.path());
    let out = import.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.jsonl:1: field `responses`: holds 3 answers, more than the limit of 2"),
        "{err}"
    );
    // Nothing from the refused files was written.
    let store = store::Store::open(&data.path().join("store")).unwrap();
    assert!(store.prompts().unwrap().is_empty());
    assert!(store.audit_log().unwrap().iter().all(|e| e.action != "import"));
}

#[test]
fn prompts_and_answers_render_as_markdown_and_injected_html_never_runs() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "mia", "annotator", "mia-pw-1234");
    let long: Vec<String> = (1..=40).map(|i| format!("Line {i} of a long answer.")).collect();
    let item = serde_json::json!({
        "prompt": "Compare:\n\n- **fast**\n- `slow`\n\n| name | speed |\n|---|---|\n| a | 1 |\n\n<script>window.__pwned = 1</script>\n<img src=x onerror=\"window.__pwned = 2\">",
        "responses": [
            "A code:\n\n```python\nprint('hi')\n```\n\n[click](javascript:window.__pwned=3)",
            "B <iframe src=\"javascript:window.__pwned=4\"></iframe> [site](https://example.org)",
            format!("C long\n\n{}", long.join("\n\n")),
        ]
    });
    import(data.path(), &format!("{item}\n"));
    let server = Server::start(data.path());
    let browser = Browser::start();
    login(&browser, &server, "mia", "mia-pw-1234");
    browser.wait_for("#prompt", Duration::from_secs(10));

    // Lists, inline code, tables and code blocks are elements; raw HTML is shown as text.
    assert_eq!(browser.find_all("#prompt ul li").len(), 2);
    assert!(browser.find("#prompt strong").is_some() && browser.find("#prompt code").is_some());
    assert_eq!(browser.find_all("#prompt table td").len(), 2);
    let code = browser.wait_for("#candidates pre code", Duration::from_secs(5));
    assert_eq!(browser.text(&code), "print('hi')");
    let prompt = browser.text(&browser.find("#prompt").unwrap());
    assert!(prompt.contains("<script>window.__pwned = 1</script>"), "{prompt}");
    // Nothing injected exists or ran; only the https link is a link, and it opens nothing with our window.
    for css in ["#prompt script", "#prompt img", "#candidates iframe", "a[href^='javascript']"] {
        assert!(browser.find(css).is_none(), "{css} was injected");
    }
    let links = browser.find_all("#candidates a[href]");
    assert_eq!(links.len(), 1, "the javascript: link lost its target");
    let link = &links[0];
    assert_eq!(browser.attr(link, "href").as_deref(), Some("https://example.org"));
    assert!(browser.attr(link, "rel").unwrap_or_default().contains("noopener"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(browser.execute("return window.__pwned === undefined;"), serde_json::json!(true));
    let shots = std::env::var_os("ALIGNBOX_SCREENSHOTS").map(std::path::PathBuf::from);
    browser.screenshot_to(shots.as_deref(), "annotate-list");

    // The long answer starts collapsed; "show all" opens it.
    let collapsed = browser.wait_for("#candidates .text.collapsed", Duration::from_secs(5));
    let short_height =
        browser.execute("return document.querySelector('#candidates .text.collapsed').clientHeight;");
    let _ = collapsed;
    let whole =
        "return document.querySelector('#candidates .text.collapsed').textContent.includes('Line 40');";
    assert_eq!(browser.execute(whole), serde_json::json!(true), "the whole answer is in the page");
    browser.wait_until(Duration::from_secs(20), "show all to expand the answer", || {
        if let Some(b) = browser.find(".show-all") {
            if browser.text(&b) == "show all" {
                browser.click(&b);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        browser.find("#candidates .text.collapsed").is_none()
    });
    let full = browser.execute(
        "return [...document.querySelectorAll('#candidates .text')].map(e => e.clientHeight).reduce((a, b) => Math.max(a, b));",
    );
    assert!(full.as_f64().unwrap() > short_height.as_f64().unwrap() * 1.5, "{full} vs {short_height}");
}

#[test]
fn items_of_two_answers_are_judged_side_by_side_with_the_arena_keys() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "ari", "annotator", "ari-pw-1234");
    let items: Vec<String> = (0..5)
        .map(|i| {
            serde_json::json!({"prompt": format!("Arena question {i}: how do I reverse a list in Python?"),
                "responses": [format!("Use slicing ({i}):\n\n```python\nxs[::-1]\n```"),
                    format!("Call `reversed(xs)` ({i}), or `xs.reverse()` to do it **in place**.")]})
            .to_string()
        })
        .collect();
    import(data.path(), &(items.join("\n") + "\n"));
    let server = Server::start(data.path());
    let browser = Browser::start();
    browser.log_in(&server.url("/login"), "ari", "ari-pw-1234", "#arena");
    assert!(browser.find("#candidates").is_none(), "two answers are not a list");
    let shots = std::env::var_os("ALIGNBOX_SCREENSHOTS").map(std::path::PathBuf::from);
    browser.screenshot_to(shots.as_deref(), "annotate-arena");

    // ← (left better), → (right better), = (tie), b (both bad): each submits at once.
    let mut expected = Vec::new();
    let mut previous = String::new();
    for key in ["\u{E012}", "\u{E014}", "=", "b"] {
        let last = expected.last().map(|e: &(String, &str, u64, u64)| e.0.clone()).unwrap_or_default();
        let mut prompt = String::new();
        browser.wait_until(Duration::from_secs(10), "the next item", || {
            prompt = browser.find("#arena #prompt").map(|p| browser.text(&p)).unwrap_or_default();
            !prompt.is_empty() && prompt != last
        });
        let arena = browser.wait_for("#arena", Duration::from_secs(10));
        let id = |css: &str| -> u64 {
            browser.attr(&browser.find(css).unwrap(), "data-candidate-id").unwrap().parse().unwrap()
        };
        let (left, right) = (id("#arena-left"), id("#arena-right"));
        expected.push((prompt.clone(), key, left, right));
        // Keys reach the page once it is hydrated: send until the verdict is acknowledged.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            browser.send_keys(&arena, key);
            std::thread::sleep(Duration::from_millis(600));
            let saved = browser.find("#saved").map(|s| browser.text(&s)).unwrap_or_default();
            if saved.starts_with("Saved ranking") && saved != previous {
                previous = saved;
                break;
            }
            assert!(Instant::now() < deadline, "key {key:?} was never acknowledged");
        }
    }
    // The last item is skipped with a reason (typing it does not trigger the verdict keys: "b" is in it).
    let last = expected.last().unwrap().0.clone();
    browser.wait_until(Duration::from_secs(10), "the fifth item", || {
        browser.find("#arena #prompt").is_some_and(|p| browser.text(&p) != last)
    });
    let fifth = browser.text(&browser.find("#arena #prompt").unwrap());
    browser.send_keys(&browser.find("#skip-reason").unwrap(), "cannot be judged by me");
    browser.click(&browser.find("#skip").unwrap());
    browser.wait_until(Duration::from_secs(10), "the skip to be acknowledged", || {
        browser.find("#saved").is_some_and(|s| browser.text(&s) != previous)
    });
    drop(browser);
    drop(server);
    let store = store::Store::open(&data.path().join("store")).unwrap();
    let prompts = store.prompts().unwrap();
    let p = prompts.iter().find(|p| p.text() == fifth).unwrap();
    let r = store.rankings_of(p.id).unwrap();
    assert_eq!((r.len(), r[0].skipped.as_deref()), (1, Some("cannot be judged by me")));
    for (prompt, key, left, right) in expected {
        let p = prompts.iter().find(|p| p.text() == prompt).unwrap();
        let r = store.rankings_of(p.id).unwrap();
        assert_eq!(r.len(), 1, "{prompt}: one judgement");
        let both_bad = r[0].flags.contains(&store::Flag::BothBad);
        let want = match key {
            "\u{E012}" => (vec![vec![left], vec![right]], false),
            "\u{E014}" => (vec![vec![right], vec![left]], false),
            "=" => (vec![vec![left, right]], false),
            _ => (vec![vec![left, right]], true),
        };
        assert_eq!((r[0].tiers.clone(), both_bad), want, "{prompt} after {key:?}");
    }
}
