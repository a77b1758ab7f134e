//! JSONL imports, all-or-nothing. Each line is one record; its kind is recognised from its keys:
//!
//! | keys | kind |
//! |---|---|
//! | `chosen`, `rejected` (+ `prompt`) | a TRL preference pair (strings or message lists) |
//! | `chosen`, `rejected` (no `prompt`) | an HH-RLHF pair of `\n\nHuman: … \n\nAssistant: …` transcripts |
//! | `prompt`/`messages`, `responses`, `tiers` | a ranking (tiers of indices into `responses`, best first) |
//! | the same with `"gold": true` | a gold item: the known order, mixed into annotators' queues to measure them |
//! | `prompt`/`messages`, `responses` | a candidate set |
//! | `prompt`/`messages`, `completion` | a demonstration |
//! | `prompt` or `messages` | a prompt |
//!
//! The whole file is parsed before anything is written; the first bad line stops the import with the file, the
//! line number and the field.

use serde_json::{Map, Value};

use crate::{now_ms, Batch, Candidate, Demonstration, Message, Prompt, Ranking};

/// Longest line accepted (bytes).
pub const MAX_LINE: usize = 1 << 20;

/// What an import accepts beyond well-formed records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportLimits {
    /// Most answers one item (`responses`) may hold: annotators rank them all on one page.
    pub max_answers: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self { max_answers: 16 }
    }
}

/// A refused import: where and why. Nothing was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {}{why}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct ImportError {
    /// The file name as given.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// What is wrong.
    pub why: String,
}

struct Line<'a> {
    file: &'a str,
    no: usize,
}

impl Line<'_> {
    fn err(&self, field: Option<&str>, why: impl Into<String>) -> ImportError {
        ImportError { file: self.file.into(), line: self.no, field: field.map(String::from), why: why.into() }
    }
    fn source(&self) -> String {
        format!("{}:{}", self.file, self.no)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(l: &Line, obj: &Map<String, Value>, field: &str) -> Result<String, ImportError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(l.err(Some(field), "is empty")),
        Some(other) => Err(l.err(Some(field), format!("must be a string, found {}", type_name(other)))),
        None => Err(l.err(Some(field), "is missing")),
    }
}

fn messages(l: &Line, v: &Value, field: &str) -> Result<Vec<Message>, ImportError> {
    let arr = v
        .as_array()
        .ok_or_else(|| l.err(Some(field), format!("must be a list of messages, found {}", type_name(v))))?;
    if arr.is_empty() {
        return Err(l.err(Some(field), "has no messages"));
    }
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let f = format!("{field}[{i}]");
            let o = m
                .as_object()
                .ok_or_else(|| l.err(Some(&f), format!("must be an object, found {}", type_name(m))))?;
            let role =
                string(l, o, "role").map_err(|e| ImportError { field: Some(format!("{f}.role")), ..e })?;
            if !["system", "user", "assistant"].contains(&role.as_str()) {
                return Err(l.err(
                    Some(&format!("{f}.role")),
                    format!("must be system, user or assistant, found {role:?}"),
                ));
            }
            let content = match o.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    return Err(l.err(
                        Some(&format!("{f}.content")),
                        format!("must be a string, found {}", type_name(other)),
                    ))
                }
                None => return Err(l.err(Some(&format!("{f}.content")), "is missing")),
            };
            Ok(Message { role, content })
        })
        .collect()
}

/// The prompt conversation of a record: `prompt` (a string or messages) or `messages`.
fn prompt_messages(l: &Line, obj: &Map<String, Value>) -> Result<Vec<Message>, ImportError> {
    match (obj.get("prompt"), obj.get("messages")) {
        (Some(Value::String(_)), _) => {
            Ok(vec![Message { role: "user".into(), content: string(l, obj, "prompt")? }])
        }
        (Some(v @ Value::Array(_)), _) => messages(l, v, "prompt"),
        (Some(other), _) => {
            Err(l.err(Some("prompt"), format!("must be a string or messages, found {}", type_name(other))))
        }
        (None, Some(v)) => messages(l, v, "messages"),
        (None, None) => Err(l.err(Some("prompt"), "is missing (or give `messages`)")),
    }
}

