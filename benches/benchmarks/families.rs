//! One group per model family, one bench per method (IG-50, Saliency, DeepLIFT, LRP,
//! SmoothGrad-20, Occlusion, Sensitivity-n), reporting explanations per second:
//! - `resnet_fashion_b16`: the Fashion-MNIST ResNet of `weights/` (BatchNorm folded), 28×28;
//! - `lstm_b8_l32`: an LSTM classifier (embedding 128, hidden 128, one layer), 32 tokens,
//!   attributed at the embeddings, seeded random weights;
//! - `bert_minilm_b4_l32`: a MiniLM-shaped BERT (6 layers, hidden 384, 12 heads), 32 tokens,
//!   at the word embeddings, seeded random weights;
//! - `efficientnet_lite0_b1`: the committed ImageNet model on one 224² image (Saliency, LRP,
//!   IG-16 and Grad-CAM only: the other methods take tens of seconds per image on a CPU).
//!
//! DeepLIFT is left out for the LSTM and BERT: their sigmoid / tanh gates and attention have no
//! Rescale rule here. Occlusion slides one token (a window over the whole embedding) for the
//! sequence models, 4×4 patches with stride 2 for the ResNet.

use super::{device, sync, uniform};
use candle_core::{DType, Device, Tensor};
use candle_explain::metrics::SensitivityN;
use candle_explain::models::{
    BertClassifier, BertConfig, EfficientNetLite0, LstmClassifier, LstmConfig, SmallResNet,
    SmallResNetConfig,
};
use candle_explain::prelude::*;
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, Criterion, Throughput};
use std::hint::black_box;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn suffix(dev: &Device) -> &'static str {
    if dev.is_cpu() {
        "cpu"
    } else {
        "gpu"
    }
}

/// Every variable of a fresh `VarMap` set to seeded values of PyTorch's scale.
fn randomize(vars: &VarMap, dev: &Device) {
    let data = vars.data().lock().expect("vars");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let v = &data[name];
        let fan_in = if v.rank() >= 2 {
            v.elem_count() / v.dim(0).unwrap()
        } else {
            v.elem_count()
        };
        let scale = if name.ends_with("LayerNorm.weight") {
            0.0
        } else {
            1.0 / (fan_in as f32).sqrt()
        };
        let mut t = uniform(v.dims(), scale, i as u64 + 7, dev);
        if name.ends_with("LayerNorm.weight") {
            t = t.ones_like().unwrap();
        }
        v.set(&t).expect("set");
    }
}

/// The benches of one family: methods, then Sensitivity-n on Gradient × Input's map.
fn run(
    c: &mut Criterion,
    group: String,
    model: &dyn Explainable,
    x: &Tensor,
    t: &Target,
    methods: Vec<(&str, Box<dyn Attributor>)>,
    sens: Option<SensitivityN>,
) {
    let dev = x.device().clone();
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.throughput(Throughput::Elements(x.dim(0).unwrap() as u64));
    for (name, m) in &methods {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let r = m.attribute(model, black_box(x), t).unwrap();
                sync(&dev);
                r
            })
        });
    }
    if let Some(s) = sens {
        let a = InputXGradient::default()
            .attribute(model, x, t)
            .unwrap()
            .attributions;
        g.bench_function("sensitivity_n", |b| {
            b.iter(|| {
                let r = s.evaluate(model, black_box(x), &a, t).unwrap();
                sync(&dev);
                r
            })
        });
    }
    g.finish();
}

fn common_methods(
    occlusion: Occlusion,
    with_deeplift: bool,
) -> Vec<(&'static str, Box<dyn Attributor>)> {
    let mut m: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::signed())),
        ("ig50", Box::new(IntegratedGradients::new(50))),
        (
            "smoothgrad20",
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 20, 0)),
        ),
        (
            "lrp_epsilon",
            Box::new(Lrp::new(
                Composite::new(ActRule::Pass)
                    .with(Selector::kind(LayerKind::Linear), LayerRule::Epsilon(1e-3))
                    .with(Selector::kind(LayerKind::Conv2d), LayerRule::Epsilon(1e-3))
                    .with(Selector::kind(LayerKind::Sum), LayerRule::Epsilon(1e-3)),
            )),
        ),
        ("occlusion", Box::new(occlusion)),
    ];
    if with_deeplift {
        m.push(("deeplift", Box::new(DeepLift::default())));
    }
    m
}

