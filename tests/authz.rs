//! The authorization matrix: every server function and page × no session and every role. Roles are checked on
//! the server; state-changing calls also need the session's CSRF token.

mod support;

use std::path::Path;

use support::{alignbox, Server};

fn add_user(data: &Path, name: &str, role: &str) {
    let out = alignbox()
        .args(["users", "add", name, "--role", role, "--data-dir"])
        .arg(data)
        .env("ALIGNBOX_PASSWORD", format!("{name}-password"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A logged-in (or anonymous) caller.
struct Caller {
    role: &'static str,
    cookie: Option<String>,
    csrf: String,
}

fn login(base: &str, name: &str, role: &'static str) -> Caller {
    let resp = ureq::post(&format!("{base}/api/login"))
        .send_form(&[("name", name), ("password", &format!("{name}-password"))])
        .unwrap();
    let cookie = resp.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let me: serde_json::Value = resp.into_json().unwrap();
    Caller { role, cookie: Some(cookie), csrf: me["csrf"].as_str().unwrap().into() }
}

enum Body {
    Form(Vec<(&'static str, String)>),
    Json(serde_json::Value),
}

fn call(base: &str, c: &Caller, endpoint: &str, body: Body) -> (u16, String) {
    let mut req = ureq::post(&format!("{base}/api/{endpoint}"));
    if let Some(cookie) = &c.cookie {
        req = req.set("cookie", cookie);
    }
    let resp = match body {
        Body::Form(f) => req.send_form(&f.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()),
        Body::Json(j) => req.send_json(j),
    };
    match resp {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{endpoint}: {e}"),
    }
}

/// Minimum role of each server function ("" = anyone), whether it needs the CSRF token, and a body.
fn endpoints(csrf: &str, n: usize) -> Vec<(&'static str, &'static str, bool, Body)> {
    let f = |pairs: &[(&'static str, String)]| Body::Form(pairs.to_vec());
    let c = csrf.to_string();
    vec![
        ("server_status", "", false, f(&[])),
        ("whoami", "", false, f(&[])),
        ("next_item", "annotator", false, f(&[])),
        ("guidelines", "annotator", false, f(&[])),
        ("getting_started", "", false, f(&[])),
        ("load_sample_prompts", "operator", true, f(&[("csrf", c.clone())])),
        (
            "submit_ranking",
            "annotator",
            true,
            Body::Json(
                serde_json::json!({"csrf": c, "submission": {"prompt_id": 1, "tiers": [], "skipped": "x",
                "flags": [], "better_answer": null, "time_spent_ms": 0}}),
            ),
        ),
        ("overview", "operator", false, f(&[])),
        (
            "add_prompt",
            "operator",
            true,
            f(&[("csrf", c.clone()), ("text", format!("operator-secret-prompt-{n}"))]),
        ),
        (
            "import_jsonl",
            "operator",
            true,
            Body::Json(
                serde_json::json!({"csrf": c, "file_name": "x.jsonl", "content": format!("{{\"prompt\": \"imported-{n}\"}}\n")}),
            ),
        ),
        ("set_guidelines", "operator", true, f(&[("csrf", c.clone()), ("text", "Be kind.".into())])),
        ("annotators", "operator", false, f(&[])),
        (
            "set_paused",
            "operator",
            true,
            f(&[("csrf", c.clone()), ("user_id", "999999".into()), ("paused", "true".into())]),
        ),
        ("mark_gold", "operator", true, f(&[("csrf", c.clone()), ("ranking_id", "999999".into())])),
        ("unmark_gold", "operator", true, f(&[("csrf", c.clone()), ("prompt_id", "999999".into())])),
        ("list_users", "admin", false, f(&[])),
        (
            "add_user",
            "admin",
            true,
            f(&[("csrf", c.clone()), ("name", format!("new{n}")), ("role", "annotator".into())]),
        ),
        ("disable_user", "admin", true, f(&[("csrf", c.clone()), ("name", format!("victim{n}"))])),
        ("dashboard", "operator", false, f(&[])),
        ("job_detail", "operator", false, f(&[("id", "1".into())])),
        ("estimate_job", "operator", false, f(&[("command", "bundle nope".into())])),
        ("submit_job", "operator", true, f(&[("csrf", c.clone()), ("command", "bundle nope".into())])),
        ("cancel_job", "operator", true, f(&[("csrf", c.clone()), ("id", "1".into())])),
        (
            "set_loop",
            "operator",
            true,
            Body::Json(
                serde_json::json!({"csrf": c, "settings": {"paused": true, "rm_after": 10, "method": "dpo",
                "rm_options": "", "policy_options": "", "eval_options": "", "rm_tolerance": 0.0, "kl_budget": 1.0,
                "min_win_rate": 0.5, "resample": 0}}),
            ),
        ),
        ("pause_loop", "operator", true, f(&[("csrf", c.clone()), ("paused", "true".into())])),
        ("promote", "operator", true, f(&[("csrf", c.clone()), ("version", "nope".into())])),
        ("rollback", "operator", true, f(&[("csrf", c.clone())])),
        ("list_api_keys", "admin", false, f(&[])),
        ("issue_api_key", "admin", true, f(&[("csrf", c.clone()), ("name", format!("key{n}"))])),
        ("revoke_api_key", "admin", true, f(&[("csrf", c.clone()), ("id", "1".into())])),
    ]
}

fn rank(role: &str) -> u8 {
    match role {
        "" => 0,
        "annotator" => 1,
        "operator" => 2,
        "admin" => 3,
        _ => unreachable!(),
    }
}

#[test]
fn every_server_function_checks_role_and_csrf_on_the_server() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "ann", "annotator");
    add_user(data.path(), "op", "operator");
    add_user(data.path(), "adm", "admin");
    for i in 0..8 {
        add_user(data.path(), &format!("victim{i}"), "annotator");
    }
    let server = Server::start(data.path());
    let base = server.base.clone();
    let callers = [
        Caller { role: "", cookie: None, csrf: String::new() },
        login(&base, "ann", "annotator"),
        login(&base, "op", "operator"),
        login(&base, "adm", "admin"),
    ];
    let mut n = 0;
    for caller in &callers {
        for (endpoint, min_role, needs_csrf, body) in endpoints(&caller.csrf, n) {
            n += 1;
            let (status, text) = call(&base, caller, endpoint, body);
            let who = if caller.role.is_empty() { "no session" } else { caller.role };
            if rank(caller.role) < rank(min_role) {
                let want = if caller.cookie.is_none() { 401 } else { 403 };
                assert_eq!(status, want, "{who} → {endpoint} should be refused: {text}");
            } else {
                assert!(status != 401 && status != 403, "{who} → {endpoint} was refused ({status}): {text}");
            }
            if needs_csrf && rank(caller.role) >= rank(min_role) {
                // The same call without the token is refused.
                let stripped = endpoints("", n).into_iter().find(|e| e.0 == endpoint).unwrap().3;
                let (status, text) = call(&base, caller, endpoint, stripped);
                assert_eq!(status, 403, "{who} → {endpoint} without CSRF token: {text}");
                assert!(text.contains("CSRF"), "{text}");
            }
        }
    }

    // The event stream and export downloads are for operators only.
    for path in ["/api/events", "/api/exports/x/manifest.json", "/api/data/annotators.jsonl"] {
        for (caller, want) in [(&callers[0], 401), (&callers[1], 403)] {
            let mut req = ureq::get(&format!("{base}{path}"));
            if let Some(c) = &caller.cookie {
                req = req.set("cookie", c);
            }
            match req.call() {
                Err(ureq::Error::Status(code, _)) => assert_eq!(code, want, "{path}"),
                other => panic!("{path} answered {:?}", other.map(|r| r.status())),
            }
        }
    }

    // Annotators never reach operator data, not even through the server-rendered pages.
    let ann = &callers[1];
    for page in ["/operator", "/users", "/annotate", "/"] {
        let html = ureq::get(&format!("{base}{page}"))
            .set("cookie", ann.cookie.as_deref().unwrap())
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(!html.contains("operator-secret-prompt"), "{page} leaked operator data to an annotator");
        assert!(!html.contains("victim"), "{page} leaked the user list to an annotator");
    }
    // A cross-site form post carries no SameSite=Strict cookie; and the cookie is HttpOnly.
    let resp = ureq::post(&format!("{base}/api/login"))
        .send_form(&[("name", "ann"), ("password", "ann-password")])
        .unwrap();
    let cookie = resp.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    // Wrong passwords and disabled users cannot log in.
    let bad = ureq::post(&format!("{base}/api/login")).send_form(&[("name", "ann"), ("password", "nope")]);
    assert!(matches!(bad, Err(ureq::Error::Status(401, _))));
}

#[test]
fn request_bodies_over_the_limit_are_refused_before_they_are_read() {
    use std::io::{Read, Write};
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "op", "operator");
    let server = Server::start(data.path());
    let op = login(&server.base, "op", "operator");
    // Announce a 40 MiB body and send none of it: the answer must come from the header alone.
    let addr = server.base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "POST /api/import_jsonl HTTP/1.1\r\nHost: {addr}\r\nCookie: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        op.cookie.as_deref().unwrap(),
        40 << 20
    );
    tcp.write_all(request.as_bytes()).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 64];
    let n = tcp.read(&mut head).unwrap();
    let status = String::from_utf8_lossy(&head[..n]);
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}

/// Posts a log-in; (status, Retry-After, body).
fn try_login(base: &str, name: &str, password: &str) -> (u16, Option<String>, String) {
    match ureq::post(&format!("{base}/api/login")).send_form(&[("name", name), ("password", password)]) {
        Ok(r) => (r.status(), None, r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => {
            let retry = r.header("retry-after").map(str::to_string);
            (code, retry, r.into_string().unwrap_or_default())
        }
        Err(e) => panic!("login: {e}"),
    }
}

#[test]
fn failed_log_ins_are_throttled_per_account_and_per_address() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "ann", "annotator");
    add_user(data.path(), "bob", "annotator");
    let server = Server::start_with(data.path(), &["--login-failures", "3", "--login-window-s", "4"]);
    let base = server.base.clone();

    // Two wrong passwords are answered 401; the third starts a 1 s refusal.
    for _ in 0..2 {
        assert_eq!(try_login(&base, "ann", "wrong").0, 401);
    }
    let (status, retry, text) = try_login(&base, "Ann ", "wrong");
    assert_eq!((status, retry.as_deref()), (429, Some("1")), "{text}");
    assert!(text.contains("too many failed log-ins") && text.contains("1 s"), "{text}");
    // While refused, not even the right password is checked.
    let (status, _, text) = try_login(&base, "ann", "ann-password");
    assert_eq!(status, 429, "{text}");
    // After the delay the next failure doubles it.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (status, retry, _) = try_login(&base, "ann", "wrong");
    assert_eq!((status, retry.as_deref()), (429, Some("2")));
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let (status, _, text) = try_login(&base, "ann", "ann-password");
    assert_eq!(status, 200, "the right password works once the delay is over: {text}");

    // Past the window the address's count has aged out; spraying names from one address blocks the address,
    // so a further name (even with its right password) is refused too.
    std::thread::sleep(std::time::Duration::from_millis(4200));
    for (i, want) in [401, 401, 429].into_iter().enumerate() {
        assert_eq!(try_login(&base, &format!("nobody{i}"), "guess").0, want, "name {i}");
    }
    assert_eq!(try_login(&base, "bob", "bob-password").0, 429, "the address is refused for every name");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(try_login(&base, "bob", "bob-password").0, 200);

    let (_, log) = server.terminate();
    assert!(log.contains("log-ins throttled"), "the refusal is logged: {log}");
}

#[test]
fn the_site_has_an_icon_and_every_page_its_own_title() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    for path in ["/favicon.svg", "/favicon.ico"] {
        let r = ureq::get(&server.url(path)).call().unwrap();
        assert_eq!(r.header("content-type"), Some("image/svg+xml"), "{path}");
        assert!(r.into_string().unwrap().contains("<svg"), "{path}");
    }
    for (path, title) in
        [("/", "Home · alignbox"), ("/login", "Log in · alignbox"), ("/annotate", "Annotate · alignbox")]
    {
        let html = ureq::get(&server.url(path)).call().unwrap().into_string().unwrap();
        assert!(html.contains(&format!("<title>{title}</title>")), "{path}: {html}");
        assert!(html.contains(r#"rel="icon""#), "{path}");
    }
}

/// `whoami` with a cookie: the name, or None when the session is gone.
fn whoami(base: &str, cookie: &str) -> Option<String> {
    let me: serde_json::Value =
        ureq::post(&format!("{base}/api/whoami")).set("cookie", cookie).call().unwrap().into_json().unwrap();
    me["name"].as_str().map(str::to_string)
}

#[test]
fn logging_out_everywhere_or_disabling_the_account_ends_every_session() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "ann", "annotator");
    add_user(data.path(), "adm", "admin");
    let server = Server::start(data.path());
    let base = server.base.clone();

    // Two browsers of one annotator; "log out everywhere" in one ends both.
    let (a, b) = (login(&base, "ann", "annotator"), login(&base, "ann", "annotator"));
    let (cookie_a, cookie_b) = (a.cookie.clone().unwrap(), b.cookie.clone().unwrap());
    assert_eq!(whoami(&base, &cookie_b).as_deref(), Some("ann"));
    let (status, text) = call(&base, &a, "logout_everywhere", Body::Form(vec![("csrf", a.csrf.clone())]));
    assert_eq!((status, text.trim()), (200, "2"), "both sessions ended");
    assert_eq!(whoami(&base, &cookie_a), None);
    assert_eq!(whoami(&base, &cookie_b), None);
    assert_eq!(call(&base, &b, "next_item", Body::Form(vec![])).0, 401);

    // An admin disabling the account ends its sessions at once, and it cannot log in again.
    let c = login(&base, "ann", "annotator");
    let adm = login(&base, "adm", "admin");
    let form = vec![("csrf", adm.csrf.clone()), ("name", "ann".to_string())];
    assert_eq!(call(&base, &adm, "disable_user", Body::Form(form)).0, 200);
    assert_eq!(whoami(&base, c.cookie.as_deref().unwrap()), None);
    assert_eq!(call(&base, &c, "next_item", Body::Form(vec![])).0, 401);
    assert_eq!(try_login(&base, "ann", "ann-password").0, 401);
    // The admin's own session is untouched.
    assert_eq!(whoami(&base, adm.cookie.as_deref().unwrap()).as_deref(), Some("adm"));
}

