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

/// POSTs `body` to `/v1/chat/completions` with API key `key`: (status, JSON body).
fn chat(server: &Server, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = ureq::post(&server.url("/v1/chat/completions")).set("authorization", &format!("Bearer {key}"));
    match r.send_json(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_json().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn chat_refuses_a_prompt_longer_than_the_context_and_clips_max_tokens_to_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::must(&["models", "import", support::fixture("tiny-llama-gqa-tied").to_str().unwrap()], d);
    support::must(&["users", "add", "boss", "--role", "admin"], d);
    let server = Server::start(d);
    let boss = support::api::Session::login(&server.base, "boss", support::PASSWORD);
    let key: String = serde_json::from_value(boss.ok("issue_api_key", &[("name", "limits")])).unwrap();
    // The tiny model's context is 128 tokens.
    let long = "red cat blue dog ".repeat(200);
    let started = Instant::now();
    let (status, body) =
        chat(&server, &key, serde_json::json!({"messages": [{"role": "user", "content": long}]}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "context_length_exceeded", "{body}");
    assert_eq!(body["error"]["param"], "messages", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("128 tokens"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "refused at once");
    // A short prompt with max_tokens beyond the context: the answer stops where the context ends.
    let req = serde_json::json!({"messages": [{"role": "user", "content": "red cat"}], "max_tokens": 4000,
        "temperature": 1.0, "seed": 3});
    let (status, body) = chat(&server, &key, req);
    assert_eq!(status, 200, "{body}");
    let (prompt, completion) = (
        body["usage"]["prompt_tokens"].as_u64().unwrap(),
        body["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    assert!(prompt + completion <= 128, "{body}");
    if body["choices"][0]["finish_reason"] == "length" {
        assert_eq!(prompt + completion, 128, "clipped to what fits: {body}");
    }
}

/// POSTs `body` to `/v1/completions` with API key `key`: (status, JSON body).
fn complete(server: &Server, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = ureq::post(&server.url("/v1/completions")).set("authorization", &format!("Bearer {key}"));
    match r.send_json(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_json().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn completions_echo_the_log_probs_that_generate_reports_and_answer_as_generate_raw_does() {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::must(&["models", "import", support::fixture("tiny-llama-gqa-tied").to_str().unwrap()], d);
    support::must(&["users", "add", "boss", "--role", "admin"], d);
    let gen = |extra: &[&str]| -> Value {
        let mut args = vec!["generate", "--greedy", "--json", "--max-new-tokens", "6", "-p", "red cat"];
        args.extend_from_slice(extra);
        serde_json::from_str(support::must(&args, d).lines().next().unwrap()).unwrap()
    };
    let (chat, raw) = (gen(&[]), gen(&["--raw"]));
    let server = Server::start(d);
    let boss = support::api::Session::login(&server.base, "boss", support::PASSWORD);
    let key: String = serde_json::from_value(boss.ok("issue_api_key", &[("name", "eval")])).unwrap();
    let ids = |v: &Value| -> Vec<u64> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect() };

    // Log-likelihood as a harness asks for it: token ids, echo, no new tokens.
    let (prompt, answer) = (ids(&chat["prompt_ids"]), ids(&chat["tokens"]));
    let all: Vec<u64> = [prompt.clone(), answer.clone()].concat();
    let (status, body) = complete(
        &server,
        &key,
        json!({"prompt": all, "echo": true, "max_tokens": 0, "logprobs": 1, "temperature": 0}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "text_completion");
    let lp = &body["choices"][0]["logprobs"];
    let token_logprobs = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(token_logprobs.len(), all.len(), "{body}");
    assert!(token_logprobs[0].is_null() && lp["top_logprobs"][0].is_null(), "{body}");
    for (i, want) in chat["logprobs"].as_array().unwrap().iter().enumerate() {
        let at = prompt.len() + i;
        let got = token_logprobs[at].as_f64().unwrap();
        assert!((got - want.as_f64().unwrap()).abs() < 1e-4, "position {at}: {got} vs {want}");
        // Greedy: the token is the most likely one there.
        let top = lp["top_logprobs"][at].as_object().unwrap();
        let best = top.iter().max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap())).unwrap();
        assert_eq!(best.0, lp["tokens"][at].as_str().unwrap(), "position {at}: {top:?}");
    }
    let offsets = ids(&lp["text_offset"]);
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]) && offsets[0] == 0, "{offsets:?}");
    assert_eq!(body["usage"]["prompt_tokens"], all.len());
    assert_eq!(body["usage"]["completion_tokens"], 0);

    // A text prompt is encoded raw (no chat template): greedy gives `generate --raw`'s answer.
    let req = json!({"prompt": "red cat", "max_tokens": 6, "temperature": 0, "logprobs": 2});
    let (status, body) = complete(&server, &key, req);
    assert_eq!(status, 200, "{body}");
    let text = body["choices"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(text, raw["text"].as_str().unwrap(), "{body}");
    let n = body["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    assert_eq!(body["choices"][0]["logprobs"]["token_logprobs"].as_array().unwrap().len(), n, "{body}");
    assert!(body["choices"][0]["logprobs"]["top_logprobs"][0].as_object().unwrap().len() <= 2);

    // A stop string cuts the answer before it.
    if let Some((at, c)) =
        text.char_indices().nth(text.chars().count() / 2).filter(|(_, c)| !c.is_whitespace())
    {
        let stop = c.to_string();
        let want = &text[..text.find(&stop).unwrap_or(at)];
        let req = json!({"prompt": "red cat", "max_tokens": 6, "temperature": 0, "stop": [stop]});
        let (status, body) = complete(&server, &key, req);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["text"], want, "{body}");
        assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    }

    // Several prompts, n answers each: prompts × n choices, indexed in order.
    let req = json!({"prompt": ["red cat", "blue dog"], "max_tokens": 3, "n": 2, "seed": 1});
    let (status, body) = complete(&server, &key, req);
    assert_eq!(status, 200, "{body}");
    let index: Vec<u64> =
        body["choices"].as_array().unwrap().iter().map(|c| c["index"].as_u64().unwrap()).collect();
    assert_eq!(index, [0, 1, 2, 3]);

    // Refused at once, naming the parameter.
    for (req, param, code) in [
        (json!({"prompt": "red cat", "max_tokens": 0}), "max_tokens", Value::Null),
        (json!({"prompt": [1, 2, 99999]}), "prompt", Value::Null),
        (json!({"prompt": "red cat", "stream": true}), "stream", Value::Null),
        (json!({"prompt": "red cat", "logprobs": 50}), "logprobs", Value::Null),
        (json!({"prompt": "red cat ".repeat(200)}), "prompt", json!("context_length_exceeded")),
    ] {
        let (status, body) = complete(&server, &key, req.clone());
        assert_eq!(status, 400, "{req}: {body}");
        assert_eq!(body["error"]["param"], param, "{req}: {body}");
        assert_eq!(body["error"]["code"], code, "{req}: {body}");
    }
    let (status, _) = {
        let r = ureq::post(&server.url("/v1/completions")).send_json(json!({"prompt": "x"}));
        match r {
            Ok(r) => (r.status(), ()),
            Err(ureq::Error::Status(c, _)) => (c, ()),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(status, 401, "an API key is needed");
}

#[test]
fn a_busy_server_refuses_api_requests_at_once_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::must(&["models", "import", support::fixture("tiny-llama-gqa-tied").to_str().unwrap()], d);
    support::must(&["users", "add", "boss", "--role", "admin"], d);
    let server = Server::start_with(d, &["--api-concurrency", "1", "--api-queue", "0"]);
    let boss = support::api::Session::login(&server.base, "boss", support::PASSWORD);
    let key: String = serde_json::from_value(boss.ok("issue_api_key", &[("name", "busy")])).unwrap();
    // A long request (8 answers up to the context) holds the only slot while a second one arrives.
    let long =
        serde_json::json!({"messages": [{"role": "user", "content": "red cat"}], "max_tokens": 4000, "n": 8});
    let (url, k) = (server.url("/v1/chat/completions"), key.clone());
    let first = std::thread::spawn(move || {
        ureq::post(&url)
            .set("authorization", &format!("Bearer {k}"))
            .send_json(long)
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    });
    // The second request goes once the first holds the slot.
    let holding = Instant::now() + Duration::from_secs(30);
    while !ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
        .contains("alignbox_api_requests_in_flight 1")
    {
        assert!(Instant::now() < holding, "the first request never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let second = ureq::post(&server.url("/v1/chat/completions"))
        .set("authorization", &format!("Bearer {key}"))
        .send_json(serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}));
    let Err(ureq::Error::Status(429, r)) = second else {
        panic!("the second request was not refused: {second:?}")
    };
    assert!(started.elapsed() < Duration::from_secs(2), "refused at once");
    assert_eq!(r.header("retry-after"), Some("1"));
    let body: serde_json::Value = r.into_json().unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(first.join().unwrap().unwrap(), 200, "the first one was answered");
    let metrics = ureq::get(&server.url("/metrics")).call().unwrap().into_string().unwrap();
    assert!(metrics.contains("alignbox_api_refused_total 1"), "{metrics}");
    assert!(metrics.contains("alignbox_api_requests_in_flight 0"), "{metrics}");
}
