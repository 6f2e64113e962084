//! Hugging Face encoder families loaded from their folders and explained at the word
//! embeddings, against transformers and Captum 0.9: `scripts/golden/hf_families.py` made a
//! random tiny checkpoint per family with transformers itself (its own tensor names, config
//! and tokenizer) and `golden.safetensors` beside it: two sentences of different lengths,
//! right-padded, their logits, and Captum's `LayerIntegratedGradients` (Gauss–Legendre, 50)
//! and `LayerGradientXActivation` at the word embeddings from reference ids that keep only
//! the special tokens.
//!
//! RoBERTa's position ids count non-padding tokens; Captum keeps the input's positions along
//! the whole path (its delta against `forward(ref_ids)` is large for that reason). We keep the
//! positions of the attention mask for the input and the baseline alike, which is Captum's
//! path: the attributions agree.

use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::WithInputs;
use candle_explain_models::bert::load_tokenizer;
use candle_explain_models::BertClassifier;
use std::path::PathBuf;

fn folder(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hf")).join(name)
}

/// max |a − b| / max |b|.
fn rel(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    let m = |t: &Tensor| -> anyhow::Result<f32> {
        Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    };
    Ok(m(&(a - b)?)? / m(b)?.max(1e-12))
}

fn check_family(name: &str) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let dir = folder(name);
    let model = BertClassifier::from_dir(&dir, None, &dev)?;
    // The folder's tokenizer fits the model (BERT's table has 8 rows more than the tokenizer).
    load_tokenizer(dir.join("tokenizer.json"), &model.config)?;
    let g = candle_core::safetensors::load(dir.join("golden.safetensors"), &dev)?;
    let ids = g["input_ids"].to_dtype(DType::U32)?;
    let x = model.embed(&ids)?;
    let xbar = model.embed(&g["ref_ids"].to_dtype(DType::U32)?)?;
    let mask = g["attention_mask"].to_dtype(DType::F32)?;
    let m = WithInputs::new(&model).with("attention_mask", mask)?;
    let logits = m.forward(&x)?;
    let want = g["logits"].flatten_from(1)?;
    let d = rel(&logits, &want)?;
    assert!(d < 1e-5, "{name}: logits differ by {d} (relative)");
    let classes: Vec<usize> = g["target"]
        .to_vec1::<i64>()?
        .into_iter()
        .map(|c| c as usize)
        .collect();
    let target = match g.get("target_token") {
        // Token classification: token t's label c is output t · labels + c.
        Some(tok) => Target::PerExample(
            tok.to_vec1::<i64>()?
                .into_iter()
                .zip(&classes)
                .map(|(t, &c)| model.token_output(t as usize, c))
                .collect(),
        ),
        None => Target::PerExample(classes),
    };
    let ig = IntegratedGradients::new(50)
        .with_baseline(Baseline::Tensor(xbar))
        .attribute(&m, &x, &target)?;
    let d = rel(&ig.attributions, &g["lig_word_gl50"])?;
    eprintln!("{name}: logits ok, IG at the word embeddings vs Captum's layer IG: {d:.1e}");
    assert!(d < 1e-5, "{name}: IG differs by {d} (relative)");
    let gxi = InputXGradient::default().attribute(&m, &x, &target)?;
    let d = rel(&gxi.attributions, &g["lgxa_word"])?;
    assert!(
        d < 1e-5,
        "{name}: gradient × input differs by {d} (relative)"
    );
    Ok(())
}

#[test]
fn bert_sequence_classification() -> anyhow::Result<()> {
    check_family("bert")
}

#[test]
fn bert_token_classification() -> anyhow::Result<()> {
    check_family("bert_ner")
}

#[test]
fn distilbert() -> anyhow::Result<()> {
    check_family("distilbert")
}

#[test]
fn roberta() -> anyhow::Result<()> {
    check_family("roberta")
}

#[test]
fn xlm_roberta() -> anyhow::Result<()> {
    check_family("xlm_roberta")
}

#[test]
fn electra() -> anyhow::Result<()> {
    check_family("electra")
}

/// The same BERT in three shards with `model.safetensors.index.json` gives the same logits.
#[test]
fn a_sharded_checkpoint_loads() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let whole = BertClassifier::from_dir(folder("bert"), None, &dev)?;
    let sharded = BertClassifier::from_dir(folder("bert_sharded"), None, &dev)?;
    let ids = Tensor::new(&[[2u32, 40, 41, 42, 3]], &dev)?;
    let (a, b) = (
        whole.forward(&whole.embed(&ids)?)?,
        sharded.forward(&sharded.embed(&ids)?)?,
    );
    assert_eq!(rel(&a, &b)?, 0.0);
    Ok(())
}

/// The same BERT as a PyTorch pickle (`pytorch_model.bin`, `scripts/golden/bert_pth.py`)
/// loads to the same model.
#[test]
fn a_pytorch_checkpoint_loads() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let whole = BertClassifier::from_dir(folder("bert"), None, &dev)?;
    let pth = BertClassifier::from_dir(folder("bert_pth"), None, &dev)?;
    let ids = Tensor::new(&[[2u32, 40, 41, 42, 3]], &dev)?;
    let (a, b) = (
        whole.forward(&whole.embed(&ids)?)?,
        pth.forward(&pth.embed(&ids)?)?,
    );
    assert_eq!(rel(&a, &b)?, 0.0);
    Ok(())
}

