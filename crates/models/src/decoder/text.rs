//! A decoder's text side: its `tokenizer.json`, the special tokens and the chat template of
//! `tokenizer_config.json`, and the stop ids of `generation_config.json`.

use super::CausalLm;
use crate::error::{Error, Result};
use std::path::Path;

pub struct DecoderTokenizer {
    pub tokenizer: tokenizers::Tokenizer,
    /// `tokenizer_config.json`'s Jinja chat template, when it has one.
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Every id that ends a generation: the model's EOS ids and generation_config.json's.
    pub stop_ids: Vec<u32>,
}

fn unsupported(msg: impl Into<String>) -> Error {
    Error::Explain(candle_explain_core::Error::Unsupported(msg.into()))
}

/// A special token as `tokenizer_config.json` writes it: a string, or `{"content": …}`.
fn token_string(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        o => o.get("content")?.as_str().map(String::from),
    }
}

impl DecoderTokenizer {
    /// The tokenizer files of a model folder, for `model`.
    pub fn from_dir(dir: &Path, model: &CausalLm) -> Result<Self> {
        let tokenizer =
            crate::bert::read_tokenizer(&dir.join("tokenizer.json"), model.config.vocab_size)?;
        let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(None);
            }
            serde_json::from_str(&std::fs::read_to_string(&p)?)
                .map(Some)
                .map_err(|e| crate::checkpoint::checkpoint_error(&p, format!("not JSON: {e}")))
        };
        let cfg = read_json("tokenizer_config.json")?.unwrap_or_default();
        let generation = read_json("generation_config.json")?.unwrap_or_default();
        let mut stop_ids = model.config.eos_token_ids.clone();
        for id in super::config::ids_of(generation.get("eos_token_id")) {
            if !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
        let eos_token = token_string(cfg.get("eos_token"));
        // A chat model's end-of-turn token stops generation too.
        if let Some(id) = eos_token.as_deref().and_then(|t| tokenizer.token_to_id(t)) {
            if !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
        Ok(Self {
            chat_template: cfg.get("chat_template").and_then(|t| t.as_str()).map(String::from),
            bos_token: token_string(cfg.get("bos_token")),
            eos_token,
            tokenizer,
            stop_ids,
        })
    }

    /// `text` as ids; `special`: with the tokenizer's added tokens (a BOS).
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, special)
            .map_err(|e| unsupported(format!("tokenizer: {e}")))?
            .get_ids()
            .to_vec())
    }

    /// Each id as the text it stands for (special tokens included).
    pub fn pieces(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter()
            .map(|&id| {
                self.tokenizer
                    .decode(&[id], false)
                    .map_err(|e| unsupported(format!("tokenizer: {e}")))
            })
            .collect()
    }

    /// Words as spans of positions of `ids`: a word starts at a token that begins with a
    /// space or a line break (byte-level `Ġ` / `Ċ`, SentencePiece `▁`, a byte-fallback
    /// `<0x0A>`) and takes the tokens that continue it without one (letters, digits, other
    /// byte-fallback pieces, and the apostrophes and hyphens inside words: "isn't",
    /// "well-known"); other punctuation is a word of its own; positions not `attributable`
    /// (special tokens) belong to no word.
    pub fn word_spans(&self, ids: &[u32], attributable: &[bool]) -> Result<Vec<std::ops::Range<usize>>> {
        if attributable.len() != ids.len() {
            return Err(unsupported(format!("word_spans: {} flags for {} ids", attributable.len(), ids.len())));
        }
        let mut spans: Vec<std::ops::Range<usize>> = Vec::new();
        let mut prev = Piece::Outside;
        for (i, &id) in ids.iter().enumerate() {
            if !attributable[i] {
                prev = Piece::Outside;
                continue;
            }
            let (spaced, kind) = piece(&self.tokenizer.id_to_token(id).unwrap_or_default());
            let joins = !spaced
                && matches!(prev, Piece::Word | Piece::Joiner | Piece::Space)
                && matches!(kind, Piece::Word | Piece::Joiner);
            match spans.last_mut() {
                Some(s) if joins && s.end == i => s.end = i + 1,
                _ => spans.push(i..i + 1),
            }
            prev = kind;
        }
        Ok(spans)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| unsupported(format!("tokenizer: {e}")))
    }

    /// A conversation, `(role, content)` turns (system, user, assistant), through the chat
    /// template, ready for the assistant's answer (`add_generation_prompt`): the text to
    /// encode without added special tokens (the template writes them).
    pub fn chat_prompt(&self, messages: &[(&str, &str)]) -> Result<String> {
        let template = self.chat_template.as_deref().ok_or_else(|| {
            unsupported("the tokenizer_config.json has no chat_template: drop --chat")
        })?;
        let mut env = minijinja::Environment::new();
        // Hugging Face templates call raise_exception for unsupported conversations.
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", template)
            .map_err(|e| unsupported(format!("chat template: {e}")))?;
        env.get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages
                        .iter()
                        .map(|(role, content)| minijinja::context! { role => role, content => content })
                        .collect::<Vec<_>>(),
                    add_generation_prompt => true,
                    bos_token => self.bos_token.clone().unwrap_or_default(),
                    eos_token => self.eos_token.clone().unwrap_or_default(),
                })
            })
            .map_err(|e| unsupported(format!("chat template: {e}")))
    }
}

