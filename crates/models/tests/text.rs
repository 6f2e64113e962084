//! Text data: the polarity CSV reader, the stratified split, the word vocabulary and batch
//! encoding; one test reads the real Pang & Lee sentences (`scripts/fetch-assets.sh polarity`).

use candle_core::Device;
use candle_explain_models::text::{
    encode_batch, load_polarity_csv, split, tokenize, Vocab, PAD_ID, UNK_ID,
};
use candle_explain_models::Error;
use std::path::PathBuf;

/// A file in the temp dir, unique per process and name, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &str) -> TempFile {
        let p =
            std::env::temp_dir().join(format!("candle-explain-text-{}-{name}", std::process::id()));
        std::fs::write(&p, content).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn parses_quoted_multiline_csv_with_bom_and_crlf() -> anyhow::Result<()> {
    // The real file's shape: BOM, quoted fields, `""` escapes, a newline inside the quoted
    // text, CRLF between records.
    let csv = "\u{feff}\"1\",\"a \"\"great\"\" film , really . \n\"\r\n\"-1\",\"dull, and long\"\r\n\r\n-1,plain unquoted\n\"1\",\"it's fine\"";
    let f = TempFile::new("ok.csv", csv);
    let rows = load_polarity_csv(&f.0)?;
    assert_eq!(
        rows,
        vec![
            ("a \"great\" film , really .".to_string(), 1),
            ("dull, and long".to_string(), 0),
            ("plain unquoted".to_string(), 0),
            ("it's fine".to_string(), 1),
        ]
    );
    let f01 = TempFile::new("01.csv", "0,bad\n1,good\n");
    assert_eq!(
        load_polarity_csv(&f01.0)?,
        vec![("bad".to_string(), 0), ("good".to_string(), 1)]
    );
    Ok(())
}

#[test]
fn malformed_rows_name_their_line() {
    let cases = [
        ("label.csv", "\"1\",\"fine\"\n\"2\",\"what\"\n", 2, "label"),
        ("fields.csv", "\"1\",\"a\nb\"\n\"1\"\n", 3, "2 fields"),
        (
            "unterminated.csv",
            "1,ok\n\n\"1\",\"never closed\n",
            3,
            "unterminated",
        ),
        ("mix.csv", "-1,a\n1,b\n0,c\n", 3, "mix"),
        ("empty.csv", "1,ok\n1,\"  \"\n", 2, "empty"),
        ("after.csv", "\"1\"x,\"a\"\n", 1, "closing quote"),
    ];
    for (name, csv, want_line, want_reason) in cases {
        let f = TempFile::new(name, csv);
        match load_polarity_csv(&f.0) {
            Err(Error::Data { line, reason, .. }) => {
                assert_eq!(line, want_line, "{name}: {reason}");
                assert!(reason.contains(want_reason), "{name}: {reason}");
            }
            other => panic!("{name}: expected a data error, got {other:?}"),
        }
    }
}

#[test]
fn a_missing_file_says_how_to_fetch_it() {
    let err = load_polarity_csv("/nonexistent/pang_lee_sentences.csv").unwrap_err();
    assert!(
        err.to_string().contains("scripts/fetch-assets.sh polarity"),
        "{err}"
    );
}

#[test]
fn split_is_stratified_deterministic_and_order_preserving() -> anyhow::Result<()> {
    let items: Vec<(usize, u32)> = (0..100).map(|i| (i, u32::from(i % 4 == 0))).collect(); // 25 positive
    let (train, test) = split(items.clone(), 0.2, 7)?;
    assert_eq!((train.len(), test.len()), (80, 20));
    assert_eq!(test.iter().filter(|(_, l)| *l == 1).count(), 5);
    assert!(train.windows(2).all(|w| w[0].0 < w[1].0) && test.windows(2).all(|w| w[0].0 < w[1].0));
    let mut all: Vec<usize> = train.iter().chain(&test).map(|(i, _)| *i).collect();
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(split(items.clone(), 0.2, 7)?, (train, test.clone()));
    assert_ne!(split(items.clone(), 0.2, 8)?.1, test);
    assert!(split(items, 1.5, 7).is_err());
    Ok(())
}

#[test]
fn tokenizer_splits_punctuation_and_keeps_contractions() {
    let toks = tokenize("It DOESN'T work, 'Quote' … a 10/10 for the actors' café!");
    assert_eq!(
        toks,
        [
            "it", "doesn't", "work", ",", "'", "quote'", "…", "a", "10", "/", "10", "for", "the",
            "actors'", "café", "!"
        ]
    );
}

