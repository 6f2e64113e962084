//! Padded batches of text: sentences of the polarity dataset (real, of different lengths)
//! explained with IG-50 on the real all-MiniLM-L6-v2 encoder (a fresh 2-class head) as one
//! padded batch with its attention mask, as length-sorted padded batches of 8, and one
//! sentence at a time. Throughput is in
//! sentences per second. 32 sentences: each iteration is 1,600 encoder passes and criterion
//! takes ten.

use super::{device, sync};
use candle_core::{DType, Tensor};
use candle_explain::core::WithInputs;
use candle_explain::models::bert::{encode, load_tokenizer};
use candle_explain::models::{BertClassifier, BertConfig};
use candle_explain::prelude::*;
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, Criterion, Throughput};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"));
const SENTENCES: usize = 32;

fn bench_padded_text(c: &mut Criterion) {
    let dev = device();
    let dir = candle_explain::models::assets::ensure("minilm").expect("minilm");
    candle_explain::models::assets::ensure("polarity").expect("polarity");
    let config =
        BertConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).expect("config"))
            .expect("config");
    let weights =
        candle_core::safetensors::load(dir.join("model.safetensors"), &dev).expect("weights");
    let head = VarMap::new();
    let model = BertClassifier::load(
        VarBuilder::from_tensors(weights, DType::F32, &dev),
        VarBuilder::from_varmap(&head, DType::F32, &dev),
        config.clone(),
    )
    .expect("bert");
    let tok = load_tokenizer(dir.join("tokenizer.json"), &config).expect("tokenizer");
    let rows = candle_explain::models::text::load_polarity_csv(format!(
        "{ROOT}/assets/polarity/pang_lee_sentences.csv"
    ))
    .expect("polarity");
    let embs: Vec<Tensor> = rows
        .iter()
        .take(SENTENCES)
        .map(|(s, _)| {
            model
                .embed(&encode(&tok, s, &config, &dev).expect("ids"))
                .expect("embed")
        })
        .collect();
    let len = embs.iter().map(|e| e.dim(1).unwrap()).max().unwrap();
    let padded: Vec<Tensor> = embs
        .iter()
        .map(|e| e.pad_with_zeros(1, 0, len - e.dim(1).unwrap()).unwrap())
        .collect();
    let x = Tensor::cat(&padded, 0).unwrap();
    let mask: Vec<f32> = embs
        .iter()
        .flat_map(|e| {
            let n = e.dim(1).unwrap();
            (0..len).map(move |i| (i < n) as u8 as f32)
        })
        .collect();
    let mask = Tensor::from_vec(mask, (SENTENCES, len), &dev).unwrap();
    let batch = WithInputs::new(&model)
        .with("attention_mask", mask)
        .unwrap();
    let ig = IntegratedGradients::new(50);
    let mut g = c.benchmark_group(format!(
        "polarity_minilm_ig50_{}s_{}",
        SENTENCES,
        if dev.is_cpu() { "cpu" } else { "gpu" }
    ));
    g.sample_size(10);
    g.throughput(Throughput::Elements(SENTENCES as u64));
    g.bench_function("padded_batch", |b| {
        b.iter(|| {
            let r = ig.attribute(&batch, &x, &Target::Class(1)).unwrap();
            sync(&dev);
            r
        })
    });
    // Sorted by length, padded batches of 8: little padding, still batched.
    let lengths: Vec<usize> = embs.iter().map(|e| e.dim(1).unwrap()).collect();
    let buckets: Vec<(Tensor, Tensor)> = candle_explain::models::text::length_buckets(&lengths, 8)
        .into_iter()
        .map(|idx| {
            let len = idx.iter().map(|&i| lengths[i]).max().unwrap();
            let xs: Vec<Tensor> = idx
                .iter()
                .map(|&i| embs[i].pad_with_zeros(1, 0, len - lengths[i]).unwrap())
                .collect();
            let m: Vec<f32> = idx
                .iter()
                .flat_map(|&i| {
                    let n = lengths[i];
                    (0..len).map(move |k| (k < n) as u8 as f32)
                })
                .collect();
            (
                Tensor::cat(&xs, 0).unwrap(),
                Tensor::from_vec(m, (idx.len(), len), &dev).unwrap(),
            )
        })
        .collect();
    g.bench_function("length_buckets_of_8", |b| {
        b.iter(|| {
            for (x, m) in &buckets {
                let model = WithInputs::new(&model)
                    .with("attention_mask", m.clone())
                    .unwrap();
                ig.attribute(&model, x, &Target::Class(1)).unwrap();
            }
            sync(&dev);
        })
    });
    g.bench_function("one_at_a_time", |b| {
        b.iter(|| {
            for e in &embs {
                ig.attribute(&model, e, &Target::Class(1)).unwrap();
            }
            sync(&dev);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_padded_text);