/// An answer: a string, or messages whose last one is the assistant's.
fn answer(l: &Line, obj: &Map<String, Value>, field: &str) -> Result<String, ImportError> {
    match obj.get(field) {
        Some(Value::Array(_)) => {
            let ms = messages(l, &obj[field], field)?;
            let last = ms.last().expect("non-empty");
            if last.role != "assistant" {
                return Err(l.err(Some(field), "the last message must be the assistant's answer"));
            }
            Ok(last.content.clone())
        }
        _ => string(l, obj, field),
    }
}

/// Splits an HH-RLHF transcript into the conversation before the last answer and that answer.
fn hh_split(l: &Line, text: &str, field: &str) -> Result<(Vec<Message>, String), ImportError> {
    let cut =
        text.rfind("\n\nAssistant:").ok_or_else(|| l.err(Some(field), "has no \"\\n\\nAssistant:\" turn"))?;
    let (head, tail) = (&text[..cut], &text[cut + "\n\nAssistant:".len()..]);
    let mut msgs = Vec::new();
    for part in head.split("\n\n").filter(|p| !p.trim().is_empty()) {
        if let Some(c) = part.strip_prefix("Human:") {
            msgs.push(Message { role: "user".into(), content: c.trim().into() });
        } else if let Some(c) = part.strip_prefix("Assistant:") {
            msgs.push(Message { role: "assistant".into(), content: c.trim().into() });
        } else if let Some(last) = msgs.last_mut() {
            last.content.push_str("\n\n");
            last.content.push_str(part.trim());
        } else {
            return Err(l.err(Some(field), "must start with \"\\n\\nHuman:\""));
        }
    }
    if msgs.last().is_none_or(|m| m.role != "user") {
        return Err(l.err(Some(field), "the last turn before the answer must be the human's"));
    }
    Ok((msgs, tail.trim().to_string()))
}

fn responses(l: &Line, obj: &Map<String, Value>, limits: &ImportLimits) -> Result<Vec<String>, ImportError> {
    let arr = obj["responses"].as_array().ok_or_else(|| {
        l.err(Some("responses"), format!("must be a list of strings, found {}", type_name(&obj["responses"])))
    })?;
    if arr.is_empty() {
        return Err(l.err(Some("responses"), "is empty"));
    }
    if arr.len() > limits.max_answers {
        return Err(l.err(
            Some("responses"),
            format!(
                "holds {} answers, more than the limit of {} (--max-answers)",
                arr.len(),
                limits.max_answers
            ),
        ));
    }
    if obj.contains_key("tiers") && arr.len() < 2 {
        return Err(l.err(Some("responses"), "a ranking needs at least two answers"));
    }
    arr.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(l.err(
                Some(&format!("responses[{i}]")),
                format!("must be a string, found {}", type_name(other)),
            )),
        })
        .collect()
}

fn tiers(l: &Line, v: &Value, n: usize) -> Result<Vec<Vec<usize>>, ImportError> {
    let bad = |why: String| l.err(Some("tiers"), why);
    let arr = v
        .as_array()
        .ok_or_else(|| bad(format!("must be a list of lists of indices, found {}", type_name(v))))?;
    let mut seen = vec![false; n];
    let mut out = Vec::new();
    for tier in arr {
        let t = tier.as_array().ok_or_else(|| bad("each tier must be a list of indices".into()))?;
        let mut ids = Vec::new();
        for i in t {
            let i = i
                .as_u64()
                .filter(|&i| (i as usize) < n)
                .ok_or_else(|| bad(format!("{i} is not an index into responses (0..{n})")))?
                as usize;
            if std::mem::replace(&mut seen[i], true) {
                return Err(bad(format!("index {i} appears twice")));
            }
            ids.push(i);
        }
        if !ids.is_empty() {
            out.push(ids);
        }
    }
    if out.len() < 2 && n > 1 {
        return Err(bad("must order at least two tiers".into()));
    }
    Ok(out)
}

