//! The LSTM sentence classifier: a by-hand LSTM step, every core method on it (shapes and
//! completeness where promised), bad input, and training on the real polarity sentences.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_models::lstm_classifier::{
    encode_left_padded, train_polarity, OnIds, PolarityTraining,
};
use candle_explain_models::text::Vocab;
use candle_explain_models::{LstmClassifier, LstmConfig};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// One word, one embedding dimension, one hidden unit: PyTorch's LSTM equations by hand.
#[test]
fn one_lstm_step_by_hand() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let config = LstmConfig {
        vocab_size: 3,
        embed_dim: 1,
        hidden: 1,
        layers: 1,
        bidirectional: false,
        classes: 2,
    };
    let t = |v: &[f32], shape: &[usize]| Tensor::from_vec(v.to_vec(), shape, &dev).unwrap();
    let w: HashMap<String, Tensor> = [
        ("embedding.weight", t(&[0.0, 0.8, -1.5], &[3, 1])),
        ("lstm.weight_ih_l0", t(&[0.5, -0.3, 0.9, 1.2], &[4, 1])),
        ("lstm.weight_hh_l0", t(&[0.2, 0.4, -0.6, 0.1], &[4, 1])),
        ("lstm.bias_ih_l0", t(&[0.1, 0.2, 0.0, -0.1], &[4])),
        ("lstm.bias_hh_l0", t(&[0.05, 0.0, 0.1, 0.0], &[4])),
        ("fc.weight", t(&[1.5, -2.0], &[2, 1])),
        ("fc.bias", t(&[0.0, 0.3], &[2])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let model = LstmClassifier::load(VarBuilder::from_tensors(w, DType::F32, &dev), config)?;
    let logits: Vec<Vec<f32>> = OnIds(&model)
        .forward(&Tensor::new(&[[1u32, 2]], &dev)?)?
        .to_vec2()?;
    // Two steps over x = 0.8 then −1.5.
    let (wi, wh, b) = (
        [0.5, -0.3, 0.9, 1.2],
        [0.2, 0.4, -0.6, 0.1],
        [0.15, 0.2, 0.1, -0.1],
    );
    let (mut h, mut c) = (0.0f64, 0.0f64);
    for x in [0.8, -1.5] {
        let z: Vec<f64> = (0..4).map(|k| wi[k] * x + wh[k] * h + b[k]).collect();
        let (i, f, g, o) = (sigmoid(z[0]), sigmoid(z[1]), z[2].tanh(), sigmoid(z[3]));
        c = f * c + i * g;
        h = o * c.tanh();
    }
    let want = [1.5 * h, -2.0 * h + 0.3];
    for k in 0..2 {
        assert!(
            (logits[0][k] as f64 - want[k]).abs() < 1e-6,
            "logit {k}: {} vs by hand {}",
            logits[0][k],
            want[k]
        );
    }
    // Padding on the left embeds to zero vectors.
    let vocab = Vocab::build(["good film", "bad"], 1, usize::MAX);
    let ids = encode_left_padded(&vocab, &["bad", "good film"], 10, &dev)?;
    assert_eq!(ids.to_vec2::<u32>()?[0][0], 0);
    assert_eq!(
        model
            .embed(&Tensor::new(&[[0u32, 1]], &dev)?)?
            .flatten_all()?
            .to_vec1::<f32>()?,
        [0.0, 0.8]
    );
    Ok(())
}

fn small(bidirectional: bool) -> anyhow::Result<LstmClassifier> {
    let vars = VarMap::new();
    let config = LstmConfig {
        vocab_size: 20,
        embed_dim: 6,
        hidden: 5,
        layers: 2,
        bidirectional,
        classes: 3,
    };
    Ok(LstmClassifier::load(
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
        config,
    )?)
}

/// Every core method runs on embeddings `(B, L, E)` with one and two directions; the methods
/// that promise completeness keep it.
#[test]
fn every_method_runs_on_the_lstm() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    for bidirectional in [false, true] {
        let model = small(bidirectional)?;
        let ids = Tensor::new(&[[0u32, 3, 7, 1, 9], [4, 4, 12, 19, 2]], &dev)?;
        let x = model.embed(&ids)?;
        let t = Target::PerExample(vec![2, 0]);
        let words = Tensor::arange(0u32, 5, &dev)?
            .reshape((1, 5, 1))?
            .broadcast_as((1, 5, 6))?
            .contiguous()?;
        common::smoke(
            &model,
            &x,
            &t,
            &words,
            &[1, 6],
            &format!("bidirectional {bidirectional}"),
        )?;
    }
    Ok(())
}