fn bench_resnet(c: &mut Criterion) {
    let dev = device();
    let model = SmallResNet::from_file(
        format!("{ROOT}/weights/fashion_resnet.safetensors"),
        SmallResNetConfig::fashion_mnist(),
        &dev,
    )
    .expect("weights")
    .canonized()
    .expect("canonize");
    let b = 16;
    let x = uniform(&[b, 1, 28, 28], 1.0, 5, &dev);
    let t = Target::PerExample((0..b).map(|i| i % 10).collect());
    let mut methods = common_methods(Occlusion::new(&[1, 4, 4], &[1, 2, 2]), true);
    methods.push((
        "lrp_epsilon_plus",
        Box::new(Lrp::new(Composite::epsilon_plus())),
    ));
    run(
        c,
        format!("resnet_fashion_b{b}_{}", suffix(&dev)),
        &model,
        &x,
        &t,
        methods,
        Some(SensitivityN::new(vec![8, 64, 512], 64, 3)),
    );
}

fn bench_lstm(c: &mut Criterion) {
    let dev = device();
    let vars = VarMap::new();
    let cfg = LstmConfig {
        vocab_size: 1000,
        embed_dim: 128,
        hidden: 128,
        layers: 1,
        bidirectional: false,
        classes: 2,
    };
    let model =
        LstmClassifier::load(VarBuilder::from_varmap(&vars, DType::F32, &dev), cfg).expect("lstm");
    randomize(&vars, &dev);
    let (b, l) = (8, 32);
    let x = uniform(&[b, l, 128], 0.5, 6, &dev);
    let t = Target::PerExample((0..b).map(|i| i % 2).collect());
    run(
        c,
        format!("lstm_b{b}_l{l}_{}", suffix(&dev)),
        &model,
        &x,
        &t,
        common_methods(Occlusion::new(&[1, 128], &[1, 128]), false),
        Some(SensitivityN::new(vec![128, 1024], 32, 3)),
    );
}

fn bench_bert(c: &mut Criterion) {
    let dev = device();
    let cfg = BertConfig::from_json(r#"{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "num_labels": 2}"#).expect("config");
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let model = BertClassifier::load(vb.clone(), vb, cfg).expect("bert");
    randomize(&vars, &dev);
    let (b, l) = (4, 32);
    let x = uniform(&[b, l, 384], 0.05, 8, &dev);
    let t = Target::PerExample((0..b).map(|i| i % 2).collect());
    run(
        c,
        format!("bert_minilm_b{b}_l{l}_{}", suffix(&dev)),
        &model,
        &x,
        &t,
        common_methods(Occlusion::new(&[1, 384], &[1, 384]), false),
        Some(SensitivityN::new(vec![384, 4096], 16, 3)),
    );
}

fn bench_efficientnet(c: &mut Criterion) {
    let dev = device();
    let model = EfficientNetLite0::from_file(
        format!("{ROOT}/weights/efficientnet_lite0.f16.safetensors"),
        DType::F32,
        &dev,
    )
    .expect("weights");
    let x = uniform(&[1, 3, 224, 224], 1.0, 9, &dev);
    let t = Target::Class(285);
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::signed())),
        (
            "lrp_epsilon_plus",
            Box::new(Lrp::new(Composite::epsilon_plus())),
        ),
        ("ig16", Box::new(IntegratedGradients::new(16))),
        ("grad_cam", Box::new(GradCam::new("_conv_head"))),
    ];
    run(
        c,
        format!("efficientnet_lite0_b1_{}", suffix(&dev)),
        &model,
        &x,
        &t,
        methods,
        None,
    );
}

/// IG-50 for one 128-token sentence at the word embeddings of base-sized encoders with random
/// weights, DistilBERT-base (6 layers) and BERT-base (12 layers, 768 wide, 12 heads): the
/// shapes of `benches/captum_hf_text.py`, Captum's `LayerIntegratedGradients` at the word
/// embeddings on transformers' models.
fn bench_hf_base(c: &mut Criterion) {
    let dev = device();
    let configs = [
        (
            "distilbert_base",
            r#"{"model_type": "distilbert", "architectures": ["DistilBertForSequenceClassification"], "vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072, "activation": "gelu", "max_position_embeddings": 512, "num_labels": 2}"#,
        ),
        (
            "bert_base",
            r#"{"model_type": "bert", "architectures": ["BertForSequenceClassification"], "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 2, "num_labels": 2}"#,
        ),
    ];
    let mut g = c.benchmark_group(format!("hf_ig50_l128_{}", suffix(&dev)));
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    for (name, json) in configs {
        let cfg = BertConfig::from_json(json).expect("config");
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
        let model = BertClassifier::load(vb.clone(), vb, cfg).expect("model");
        randomize(&vars, &dev);
        let x = uniform(&[1, 128, 768], 0.05, 11, &dev);
        let ig = IntegratedGradients::new(50);
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = ig
                    .attribute(&model, black_box(&x), &Target::Class(1))
                    .unwrap();
                sync(&dev);
                r
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_resnet,
    bench_lstm,
    bench_bert,
    bench_efficientnet,
    bench_hf_base
);