/// The optional `gold` field: a boolean.
fn gold_flag(l: &Line, obj: &Map<String, Value>) -> Result<bool, ImportError> {
    match obj.get("gold") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(l.err(Some("gold"), format!("must be true or false, found {}", type_name(other)))),
    }
}

/// The order of an imported candidate set: a gold item (`"gold": true`) or an imported ranking (id `id`).
fn ordered(
    l: &Line,
    obj: &Map<String, Value>,
    batch: &mut Batch,
    prompt_id: u64,
    tiers: Vec<Vec<u64>>,
    id: u64,
    now: u64,
) -> Result<(), ImportError> {
    if gold_flag(l, obj)? {
        let by = "import".into();
        batch.gold.push(crate::gold::GoldItem { prompt_id, tiers, by, source: l.source(), created_ms: now });
    } else {
        batch.rankings.push(imported_ranking(id, prompt_id, tiers, l.source(), now));
    }
    Ok(())
}

fn imported_candidate(id: u64, prompt_id: u64, text: String, source: String, now: u64) -> Candidate {
    Candidate { id, prompt_id, text, tokens: vec![], logprobs: vec![], policy: None, source, created_ms: now }
}

fn imported_ranking(id: u64, prompt_id: u64, tiers: Vec<Vec<u64>>, source: String, now: u64) -> Ranking {
    Ranking {
        id,
        prompt_id,
        user_id: None,
        tiers,
        skipped: None,
        flags: vec![],
        time_spent_ms: 0,
        source,
        created_ms: now,
        guidelines_version: 0,
    }
}

/// A preference pair: TRL's `prompt`/`chosen`/`rejected` or two HH-RLHF transcripts; (prompt, chosen, rejected).
fn pair(l: &Line, obj: &Map<String, Value>) -> Result<(Vec<Message>, String, String), ImportError> {
    let (msgs, chosen, rejected) = if obj.contains_key("prompt") || obj.contains_key("messages") {
        (prompt_messages(l, obj)?, answer(l, obj, "chosen")?, answer(l, obj, "rejected")?)
    } else {
        let (pc, chosen) = hh_split(l, &string(l, obj, "chosen")?, "chosen")?;
        let (pr, rejected) = hh_split(l, &string(l, obj, "rejected")?, "rejected")?;
        if pc != pr {
            return Err(
                l.err(Some("rejected"), "its conversation differs from `chosen`'s before the last answer")
            );
        }
        (pc, chosen, rejected)
    };
    if chosen.trim() == rejected.trim() {
        return Err(l.err(Some("rejected"), "is the same as `chosen`: a pair needs two different answers"));
    }
    Ok((msgs, chosen, rejected))
}

