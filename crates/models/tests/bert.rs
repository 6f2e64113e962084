//! The BERT classifier on the real all-MiniLM-L6-v2 checkpoint and tokenizer (fetched by
//! `scripts/fetch-assets.sh minilm` on first use; the tests fail when the download fails): the encoder equals
//! candle-transformers' BERT, the tokenizer matches, bad configs and inputs are clear errors,
//! and the core methods run at the word embeddings.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_models::bert::{encode, load_tokenizer, BertOnIds};
use candle_explain_models::{BertClassifier, BertConfig};
use candle_nn::{VarBuilder, VarMap};

const MINILM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/all-MiniLM-L6-v2");

fn minilm(dev: &Device) -> anyhow::Result<(BertClassifier, tokenizers::Tokenizer)> {
    candle_explain_models::assets::ensure("minilm")?;
    let config = BertConfig::from_json(
        &std::fs::read_to_string(format!("{MINILM}/config.json")).map_err(|e| {
            anyhow::anyhow!("{MINILM}/config.json: {e} (run scripts/fetch-assets.sh minilm)")
        })?,
    )?;
    let weights = candle_core::safetensors::load(format!("{MINILM}/model.safetensors"), dev)?;
    // The checkpoint is an encoder: the head is fresh.
    let head = VarMap::new();
    let model = BertClassifier::load(
        VarBuilder::from_tensors(weights, DType::F32, dev),
        VarBuilder::from_varmap(&head, DType::F32, dev),
        config.clone(),
    )?;
    let tok = load_tokenizer(format!("{MINILM}/tokenizer.json"), &config)?;
    Ok((model, tok))
}

/// Our encoder (on the rule context's ops, plain and inference) equals candle-transformers'
/// `BertModel` on the same checkpoint, with padding and an attention mask.
#[test]
fn encoder_equals_candle_transformers() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (model, tok) = minilm(&dev)?;
    let texts = ["a gripping, beautifully shot film.", "dull."];
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            encode(&tok, t, &model.config, &dev)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1()
                .unwrap()
        })
        .collect();
    let len = rows.iter().map(Vec::len).max().unwrap();
    let pad = |r: &Vec<u32>| -> Vec<u32> {
        r.iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(len)
            .collect()
    };
    let ids = Tensor::new(vec![pad(&rows[0]), pad(&rows[1])], &dev)?;
    let mask = ids.ne(0u32)?;
    let cfg: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(format!("{MINILM}/config.json"))?)?;
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[format!("{MINILM}/model.safetensors")],
            DType::F32,
            &dev,
        )?
    };
    let reference = candle_transformers::models::bert::BertModel::load(vb, &cfg)?.forward(
        &ids,
        &ids.zeros_like()?,
        Some(&mask.to_dtype(DType::U32)?),
    )?;
    let word = model.embed(&ids)?;
    for (name, ctx) in [
        ("plain", RuleCtx::plain()),
        ("inference", RuleCtx::inference()),
    ] {
        let ours = model.sequence_output(&word, Some(&mask), &ctx)?;
        let diff = (ours - &reference)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(
            diff < 1e-4,
            "{name}: max difference {diff} from candle-transformers"
        );
    }
    // The classifier on ids masks the padding: the short sentence gets the same logits alone.
    let both = BertOnIds(&model).forward(&ids)?;
    let alone = BertOnIds(&model).forward(&Tensor::new(vec![rows[1].clone()], &dev)?)?;
    let diff = (both.narrow(0, 1, 1)? - alone)?
        .abs()?
        .max(1)?
        .squeeze(0)?
        .to_scalar::<f32>()?;
    assert!(diff < 1e-4, "padding changed the logits by {diff}");
    Ok(())
}

