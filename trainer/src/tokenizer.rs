//! Text ↔ token ids with the `tokenizers` crate, the model's special tokens, and its chat template (Jinja, as
//! HF's `apply_chat_template` renders it).

use serde::{Deserialize, Serialize};

/// Why a tokenizer cannot be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// `tokenizer.json` (or the one built from GGUF metadata) is invalid.
    #[error("{source_name}: {why}")]
    Invalid { source_name: String, why: String },
    /// Encoding or decoding failed.
    #[error("tokenizer: {0}")]
    Codec(String),
    /// The model has no chat template or it failed to render.
    #[error("chat template: {0}")]
    Template(String),
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// What a model without a chat template is given of a conversation: the last user message (or, without one,
/// the last message).
pub fn plain_prompt(messages: &[ChatMessage]) -> &str {
    messages.iter().rev().find(|m| m.role == "user").or(messages.last()).map_or("", |m| &m.content)
}

/// A tokenizer with the model's special tokens and chat template.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// `tokenizer.json` text, written out on export.
    pub json: String,
    /// The Jinja chat template, if the model has one.
    pub chat_template: Option<String>,
    /// Beginning-of-sequence token text.
    pub bos_token: Option<String>,
    /// End-of-sequence token text.
    pub eos_token: Option<String>,
    /// Padding token text.
    pub pad_token: Option<String>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("chat_template", &self.chat_template.is_some())
            .finish()
    }
}

/// Reads a special token from `tokenizer_config.json` (a string or an AddedToken object).
fn token_text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

impl TextTokenizer {
    /// From `tokenizer.json` text and the parsed `tokenizer_config.json` (may be `null`).
    pub fn from_json(
        json: &str,
        config: &serde_json::Value,
        source_name: &str,
    ) -> Result<Self, TokenizerError> {
        let inner = <tokenizers::Tokenizer as std::str::FromStr>::from_str(json).map_err(
            |e: tokenizers::Error| TokenizerError::Invalid {
                source_name: source_name.into(),
                why: e.to_string(),
            },
        )?;
        let chat_template = match config.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // A list of named templates: take "default".
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(String::from)),
            _ => None,
        };
        Ok(Self {
            inner,
            json: json.into(),
            chat_template,
            bos_token: token_text(config.get("bos_token")),
            eos_token: token_text(config.get("eos_token")),
            pad_token: token_text(config.get("pad_token")),
        })
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token's text.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The end-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.token_id(t))
    }

    /// Encodes text. Special-token strings inside `text` become their ids; `add_special` adds BOS/EOS the way
    /// the tokenizer's post-processor does.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let enc = self.inner.encode(text, add_special).map_err(|e| TokenizerError::Codec(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids to text.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.inner.decode(ids, skip_special).map_err(|e| TokenizerError::Codec(e.to_string()))
    }

    /// Renders the chat template over `messages` (HF semantics: `add_generation_prompt` opens the assistant turn).
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| TokenizerError::Template("this model has no chat template".into()))?;
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", template).map_err(|e| TokenizerError::Template(e.to_string()))?;
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        };
        env.get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(|e| TokenizerError::Template(e.to_string()))
    }

    /// The chat template applied to one user message, tokenised, ready for generation.
    pub fn chat_prompt(&self, user: &str) -> Result<Vec<u32>, TokenizerError> {
        let text = self.apply_chat_template(&[ChatMessage::new("user", user)], true)?;
        self.encode(&text, false)
    }

    /// The one way a conversation becomes the policy's input, for training data, candidates and serving alike:
    /// the chat template with the assistant turn opened, or — for a base model without a template, or a
    /// conversation its template refuses — the plain text of [`plain_prompt`] with the tokenizer's special
    /// tokens. Empty when the messages encode to nothing.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, TokenizerError> {
        match self.apply_chat_template(messages, true) {
            Ok(text) => self.encode(&text, false),
            Err(_) => self.encode(plain_prompt(messages), true),
        }
    }

    /// The end-of-turn id: the tokenizer's EOS token, else the model config's first EOS id.
    pub fn eos(&self, config_eos: &[u32]) -> Option<u32> {
        self.eos_id().or(config_eos.first().copied())
    }

    /// The id that pads batches: the end-of-turn id (0 when there is none).
    pub fn pad_id(&self, config_eos: &[u32]) -> u32 {
        self.eos(config_eos).unwrap_or(0)
    }

    /// `tokenizer_config.json` for export (special tokens, chat template, tokenizer class).
    pub fn config_json(&self, model_max_length: usize) -> serde_json::Value {
        let mut cfg = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": model_max_length,
            "clean_up_tokenization_spaces": false,
        });
        let obj = cfg.as_object_mut().unwrap();
        for (k, v) in
            [("bos_token", &self.bos_token), ("eos_token", &self.eos_token), ("pad_token", &self.pad_token)]
        {
            if let Some(v) = v {
                obj.insert(k.into(), serde_json::json!(v));
            }
        }
        if let Some(t) = &self.chat_template {
            obj.insert("chat_template".into(), serde_json::json!(t));
        }
        cfg
    }
}
