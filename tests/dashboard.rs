//! The operator dashboard in headless Chromium against the real server: the operator checks a job's memory
//! estimate, starts a reward-model job and then a PPO job from the page, watches them progress through the
//! live event stream (no reload) with their charts, promotes the new policy in the lineage tree and rolls back.

mod support;

use std::time::{Duration, Instant};

use support::{fixture, must, webdriver::Browser, Server};

/// Sets an input's or select's value the way typing would (the page listens to `input` / `change`).
fn set_value(b: &Browser, css: &str, value: &str, event: &str) {
    let script = format!(
        "const e = document.querySelector({css:?}); e.value = {value:?}; e.dispatchEvent(new Event({event:?}, {{bubbles: true}}));"
    );
    b.execute(&script);
}

/// The text of the first element matching `css` ("" when none), read in the page (rows re-render often:
/// element references go stale).
fn text_of(b: &Browser, css: &str) -> String {
    let v = b.execute(&format!("const e = document.querySelector({css:?}); return e ? e.innerText : '';"));
    v.as_str().unwrap_or_default().to_string()
}

/// An attribute of the first element matching `css` ("" when none).
fn attr_of(b: &Browser, css: &str, name: &str) -> String {
    let v = b.execute(&format!(
        "const e = document.querySelector({css:?}); return e ? (e.getAttribute({name:?}) || '') : '';"
    ));
    v.as_str().unwrap_or_default().to_string()
}

/// The job ids listed, newest first.
fn job_ids(b: &Browser) -> Vec<u64> {
    let v = b.execute("return Array.from(document.querySelectorAll('#jobs tr[data-job-id]')).map(e => e.getAttribute('data-job-id'));");
    v.as_array().unwrap().iter().filter_map(|x| x.as_str()?.parse().ok()).collect()
}

/// Starts `kind options` from the page: check (memory estimate shown), then start. Returns the job id.
fn start_job(b: &Browser, kind: &str, options: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        set_value(b, "#job-kind", kind, "change");
        std::thread::sleep(Duration::from_millis(100));
        set_value(b, "#job-options", options, "input");
        b.click(&b.wait_for("#job-estimate", Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(500));
        if text_of(b, "#job-estimate-text").starts_with("Memory estimate") {
            break;
        }
        assert!(Instant::now() < deadline, "no estimate: {}", text_of(b, "#job-estimate-text"));
    }
    let estimate = text_of(b, "#job-estimate-text");
    assert!(estimate.contains("total") && estimate.contains("MiB"), "{estimate}");
    let before = job_ids(b);
    b.click(&b.wait_for("#job-start", Duration::from_secs(5)));
    let mut id = None;
    b.wait_until(Duration::from_secs(30), "the new job's row", || {
        id = job_ids(b).into_iter().find(|x| !before.contains(x));
        id.is_some()
    });
    id.unwrap()
}

/// Waits (without reloading: the event stream updates the row) until job `id` is done.
fn wait_done(b: &Browser, id: u64) -> Vec<String> {
    let mut seen = Vec::new();
    b.wait_until(Duration::from_secs(300), &format!("job {id} done"), || {
        let state = attr_of(b, &format!("#jobs tr[data-job-id='{id}']"), "data-state");
        assert_ne!(
            state,
            "failed",
            "job {id} failed: {}",
            text_of(b, &format!("#jobs tr[data-job-id='{id}'] .message"))
        );
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        state == "done"
    });
    seen
}

#[test]
fn the_operator_starts_jobs_watches_progress_and_charts_promotes_and_rolls_back() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    must(&["models", "import", fixture("tiny-llama-gqa-tied").to_str().unwrap(), "--name", "tiny"], d);
    must(&["users", "add", "op", "--role", "operator"], d);
    let lines: Vec<String> = (0..16)
        .map(|i| {
            serde_json::json!({"prompt": format!("prompt {i}"), "responses": [format!("good good {i}"), format!("bad {i} bad bad"), format!("meh {i}")],
                "tiers": [[0], [2], [1]]})
            .to_string()
        })
        .collect();
    std::fs::write(d.join("r.jsonl"), lines.join("\n")).unwrap();
    must(&["import", d.join("r.jsonl").to_str().unwrap()], d);
    let server = Server::start_with(d, &["--candidates", "0"]);
    let b = Browser::start();

    // Log in, then open the dashboard.
    b.goto(&server.url("/login"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        set_value(&b, "#login-name", "op", "input");
        set_value(&b, "#login-password", "pw-123456", "input");
        if let Some(submit) = b.find("#login-submit") {
            b.click(&submit);
        }
        std::thread::sleep(Duration::from_millis(500));
        if b.find("#login-submit").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "login did not complete");
    }
    b.goto(&server.url("/training"));
    b.wait_for("#loop-status", Duration::from_secs(20));
    assert!(text_of(&b, "#current-policy").contains("tiny"));

    // A reward-model job started from the page; its progress arrives live and its charts appear.
    let rm_job = start_job(
        &b,
        "train rm",
        "--steps 40 --batch 4 --max-tokens 48 --lr 3e-3 --checkpoint-every 10 --eval-fraction 0.3",
    );
    let states = wait_done(&b, rm_job);
    assert_eq!(states.last().unwrap(), "done", "{states:?}");
    b.click(&b.wait_for(&format!("#jobs tr[data-job-id='{rm_job}']"), Duration::from_secs(5)));
    b.wait_until(Duration::from_secs(20), "the job's loss chart", || {
        attr_of(&b, &format!("#job-detail[data-job-id='{rm_job}'] #chart-loss polyline"), "points")
            .split(' ')
            .count()
            == 40
    });
    assert!(text_of(&b, "#job-log").contains("memory estimate"), "{}", text_of(&b, "#job-log"));
    b.wait_until(Duration::from_secs(20), "the accuracy chart over versions", || {
        !attr_of(&b, "#chart-reward-model-held-out-accuracy polyline", "points").is_empty()
    });

    // A PPO job against it, then promotion of the new policy from the lineage tree.
    let rm = format!("job-{rm_job}");
    let ppo_job = start_job(
        &b,
        "train ppo",
        &format!("--reward {rm} --steps 3 --batch 4 --lora 4 --max-new-tokens 6 --max-tokens 48"),
    );
    wait_done(&b, ppo_job);
    let policy = format!("job-{ppo_job}");
    let promote = format!("#lineage li[data-version='{policy}'] > button.promote");
    b.click(&b.wait_for(&promote, Duration::from_secs(20)));
    b.wait_until(Duration::from_secs(20), "the new policy is current", || {
        b.find(&format!("#lineage li[data-version='{policy}'] > #current-badge")).is_some()
    });
    assert!(text_of(&b, "#current-policy").contains(&policy));
    let tree = text_of(&b, "#lineage li[data-version='tiny']");
    assert!(tree.contains(&policy) && tree.contains(&rm), "both hang under the base: {tree}");
    assert!(
        text_of(&b, &format!("#lineage li[data-version='{policy}']")).contains(&format!("also from {rm}"))
    );

    // Roll back.
    b.click(&b.wait_for("#rollback", Duration::from_secs(5)));
    b.wait_until(Duration::from_secs(20), "the base is current again", || {
        b.find("#lineage li[data-version='tiny'] > #current-badge").is_some()
    });
    assert!(text_of(&b, "#training-message").contains("Rolled back"), "{}", text_of(&b, "#training-message"));
    assert!(text_of(&b, "#decisions").contains("rolled back"), "{}", text_of(&b, "#decisions"));
}