/// Parses JSONL bytes into new records (ids from `next_id`). `file` names the source in errors and records.
pub fn parse(
    bytes: &[u8],
    file: &str,
    limits: &ImportLimits,
    next_id: &mut dyn FnMut() -> u64,
) -> Result<Batch, ImportError> {
    let mut batch = Batch::default();
    let now = now_ms();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let l = Line { file, no: i + 1 };
        if raw.len() > MAX_LINE {
            return Err(
                l.err(None, format!("line is {} bytes, longer than the {MAX_LINE}-byte limit", raw.len()))
            );
        }
        let text = std::str::from_utf8(raw).map_err(|e| {
            l.err(None, format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1))
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| l.err(None, format!("invalid JSON: {e}")))?;
        let obj = match value {
            Value::Object(o) => o,
            other => {
                return Err(
                    l.err(None, format!("each line must be a JSON object, found {}", type_name(&other)))
                )
            }
        };
        let source = l.source();
        let mut new_prompt = |messages: Vec<Message>, batch: &mut Batch| {
            let id = next_id();
            batch.prompts.push(Prompt { id, messages, source: source.clone(), created_ms: now });
            id
        };
        if obj.contains_key("chosen") || obj.contains_key("rejected") {
            let (msgs, chosen, rejected) = pair(&l, &obj)?;
            let pid = new_prompt(msgs, &mut batch);
            let ids = [next_id(), next_id()];
            for (id, text) in ids.iter().zip([chosen, rejected]) {
                batch.candidates.push(imported_candidate(*id, pid, text, l.source(), now));
            }
            batch.rankings.push(imported_ranking(
                next_id(),
                pid,
                vec![vec![ids[0]], vec![ids[1]]],
                l.source(),
                now,
            ));
        } else if obj.contains_key("responses") {
            let msgs = prompt_messages(&l, &obj)?;
            let texts = responses(&l, &obj, limits)?;
            let order = obj.get("tiers").map(|t| tiers(&l, t, texts.len())).transpose()?;
            let pid = new_prompt(msgs, &mut batch);
            let ids: Vec<u64> = texts.iter().map(|_| next_id()).collect();
            for (id, text) in ids.iter().zip(texts) {
                batch.candidates.push(imported_candidate(*id, pid, text, l.source(), now));
            }
            if let Some(order) = order {
                let tiers = order.iter().map(|t| t.iter().map(|&i| ids[i]).collect()).collect();
                ordered(&l, &obj, &mut batch, pid, tiers, next_id(), now)?;
            } else if gold_flag(&l, &obj)? {
                return Err(l.err(Some("gold"), "a gold item needs `tiers`: its known order"));
            }
        } else if obj.contains_key("completion") {
            let msgs = prompt_messages(&l, &obj)?;
            let text = string(&l, &obj, "completion")?;
            let pid = new_prompt(msgs, &mut batch);
            batch.demonstrations.push(Demonstration {
                id: next_id(),
                prompt_id: pid,
                user_id: None,
                text,
                source: l.source(),
                created_ms: now,
            });
        } else {
            let msgs = prompt_messages(&l, &obj)?;
            new_prompt(msgs, &mut batch);
        }
    }
    if batch == Batch::default() {
        return Err(ImportError {
            file: file.into(),
            line: 0,
            field: None,
            why: "the file holds no records".into(),
        });
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &[u8]) -> Result<Batch, ImportError> {
        let mut n = 0;
        parse(text, "in.jsonl", &ImportLimits::default(), &mut || {
            n += 1;
            n
        })
    }

    #[test]
    fn every_format_is_recognised() {
        let text = br#"{"prompt": "Say hi"}
{"messages": [{"role": "user", "content": "2+2?"}]}
{"prompt": "Pick", "responses": ["a", "b", "c"]}
{"prompt": "Order", "responses": ["x", "y", "z"], "tiers": [[2], [0, 1]]}
{"prompt": "Q", "chosen": "good", "rejected": "bad"}
{"prompt": [{"role": "user", "content": "Q2"}], "chosen": [{"role": "assistant", "content": "g"}], "rejected": [{"role": "assistant", "content": "b"}]}
{"chosen": "\n\nHuman: Hello?\n\nAssistant: Hi there.", "rejected": "\n\nHuman: Hello?\n\nAssistant: Go away."}
{"prompt": "Write", "completion": "Done."}
"#;
        let b = run(text).unwrap();
        assert_eq!(b.prompts.len(), 8);
        assert_eq!(b.candidates.len(), 3 + 3 + 2 + 2 + 2);
        assert_eq!(b.rankings.len(), 4);
        assert_eq!(b.demonstrations.len(), 1);
        let hh = &b.prompts[6];
        assert_eq!(hh.messages, vec![Message { role: "user".into(), content: "Hello?".into() }]);
        let tie = &b.rankings[0];
        assert_eq!(tie.tiers.len(), 2);
        assert_eq!(tie.tiers[1].len(), 2, "indices 0 and 1 tied");
        assert_eq!(b.prompts[0].source, "in.jsonl:1");
    }

    #[test]
    fn bad_lines_name_file_line_and_field() {
        let mut many = b"{\"prompt\": \"p\", \"responses\": [\"a\"".to_vec();
        many.extend(std::iter::repeat_n(b", \"b\"".as_slice(), 16).flatten());
        many.extend(b"]}\n");
        let cases: [(&[u8], &str); 14] = [
            (
                b"{\"prompt\": \"p\", \"responses\": [\"a\", \"b\"], \"gold\": true}\n",
                "in.jsonl:1: field `gold`: a gold item needs `tiers`",
            ),
            (
                b"{\"prompt\": \"p\", \"responses\": [\"a\", \"b\"], \"tiers\": [[1], [0]], \"gold\": 1}\n",
                "in.jsonl:1: field `gold`: must be true or false, found a number",
            ),
            (
                b"{\"prompt\": \"ok\"}\n{\"prompt\": 5}\n",
                "in.jsonl:2: field `prompt`: must be a string or messages, found a number",
            ),
            (b"{\"prompt\": \"ok\"}\n{not json}\n", "in.jsonl:2: invalid JSON"),
            (b"{\"respo\": 1}\n", "in.jsonl:1: field `prompt`: is missing"),
            (
                b"{\"prompt\": \"p\", \"responses\": [\"a\", 3]}\n",
                "in.jsonl:1: field `responses[1]`: must be a string, found a number",
            ),
            (b"{\"prompt\": \"p\", \"chosen\": \"a\"}\n", "in.jsonl:1: field `rejected`: is missing"),
            (b"[1, 2]\n", "in.jsonl:1: each line must be a JSON object"),
            (b"{\"prompt\": \"\xff\xfe\"}\n", "in.jsonl:1: not valid UTF-8"),
            (
                b"{\"prompt\": \"p\", \"responses\": [\"a\", \"b\"], \"tiers\": [[0], [0]]}\n",
                "in.jsonl:1: field `tiers`: index 0 appears twice",
            ),
            (
                b"{\"prompt\": \"ok\"}\n{\"prompt\": \"p\", \"chosen\": \"same \", \"rejected\": \"same\"}\n",
                "in.jsonl:2: field `rejected`: is the same as `chosen`",
            ),
            (
                b"{\"chosen\": \"\\n\\nHuman: A\\n\\nAssistant: x\", \"rejected\": \"\\n\\nHuman: A\\n\\nAssistant: x\"}\n",
                "in.jsonl:1: field `rejected`: is the same as `chosen`",
            ),
            (
                many.as_slice(),
                "in.jsonl:1: field `responses`: holds 17 answers, more than the limit of 16",
            ),
            (
                b"{\"prompt\": \"p\", \"responses\": [\"a\"], \"tiers\": [[0]]}\n",
                "in.jsonl:1: field `responses`: a ranking needs at least two answers",
            ),
        ];
        for (text, want) in cases {
            let err = run(text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn gold_lines_become_gold_items_not_rankings() {
        let b = run(
            b"{\"prompt\": \"G\", \"responses\": [\"x\", \"y\"], \"tiers\": [[1], [0]], \"gold\": true}\n",
        )
        .unwrap();
        assert!(b.rankings.is_empty());
        assert_eq!(b.gold.len(), 1);
        let c = &b.candidates;
        assert_eq!(b.gold[0].tiers, vec![vec![c[1].id], vec![c[0].id]]);
        assert_eq!(b.gold[0].prompt_id, b.prompts[0].id);
        assert_eq!(b.summary(), "1 prompts, 2 candidates, 0 rankings, 0 demonstrations, 1 gold items");
    }

    #[test]
    fn huge_lines_are_refused() {
        let mut text = b"{\"prompt\": \"".to_vec();
        text.extend(std::iter::repeat_n(b'a', MAX_LINE));
        text.extend(b"\"}\n");
        let err = run(&text).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.why.contains("limit"), "{err}");
    }

    #[test]
    fn hh_transcripts_must_share_the_conversation() {
        let text = b"{\"chosen\": \"\\n\\nHuman: A\\n\\nAssistant: x\", \"rejected\": \"\\n\\nHuman: B\\n\\nAssistant: y\"}\n";
        let err = run(text).unwrap_err().to_string();
        assert!(err.contains("field `rejected`") && err.contains("differs"), "{err}");
    }
}