/// What a token's piece is to a word.
#[derive(PartialEq, Clone, Copy, Debug)]
enum Piece {
    Word,
    /// An apostrophe or hyphen, which continues a word.
    Joiner,
    /// Only whitespace: starts a word with the piece after it.
    Space,
    Punctuation,
    Outside,
}

/// Whether the raw token `raw` begins with whitespace, and what it is.
fn piece(raw: &str) -> (bool, Piece) {
    let markers = ['Ġ', 'Ċ', 'ĉ', '▁'];
    // SentencePiece byte fallback: `<0x0A>` is a line break; other bytes are parts of a
    // character that continue whatever they are in.
    if let Some(hex) = raw.strip_prefix("<0x").and_then(|r| r.strip_suffix('>')) {
        return match u8::from_str_radix(hex, 16) {
            Ok(b) if b.is_ascii_whitespace() => (true, Piece::Space),
            Ok(b) if b.is_ascii_punctuation() => (false, Piece::Punctuation),
            _ => (false, Piece::Joiner),
        };
    }
    let spaced = raw.starts_with(markers) || raw.starts_with(char::is_whitespace);
    let body = raw.trim_start_matches(|c: char| markers.contains(&c) || c.is_whitespace());
    let kind = if body.is_empty() {
        Piece::Space
    } else if body.chars().any(char::is_alphanumeric) {
        Piece::Word
    } else if body.chars().all(|c| "'’-".contains(c)) {
        Piece::Joiner
    } else {
        Piece::Punctuation
    };
    (spaced, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_byte_level_sentencepiece_and_byte_fallback_vocabularies() {
        assert_eq!(piece("Ġthe"), (true, Piece::Word));
        assert_eq!(piece("▁the"), (true, Piece::Word));
        assert_eq!(piece("ing"), (false, Piece::Word));
        assert_eq!(piece("Ċ"), (true, Piece::Space));
        assert_eq!(piece(","), (false, Piece::Punctuation));
        assert_eq!(piece("'"), (false, Piece::Joiner));
        // Byte fallback (Llama 2, Mistral): a line break or tab is a space, not a word.
        assert_eq!(piece("<0x0A>"), (true, Piece::Space));
        assert_eq!(piece("<0x09>"), (true, Piece::Space));
        assert_eq!(piece("<0x2C>"), (false, Piece::Punctuation));
        assert_eq!(piece("<0xE2>"), (false, Piece::Joiner));
    }
}