/// Unknown families and heads are clear errors that say what is supported.
#[test]
fn unsupported_architectures_are_clear_errors() -> anyhow::Result<()> {
    let base = std::fs::read_to_string(folder("bert").join("config.json"))?;
    let tmp = std::env::temp_dir().join(format!("candle-explain-hf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    std::fs::copy(
        folder("bert").join("model.safetensors"),
        tmp.join("model.safetensors"),
    )?;
    for (from, to, expect) in [
        (
            "\"model_type\": \"bert\"",
            "\"model_type\": \"gpt2\"",
            "distilbert, roberta",
        ),
        (
            "BertForSequenceClassification",
            "BertForQuestionAnswering",
            "ForTokenClassification",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        std::fs::write(tmp.join("config.json"), base.replace(from, to))?;
        let e = BertClassifier::from_dir(&tmp, None, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{e}");
    }
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}

/// Pieces are merged into the text's words by the tokenizer's word ids and offsets, for
/// WordPiece, byte-level BPE and Unigram; special tokens belong to no word.
#[test]
fn pieces_make_up_words() -> anyhow::Result<()> {
    use candle_explain_models::bert::encode_words;
    let dev = Device::Cpu;
    for name in ["bert", "roberta", "xlm_roberta"] {
        let dir = folder(name);
        let model = BertClassifier::from_dir(&dir, None, &dev)?;
        let tok = load_tokenizer(dir.join("tokenizer.json"), &model.config)?;
        let (ids, tokens, words) = encode_words(
            &tok,
            "a gripping film beautifully acted",
            &model.config,
            &dev,
        )?;
        assert_eq!(ids.dim(1)?, tokens.len());
        let text: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(
            text,
            ["a", "gripping", "film", "beautifully", "acted"],
            "{name}: {tokens:?}"
        );
        assert!(
            words[1].tokens.len() > 1,
            "{name}: 'gripping' is split: {tokens:?}"
        );
        // Every token but the first and last (the specials) is in exactly one word.
        let mut covered: Vec<usize> = words.iter().flat_map(|w| w.tokens.clone()).collect();
        covered.sort();
        assert_eq!(covered, (1..tokens.len() - 1).collect::<Vec<_>>(), "{name}");
    }
    Ok(())
}

/// ViT (`ViTForImageClassification` made by transformers, hub tensor names): logits, and
/// Saliency and IG (Gauss–Legendre 50, zero baseline) at the pixel values against Captum.
#[test]
fn vit_image_classification() -> anyhow::Result<()> {
    use candle_explain_models::VitClassifier;
    let dev = Device::Cpu;
    let dir = folder("vit");
    let model = VitClassifier::from_dir(&dir, &dev)?;
    assert_eq!(model.config.labels, ["cat", "dog", "bird"]);
    let g = candle_core::safetensors::load(dir.join("golden.safetensors"), &dev)?;
    let x = &g["pixel_values"];
    let d = rel(&model.forward(x)?, &g["logits"])?;
    assert!(d < 1e-5, "vit logits differ by {d}");
    let t = Target::PerExample(
        g["target"]
            .to_vec1::<i64>()?
            .into_iter()
            .map(|c| c as usize)
            .collect(),
    );
    let sal = Saliency::signed().attribute(&model, x, &t)?;
    let d = rel(&sal.attributions, &g["saliency"])?;
    assert!(d < 1e-5, "vit saliency differs by {d}");
    let ig = IntegratedGradients::new(50).attribute(&model, x, &t)?;
    let d = rel(&ig.attributions, &g["ig_gl50"])?;
    eprintln!("vit: IG at the pixels vs Captum: {d:.1e}");
    assert!(d < 1e-5, "vit IG differs by {d}");
    // The processor's normalisation: pixel 0 → (0/255 − 0.5) / 0.5 = −1, 255 → 1.
    let px = Tensor::new(&[0f32, 255.0], &dev)?
        .reshape((1, 1, 1, 2))?
        .broadcast_as((1, 3, 1, 2))?
        .contiguous()?;
    let n: Vec<f32> = model.normalize(&px)?.flatten_all()?.to_vec1()?;
    assert!(
        (n[0] + 1.0).abs() < 1e-6 && (n[1] - 1.0).abs() < 1e-6,
        "{n:?}"
    );
    Ok(())
}

/// On token ids, padding is the model's pad id: RoBERTa's is 1 (its 0 is `<s>`), and the
/// padded golden batch gives transformers' logits.
#[test]
fn ids_are_masked_by_the_models_pad_id() -> anyhow::Result<()> {
    use candle_explain_models::bert::BertOnIds;
    let dev = Device::Cpu;
    let dir = folder("roberta");
    let model = BertClassifier::from_dir(&dir, None, &dev)?;
    assert_eq!(model.config.pad_token_id, 1);
    let g = candle_core::safetensors::load(dir.join("golden.safetensors"), &dev)?;
    let logits = BertOnIds(&model).forward(&g["input_ids"].to_dtype(DType::U32)?)?;
    let d = rel(&logits, &g["logits"])?;
    assert!(d < 1e-5, "roberta on ids: {d}");
    Ok(())
}
