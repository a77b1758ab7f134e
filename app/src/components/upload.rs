//! The operator page's JSONL import: a file picker and a drop zone. The file goes to `POST /api/import/upload`
//! as the request body (the browser streams it from disk; nothing is pasted into the page), with its name and
//! size shown and a progress bar while it is sent; the answer is what was imported, or the refusal with its
//! `file:line` and field (nothing is imported then).

use leptos::prelude::*;

/// Where an upload stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UploadState {
    /// The file's name and size as shown ("prefs.jsonl, 1.2 MiB").
    pub file: String,
    /// Bytes sent and the total (0 before the first progress event).
    pub sent: (f64, f64),
    /// Still sending or importing.
    pub busy: bool,
    /// The server's answer.
    pub message: String,
    /// Whether the answer is a refusal.
    pub failed: bool,
}

/// "812 B", "3.4 KiB", "1.2 MiB".
pub fn human_size(bytes: f64) -> String {
    if bytes < 1024.0 {
        format!("{bytes:.0} B")
    } else if bytes < 1024.0 * 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    }
}

/// `s` with everything but unreserved URL characters percent-encoded (UTF-8).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The picker, the drop zone, the progress and the answer. `on_done` runs after a successful import.
#[component]
pub fn Upload(
    /// The session's CSRF token (sent in `X-CSRF-Token`).
    csrf: String,
    /// Called after a file was imported (the page refreshes its numbers).
    on_done: Callback<()>,
) -> impl IntoView {
    let state = RwSignal::new(UploadState::default());
    let csrf = StoredValue::new(csrf);
    let over = RwSignal::new(false);
    let percent = move || {
        let (sent, total) = state.get().sent;
        if total > 0.0 {
            (100.0 * sent / total).round()
        } else {
            0.0
        }
    };
    let on_change = move |_ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let input: Option<leptos::web_sys::HtmlInputElement> =
                _ev.target().and_then(|t| t.dyn_into().ok());
            if let Some(f) = input.as_ref().and_then(|i| i.files()).and_then(|l| l.get(0)) {
                send(f, csrf.get_value(), state, on_done);
            }
            if let Some(i) = input {
                i.set_value(""); // choosing the same file again uploads it again
            }
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        over.set(false);
        #[cfg(feature = "hydrate")]
        if let Some(f) = ev.data_transfer().and_then(|d| d.files()).and_then(|l| l.get(0)) {
            send(f, csrf.get_value(), state, on_done);
        }
    };
    #[cfg(not(feature = "hydrate"))]
    let _ = (csrf, on_done); // used by the browser's handlers only
    view! {
        <div id="upload-zone" class="upload-zone" class:over=move || over.get()
            on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); over.set(true); }
            on:dragleave=move |_| over.set(false)
            on:drop=on_drop>
            <p>"Drop a JSONL file here, or choose one: "
                <input id="import-file" type="file" accept=".jsonl,.json,.ndjson,.txt,application/x-ndjson,application/json"
                    on:change=on_change disabled=move || state.get().busy/>
            </p>
            <p id="upload-file" class="hint">{move || state.get().file}</p>
            <progress id="upload-progress" max="100" prop:value=percent
                style:display=move || if state.get().file.is_empty() { "none" } else { "block" }></progress>
            <p id="upload-message" role="status" class=move || if state.get().failed { "error" } else { "saved" }>
                {move || state.get().message}
            </p>
        </div>
    }
}

/// Sends `file` as the body of `POST /api/import/upload`, reporting progress and the answer in `state`.
#[cfg(feature = "hydrate")]
fn send(file: leptos::web_sys::File, csrf: String, state: RwSignal<UploadState>, on_done: Callback<()>) {
    use leptos::wasm_bindgen::{closure::Closure, JsCast};
    let shown = format!("{}, {}", file.name(), human_size(file.size()));
    state.set(UploadState { file: shown, sent: (0.0, file.size()), busy: true, ..Default::default() });
    let fail = move |why: String| {
        state.update(|s| {
            s.busy = false;
            s.failed = true;
            s.message = why;
        })
    };
    let Ok(xhr) = leptos::web_sys::XmlHttpRequest::new() else {
        return fail("this browser cannot upload".into());
    };
    let url = format!("/api/import/upload?name={}", url_encode(&file.name()));
    if xhr.open_with_async("POST", &url, true).is_err()
        || xhr.set_request_header("X-CSRF-Token", &csrf).is_err()
        || xhr.set_request_header("Content-Type", "application/x-ndjson").is_err()
    {
        return fail("the upload could not start".into());
    }
    if let Ok(upload) = xhr.upload() {
        let progress = Closure::<dyn FnMut(leptos::web_sys::ProgressEvent)>::new(
            move |e: leptos::web_sys::ProgressEvent| {
                if e.length_computable() {
                    state.update(|s| s.sent = (e.loaded(), e.total()));
                }
            },
        );
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
        progress.forget();
    }
    let answered = xhr.clone();
    let load = Closure::<dyn FnMut()>::new(move || {
        let status = answered.status().unwrap_or(0);
        let text = answered.response_text().ok().flatten().unwrap_or_default();
        state.update(|s| {
            s.busy = false;
            s.failed = status != 200;
            s.sent.0 = s.sent.1;
            s.message = if text.is_empty() { format!("the server answered {status}") } else { text };
        });
        if status == 200 {
            on_done.run(());
        }
    });
    xhr.set_onload(Some(load.as_ref().unchecked_ref()));
    load.forget();
    let error = Closure::<dyn FnMut()>::new(move || fail("the upload failed: the connection broke".into()));
    xhr.set_onerror(Some(error.as_ref().unchecked_ref()));
    error.forget();
    if xhr.send_with_opt_blob(Some(&file)).is_err() {
        fail("the upload could not be sent".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_names_as_shown_and_sent() {
        assert_eq!(human_size(812.0), "812 B");
        assert_eq!(human_size(3482.0), "3.4 KiB");
        assert_eq!(human_size(1.25 * 1024.0 * 1024.0), "1.2 MiB");
        assert_eq!(url_encode("my prefs (2).jsonl"), "my%20prefs%20%282%29.jsonl");
        assert_eq!(url_encode("é"), "%C3%A9");
    }
}