#[test]
fn vocab_builds_encodes_truncates_and_round_trips() -> anyhow::Result<()> {
    let texts = [
        "the film is good .",
        "the film is bad .",
        "the plot , the plot !",
    ];
    let v = Vocab::build(texts, 2, usize::MAX);
    // the ×4, plot/film/is/. ×2 (alphabetical among ties); good, bad, ",", "!" are below min_count.
    assert_eq!(
        v.tokens(),
        ["<pad>", "<unk>", "the", ".", "film", "is", "plot"]
    );
    assert_eq!(v.len(), 7);
    assert_eq!(v.encode("The film is GREAT .", 100), [2, 4, 5, UNK_ID, 3]);
    assert_eq!(
        v.encode("The film is GREAT .", 3),
        [2, 4, 5],
        "keeps the first max_len tokens"
    );
    assert_eq!(v.decode(&[2, 6, 99]), ["the", "plot", "<unk>"]);
    assert_eq!(
        Vocab::build(texts, 1, 4).tokens(),
        ["<pad>", "<unk>", "the", "."]
    );
    assert_eq!(Vocab::build(texts, 1, 0).len(), 2);

    let f = TempFile::new("vocab.json", "");
    v.save(&f.0)?;
    assert_eq!(Vocab::load(&f.0)?, v);
    std::fs::write(
        &f.0,
        r#"{"format": "candle-explain-vocab", "version": 1, "tokens": ["<pad>", "<unk>", "a", "a"]}"#,
    )?;
    assert!(Vocab::load(&f.0)
        .unwrap_err()
        .to_string()
        .contains("more than once"));
    std::fs::write(&f.0, "{ not json")?;
    assert!(matches!(
        Vocab::load(&f.0),
        Err(Error::Data { line: 1, .. })
    ));
    Ok(())
}

#[test]
fn encode_batch_pads_to_the_longest_row() -> anyhow::Result<()> {
    let v = Vocab::build(["a b c d e"], 1, usize::MAX);
    let dev = Device::Cpu;
    let (ids, mask) = encode_batch(&v, &["a b", "a b c d e", ""], 4, &dev)?;
    assert_eq!(ids.dims(), [3, 4]);
    let ab = [v.id("a"), v.id("b")];
    assert_eq!(
        ids.to_vec2::<u32>()?,
        [
            vec![ab[0], ab[1], PAD_ID, PAD_ID],
            v.encode("a b c d", 4),
            vec![PAD_ID; 4]
        ]
    );
    assert_eq!(
        mask.to_vec2::<u32>()?,
        [[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]
    );
    let (ids, _) = encode_batch(&v, &["a", "b"], 64, &dev)?;
    assert_eq!(
        ids.dims(),
        [2, 1],
        "pads to the longest row, not to max_len"
    );
    assert!(encode_batch::<&str>(&v, &[], 4, &dev).is_err());
    assert!(encode_batch(&v, &["a"], 0, &dev).is_err());
    Ok(())
}

/// The real sentences, fetched on first use: fails (does not skip) when the download fails.
#[test]
fn the_real_polarity_sentences_are_4000_balanced() -> anyhow::Result<()> {
    let path = candle_explain_models::assets::ensure("polarity")?.join("pang_lee_sentences.csv");
    let rows = load_polarity_csv(&path)?;
    assert_eq!(rows.len(), 4000);
    assert_eq!(rows.iter().filter(|(_, l)| *l == 1).count(), 2000);
    assert_eq!(rows.iter().filter(|(_, l)| *l == 0).count(), 2000);
    assert!(
        rows[0]
            .0
            .starts_with("the rock is destined to be the 21st century's new \" conan \""),
        "{:?}",
        rows[0].0
    );
    assert!(rows.iter().all(|(t, _)| !t.is_empty() && !t.contains('\n')));

    let (train, test) = split(rows, 0.2, 0)?;
    assert_eq!((train.len(), test.len()), (3200, 800));
    assert_eq!(test.iter().filter(|(_, l)| *l == 1).count(), 400);
    let vocab = Vocab::build(train.iter().map(|(t, _)| t), 2, 20_000);
    let unk = test
        .iter()
        .flat_map(|(t, _)| vocab.encode(t, usize::MAX))
        .filter(|&i| i == UNK_ID)
        .count() as f64;
    let total = test.iter().map(|(t, _)| tokenize(t).len()).sum::<usize>() as f64;
    eprintln!(
        "vocab {} tokens; held-out <unk> rate {:.1} %",
        vocab.len(),
        100.0 * unk / total
    );
    assert!(vocab.len() > 3000 && unk / total < 0.15);
    Ok(())
}