#[test]
fn tokenizer_and_bad_input() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (model, tok) = minilm(&dev)?;
    let ids: Vec<u32> = encode(&tok, "Dull.", &model.config, &dev)?
        .squeeze(0)?
        .to_vec1()?;
    assert_eq!(
        (ids[0], *ids.last().unwrap()),
        (101, 102),
        "[CLS] … [SEP]: {ids:?}"
    );
    assert_eq!(
        tok.decode(&ids[1..ids.len() - 1], true)
            .map_err(anyhow::Error::msg)?,
        "dull."
    );
    let long = "word ".repeat(600);
    assert!(encode(&tok, &long, &model.config, &dev)
        .unwrap_err()
        .to_string()
        .contains("truncate"));
    let err = model
        .embed(&Tensor::new(&[[101u32, 40000]], &dev)?)
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the vocabulary"), "{err}");
    // A tokenizer from another model, larger than the vocabulary.
    let mut small = model.config.clone();
    small.vocab_size = 1000;
    assert!(load_tokenizer(format!("{MINILM}/tokenizer.json"), &small)
        .unwrap_err()
        .to_string()
        .contains("do not belong together"));
    // An embedding table padded beyond the tokenizer (a published topic classifier has 30,500
    // tokens for 30,522 rows) loads; the padded rows are never looked up by the tokenizer.
    let mut padded = model.config.clone();
    padded.vocab_size += 64;
    load_tokenizer(format!("{MINILM}/tokenizer.json"), &padded)?;
    // Unsupported configs.
    let base = std::fs::read_to_string(format!("{MINILM}/config.json"))?;
    for (from, to, expect) in [
        ("\"bert\"", "\"gpt2\"", "model_type"),
        ("\"gelu\"", "\"swish\"", "hidden_act"),
        (
            "\"absolute\"",
            "\"relative_key\"",
            "position_embedding_type",
        ),
    ] {
        let err = BertConfig::from_json(&base.replacen(from, to, 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{expect}: {err}");
    }
    // A checkpoint with a wrong-shaped tensor, and a missing folder.
    let mut w = candle_core::safetensors::load(format!("{MINILM}/model.safetensors"), &dev)?;
    w.insert(
        "encoder.layer.3.attention.self.key.weight".into(),
        Tensor::zeros((384, 383), DType::F32, &dev)?,
    );
    let err = BertClassifier::load(
        VarBuilder::from_tensors(w, DType::F32, &dev),
        VarBuilder::from_varmap(&VarMap::new(), DType::F32, &dev),
        model.config.clone(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("shape"), "{err}");
    assert!(
        BertClassifier::from_dir(std::env::temp_dir().join("no-such-bert"), None, &dev)
            .unwrap_err()
            .to_string()
            .contains("config.json")
    );
    Ok(())
}

/// Every core method at the word embeddings of a small random BERT; IG, Shapley and Guided IG
/// stay complete.
#[test]
fn methods_run_on_bert() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let config = BertConfig::from_json(
        r#"{"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 32, "hidden_act": "gelu", "max_position_embeddings": 16, "type_vocab_size": 2, "num_labels": 3}"#,
    )?;
    let vars = VarMap::new();
    let model = BertClassifier::load(
        VarBuilder::from_varmap(&vars, DType::F32, &dev),
        VarBuilder::from_varmap(&vars, DType::F32, &dev),
        config,
    )?;
    let x = model.embed(&Tensor::new(&[[1u32, 7, 9, 3, 2], [1, 4, 4, 30, 2]], &dev)?)?;
    let t = Target::PerExample(vec![0, 2]);
    let tokens = Tensor::arange(0u32, 5, &dev)?
        .reshape((1, 5, 1))?
        .broadcast_as((1, 5, 16))?
        .contiguous()?;
    common::smoke(&model, &x, &t, &tokens, &[1, 16], "bert")?;
    Ok(())
}

/// A hub id resolves through a Hugging Face cache layout (refs → snapshot), offline; a
/// missing model, revision or snapshot says where it looked.
#[test]
fn loads_from_the_hub_cache() -> anyhow::Result<()> {
    use candle_explain_models::hub::snapshot_in;
    let dev = Device::Cpu;
    let cache = std::env::temp_dir().join(format!("candle-explain-hub-{}", std::process::id()));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snap = cache
        .join("models--sentence-transformers--all-MiniLM-L6-v2/snapshots")
        .join(commit);
    std::fs::create_dir_all(&snap)?;
    std::fs::create_dir_all(cache.join("models--sentence-transformers--all-MiniLM-L6-v2/refs"))?;
    std::fs::write(
        cache.join("models--sentence-transformers--all-MiniLM-L6-v2/refs/main"),
        commit, // as huggingface_hub writes it: the hash alone
    )?;
    candle_explain_models::assets::ensure("minilm")?;
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        let target = std::path::Path::new(MINILM)
            .join(f)
            .canonicalize()
            .map_err(|e| {
                anyhow::anyhow!("{MINILM}/{f}: {e} (run scripts/fetch-assets.sh minilm)")
            })?;
        let link = snap.join(f);
        if !link.exists() {
            std::os::unix::fs::symlink(target, link)?;
        }
    }
    let dir = snapshot_in(&cache, "sentence-transformers/all-MiniLM-L6-v2", "main")?;
    assert_eq!(dir, snap);
    assert_eq!(
        snapshot_in(&cache, "sentence-transformers/all-MiniLM-L6-v2", commit)?,
        snap
    );
    // The encoder loads from the snapshot (with a fresh head from a file of ours).
    let head = cache.join("head.safetensors");
    candle_core::safetensors::save(
        &[
            (
                "classifier.weight",
                Tensor::zeros((2, 384), DType::F32, &dev)?,
            ),
            ("classifier.bias", Tensor::zeros(2, DType::F32, &dev)?),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        &head,
    )?;
    let model = BertClassifier::from_dir(&dir, Some(&head), &dev)?;
    assert_eq!(model.config.num_hidden_layers, 6);
    for (repo, rev, expect) in [
        ("sentence-transformers/other", "main", "not in the cache"),
        (
            "sentence-transformers/all-MiniLM-L6-v2",
            "v2",
            "no revision",
        ),
        ("not-a-hub-id", "main", "org/name"),
    ] {
        let err = snapshot_in(&cache, repo, rev).unwrap_err().to_string();
        assert!(err.contains(expect), "{repo}@{rev}: {err}");
    }
    std::fs::remove_dir_all(&cache)?;
    Ok(())
}

/// A padded batch of sentences of different lengths, with its attention mask beside the
/// embeddings (`WithInputs`), is explained in one call exactly as each sentence alone; the
/// padding gets exactly 0. Also with several classes at once (rows repeated per class).
#[test]
fn a_padded_batch_equals_one_sentence_at_a_time() -> anyhow::Result<()> {
    use candle_explain_core::WithInputs;
    let dev = Device::Cpu;
    let (model, tok) = minilm(&dev)?;
    let texts = [
        "not bad at all.",
        "dull",
        "a moving, funny and well acted film",
    ];
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| -> anyhow::Result<Vec<u32>> {
            Ok(encode(&tok, t, &model.config, &dev)?
                .squeeze(0)?
                .to_vec1()?)
        })
        .collect::<anyhow::Result<_>>()?;
    let l = ids.iter().map(Vec::len).max().unwrap_or(0);
    let padded: Vec<u32> = ids
        .iter()
        .flat_map(|v| v.iter().copied().chain(std::iter::repeat_n(0, l - v.len())))
        .collect();
    let mask: Vec<f32> = ids
        .iter()
        .flat_map(|v| (0..l).map(move |i| (i < v.len()) as u8 as f32))
        .collect();
    let padded = Tensor::from_vec(padded, (texts.len(), l), &dev)?;
    let mask = Tensor::from_vec(mask, (texts.len(), l), &dev)?;
    let emb = model.embed(&padded)?;
    let batch = WithInputs::new(&model).with("attention_mask", mask)?;
    for target in [Target::Class(1), Target::Classes(vec![0, 1])] {
        let ig = IntegratedGradients::new(16);
        let all = ig.attribute(&batch, &emb, &target)?.attributions;
        for (i, v) in ids.iter().enumerate() {
            let alone_emb = model.embed(&Tensor::new(v.as_slice(), &dev)?.unsqueeze(0)?)?;
            let alone = ig.attribute(&model, &alone_emb, &target)?.attributions;
            let mine = all.narrow(0, i, 1)?;
            let (tok_axis, n) = (mine.rank() - 2, v.len());
            let real = mine.narrow(tok_axis, 0, n)?;
            let scale = alone.abs()?.max_all()?.to_scalar::<f32>()?;
            let diff = (&real - &alone)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                diff <= 1e-5 * scale.max(1.0),
                "{target:?} sentence {i}: differs by {diff} (scale {scale})"
            );
            if n < l {
                let pad = mine
                    .narrow(tok_axis, n, l - n)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert_eq!(pad, 0.0, "{target:?} sentence {i}: padding got {pad}");
            }
        }
    }
    // A mask for another batch is a clear error.
    let wrong =
        WithInputs::new(&model).with("attention_mask", Tensor::ones((2, l), DType::F32, &dev)?)?;
    let e = Saliency::signed()
        .attribute(&wrong, &emb, &Target::Class(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("attention_mask"), "{e}");
    Ok(())
}