#[test]
fn bad_input_is_a_clear_error() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = small(false)?;
    let err = model
        .embed(&Tensor::new(&[[1u32, 20]], &dev)?)
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the vocabulary of 20"), "{err}");
    let err = Saliency::signed()
        .attribute(
            &model,
            &Tensor::zeros((1, 4, 7), DType::F32, &dev)?,
            &Target::Class(0),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("6) embeddings"), "{err}");
    let err = LstmConfig::from_json(r#"{"model_type": "gru", "vocab_size": 3}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lstm_classifier"), "{err}");
    let err = LstmConfig::from_json(r#"{"model_type": "lstm_classifier", "vocab_size": 3}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("embed_dim"), "{err}");
    let err = LstmClassifier::from_dir(std::env::temp_dir().join("no-such-lstm-folder"), &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    // A weights file of the wrong shape for the config.
    let config = LstmConfig {
        vocab_size: 20,
        embed_dim: 6,
        hidden: 5,
        layers: 1,
        bidirectional: false,
        classes: 3,
    };
    let w: HashMap<String, Tensor> = [(
        "embedding.weight".to_string(),
        Tensor::zeros((20, 7), DType::F32, &dev)?,
    )]
    .into_iter()
    .collect();
    let err = LstmClassifier::load(VarBuilder::from_tensors(w, DType::F32, &dev), config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("shape"), "{err}");
    Ok(())
}

/// Trains the classifier as `examples/train_lstm_polarity` does, for 4 epochs instead of 8,
/// on the fetched Pang & Lee sentences: held-out accuracy over 70 %, and the saved folder
/// loads back to the same predictions. Fetches `polarity` and `minilm` on first use
/// (`scripts/fetch-assets.sh`); fails when the download fails.
#[test]
fn trains_on_the_polarity_sentences() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    candle_explain_models::assets::ensure("polarity")?;
    candle_explain_models::assets::ensure("minilm")?;
    let t = PolarityTraining {
        assets: candle_explain_models::assets::assets_dir(),
        epochs: 4,
        bidirectional: false,
        progress: false,
    };
    let trained = train_polarity(&t, &dev)?;
    let acc = *trained.held_out_accuracy.last().unwrap();
    assert!(
        acc > 0.70,
        "held-out accuracy {acc} (per epoch {:?})",
        trained.held_out_accuracy
    );
    let dir = std::env::temp_dir().join(format!("candle-explain-lstm-{}", std::process::id()));
    trained.save(&dir)?;
    let (back, vocab) = LstmClassifier::from_dir(&dir, &dev)?;
    let ids = encode_left_padded(&vocab, &["a wonderful film", "a tedious mess"], 50, &dev)?;
    let (a, b) = (
        OnIds(&trained.model).forward(&ids)?,
        OnIds(&back).forward(&ids)?,
    );
    assert!(
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? < 1e-5,
        "the saved model predicts differently"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A padded batch with its attention mask (padding on the right for one sentence, on the
/// left for another) gives each sentence, under gradient, rule and path methods, what it gets
/// alone, and its padding exactly 0.
#[test]
fn a_masked_padded_batch_equals_one_sentence_at_a_time() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = small(true)?;
    let sentences: [&[u32]; 3] = [&[3, 7, 1], &[4, 12, 19, 2, 5], &[9]];
    let len = 5;
    // Sentence 0 padded on the right, 1 full, 2 padded on the left (as `encode_left_padded`).
    let starts = [0usize, 0, 4];
    let mut rows = vec![];
    let mut mask = vec![];
    for (s, &start) in sentences.iter().zip(&starts) {
        let mut ids = vec![0u32; len];
        ids[start..start + s.len()].copy_from_slice(s);
        rows.push(ids);
        mask.extend((0..len).map(|i| (i >= start && i < start + s.len()) as u8 as f32));
    }
    let x = model.embed(&Tensor::new(rows, &dev)?)?;
    let mask = Tensor::from_vec(mask, (3, len), &dev)?;
    let batch =
        candle_explain_core::WithInputs::new(&model).with("attention_mask", mask.clone())?;
    let t = Target::PerExample(vec![0, 2, 1]);
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::signed())),
        ("ig", Box::new(IntegratedGradients::new(16))),
        ("lrp", Box::new(EpsilonLrp::new(1e-6))),
        ("deeplift", Box::new(DeepLift::default())),
    ];
    for (name, m) in &methods {
        let together = m.attribute(&batch, &x, &t)?;
        for (i, (s, &start)) in sentences.iter().zip(&starts).enumerate() {
            let alone_x = model.embed(&Tensor::new(s.to_vec(), &dev)?.unsqueeze(0)?)?;
            let c = [0usize, 2, 1][i];
            let alone = m.attribute(&model, &alone_x, &Target::Class(c))?;
            let row = together.attributions.get(i)?;
            let words = row.narrow(0, start, s.len())?;
            let d = (&words - alone.attributions.get(0)?)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(d < 1e-5, "{name}, sentence {i}: batch vs alone {d}");
            let out = (together.output.get(i)? - alone.output.get(0)?)?
                .abs()?
                .to_scalar::<f32>()?;
            assert!(out < 1e-5, "{name}, sentence {i}: outputs differ by {out}");
            let pad = (row.abs()?.sum(1)? * mask.get(i)?.affine(-1.0, 1.0)?)?
                .sum_all()?
                .to_scalar::<f32>()?;
            assert_eq!(pad, 0.0, "{name}, sentence {i}: padding gets exactly 0");
        }
    }
    // Without the mask the padded rows are different sentences (the test can fail).
    let unmasked = Saliency::signed().attribute(&model, &x, &t)?;
    let alone = Saliency::signed().attribute(
        &model,
        &model.embed(&Tensor::new(&[[3u32, 7, 1]], &dev)?)?,
        &Target::Class(0),
    )?;
    let d = (unmasked.attributions.get(0)?.narrow(0, 0, 3)? - alone.attributions.get(0)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(d > 1e-4, "padding changes an unmasked LSTM: {d}");
    Ok(())
}