#[test]
fn operators_download_the_preference_data_as_jsonl_and_others_cannot() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "ann", "annotator");
    add_user(data.path(), "op", "operator");
    let file = data.path().join("in.jsonl");
    std::fs::write(
        &file,
        "{\"prompt\": \"Pick\", \"responses\": [\"x\", \"y\", \"z\"], \"tiers\": [[1], [0, 2]]}\n\
         {\"prompt\": \"Q\", \"chosen\": \"good\", \"rejected\": \"bad\"}\n",
    )
    .unwrap();
    let out =
        support::alignbox().arg("import").arg(&file).arg("--data-dir").arg(data.path()).output().unwrap();
    assert!(out.status.success());
    let server = Server::start(data.path());
    let base = server.base.clone();
    let get = |path: &str, cookie: Option<&str>| {
        let mut req = ureq::get(&format!("{base}{path}"));
        if let Some(c) = cookie {
            req = req.set("cookie", c);
        }
        match req.call() {
            Ok(r) => {
                let disposition = r.header("content-disposition").unwrap_or_default().to_string();
                (r.status(), disposition, r.into_string().unwrap())
            }
            Err(ureq::Error::Status(code, _)) => (code, String::new(), String::new()),
            Err(e) => panic!("{path}: {e}"),
        }
    };
    let ann = login(&base, "ann", "annotator");
    let op = login(&base, "op", "operator");
    assert_eq!(get("/api/data/rankings.jsonl", None).0, 401);
    assert_eq!(get("/api/data/rankings.jsonl", ann.cookie.as_deref()).0, 403);
    assert_eq!(get("/api/data/other.jsonl", op.cookie.as_deref()).0, 404);

    let (status, disposition, rankings) = get("/api/data/rankings.jsonl", op.cookie.as_deref());
    assert_eq!(status, 200);
    assert!(disposition.contains("rankings.jsonl"), "{disposition}");
    let lines: Vec<serde_json::Value> = rankings.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{rankings}");
    let pick = lines.iter().find(|l| l["prompt"] == "Pick").unwrap();
    let best = pick["tiers"][0][0].as_u64().unwrap() as usize;
    assert_eq!(pick["responses"][best], "y", "{pick}");
    let (_, _, pairs) = get("/api/data/pairs.jsonl", op.cookie.as_deref());
    // y > x and y > z from the ranking (the tie x = z left out), and the imported pair.
    assert_eq!(pairs.lines().count(), 3, "{pairs}");
    assert!(pairs.contains("\"chosen\":\"good\"") || pairs.contains("\"chosen\": \"good\""), "{pairs}");
}
