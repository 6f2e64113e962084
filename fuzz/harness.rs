//! The fuzzed entry points, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and by
//! `tests/fuzz_replay.rs`, which replays the committed corpus and a fixed number of seeded
//! mutations of it on every `cargo test`. An entry point may return any error; it must not
//! panic, abort or hang.
#![allow(dead_code, unexpected_cfgs)]

use candle_core::{DType, Device, Tensor};
use candle_explain::core::nn::{Conv2d, Flatten, Linear, MaxPool2d, Sequential};
use candle_explain::core::ops::conv::ConvGeometry;
use candle_explain::core::Activation;
use candle_explain::prelude::*;
use clap::Parser;

#[path = "../src/bin/candle-explain/method.rs"]
mod method;

/// Where the checkpoint entry point writes its files (one folder per process).
fn scratch() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("candle-explain-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// The three parts of a checkpoint input, separated by `\n--\n`: a safetensors file, a
/// `config.json` and a `tokenizer.json`.
pub fn split3(data: &[u8]) -> [&[u8]; 3] {
    let sep = b"\n--\n";
    let mut parts = [&data[..0]; 3];
    let mut rest = data;
    for part in parts.iter_mut().take(2) {
        match rest.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                *part = &rest[..i];
                rest = &rest[i + sep.len()..];
            }
            None => {
                *part = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    parts[2] = rest;
    parts
}

/// The loading path of a Hugging Face BERT folder and of a safetensors CNN checkpoint, then
/// one forward and one attribution when they load.
pub fn load_checkpoint(data: &[u8]) {
    let [weights, config, tokenizer] = split3(data);
    let dir = scratch();
    if std::fs::write(dir.join("model.safetensors"), weights).is_err()
        || std::fs::write(dir.join("config.json"), config).is_err()
        || std::fs::write(dir.join("tokenizer.json"), tokenizer).is_err()
    {
        return;
    }
    let dev = Device::Cpu;
    let _ = candle_explain::models::DigitsCnn::from_file(dir.join("model.safetensors"), &dev);
    let Ok(text) = std::str::from_utf8(config) else {
        return;
    };
    let Ok(cfg) = candle_explain::models::BertConfig::from_json(text) else {
        return;
    };
    // tokenizers panics on a malformed "Precompiled" normaliser; load_tokenizer catches that,
    // but libFuzzer counts even a caught panic as a crash, so such inputs skip the tokenizer
    // under cargo fuzz (tests/fuzz_replay.rs still runs them: there the catch is tested).
    let skip_tokenizer = cfg!(fuzzing) && tokenizer.windows(11).any(|w| w == b"Precompiled");
    let tok = match skip_tokenizer {
        true => None,
        false => {
            candle_explain::models::bert::load_tokenizer(dir.join("tokenizer.json"), &cfg).ok()
        }
    };
    if let Some(tok) = tok {
        let _ =
            candle_explain::models::bert::encode(&tok, "a fuzzed sentence, not bad.", &cfg, &dev);
    }
    let Ok(model) = candle_explain::models::BertClassifier::from_dir(&dir, None, &dev) else {
        return;
    };
    let ids =
        Tensor::new(&[[0u32, 1, 2]], &dev).and_then(|t| t.clamp(0u32, cfg.vocab_size as u32 - 1));
    if let Ok(emb) = ids
        .map_err(candle_explain::models::Error::from)
        .and_then(|i| model.embed(&i))
    {
        let _ = Saliency::signed().attribute(&model, &emb, &Target::Class(0));
    }
}

#[derive(Debug, Parser)]
struct MethodCli {
    method: String,
    #[command(flatten)]
    params: method::MethodArgs,
}

/// A tiny CNN on `(1, 6, 6)` with a Grad-CAM tap named "features".
struct Tiny(Sequential);

impl candle_explain::core::Explainable for Tiny {
    fn forward_with(
        &self,
        x: &Tensor,
        ctx: &candle_explain::core::RuleCtx,
    ) -> candle_explain::core::Result<Tensor> {
        self.0.forward_with(x, ctx)
    }
    fn input_shape(&self) -> Option<Vec<usize>> {
        Some(vec![1, 6, 6])
    }
}

fn tiny(dev: &Device) -> candle_core::Result<Tiny> {
    let w = |shape: &[usize], k: f64| -> candle_core::Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as f64 * k).sin() * 0.5) as f32)
            .collect();
        Tensor::from_vec(v, shape, dev)
    };
    Ok(Tiny(
        Sequential::new()
            .push(Conv2d::new(
                w(&[3, 1, 3, 3], 1.3)?,
                Some(w(&[3], 0.7)?),
                ConvGeometry::default(),
            ))
            .push(Activation::Relu)
            .push(MaxPool2d::new(2))
            .push(Flatten)
            .push(Linear::new(w(&[4, 12], 2.1)?, Some(w(&[4], 0.3)?))),
    ))
}

/// The CLI's argument-to-method path: the words of `data` parsed as `METHOD [--flags]`, the
/// method built as `candle-explain explain` builds it and run on a tiny CNN. Steps, samples
/// and the budget are capped here so that one input stays fast (the caps themselves are
/// tested elsewhere).
pub fn cli_method(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut args = vec!["explain".to_string()];
    args.extend(text.split_whitespace().map(String::from));
    let Ok(mut cli) = MethodCli::try_parse_from(&args) else {
        return;
    };
    let p = &mut cli.params;
    p.steps = p.steps.min(32);
    p.samples = p.samples.min(16);
    p.memory_mb = p.memory_mb.min(64);
    p.window = p.window.min(64);
    let dev = Device::Cpu;
    let Ok(model) = tiny(&dev) else {
        return;
    };
    let Ok(m) = method::build(
        &cli.method,
        &cli.params,
        &[1, 6, 6],
        -0.5,
        (-0.5, 2.0),
        "features",
    ) else {
        return;
    };
    let x = Tensor::arange(0f32, 72., &dev)
        .and_then(|t| t.reshape((2, 1, 6, 6)))
        .and_then(|t| t.affine(1.0 / 36.0, -0.5))
        .and_then(|t| t.to_dtype(DType::F32));
    if let Ok(x) = x {
        if let Ok(a) = m.attribute(&model, &x, &Target::PerExample(vec![0, 3])) {
            let finite = candle_explain::core::validate::non_finite_count(&a.attributions);
            assert_eq!(finite.ok(), Some(0), "{text:?}: a result with NaN / inf");
        }
    }
}
