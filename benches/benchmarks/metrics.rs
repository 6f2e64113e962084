//! Faithfulness metrics on the trained digits CNN (weights/digits_cnn.safetensors), batch 8
//! of real digits, with the settings of `benches/quantus_cpu.py`: Sensitivity-n at 5 subset
//! sizes × 100 random subsets (Quantus's FaithfulnessCorrelation once per size) and a
//! deletion curve of 28 steps (Quantus's PixelFlipping, features_in_step = 28). Throughput is
//! examples evaluated per second.

use super::{device, sync};
use candle_core::Tensor;
use candle_explain::metrics::{PixelFlipping, SensitivityN};
use candle_explain::models::data::load_mnist_csv;
use candle_explain::models::DigitsCnn;
use candle_explain::prelude::*;
use criterion::{criterion_group, Criterion, Throughput};
use std::hint::black_box;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn bench_metrics(c: &mut Criterion) {
    let dev = device();
    let model = DigitsCnn::from_file(format!("{ROOT}/weights/digits_cnn.safetensors"), &dev)
        .expect("weights");
    let d = load_mnist_csv(format!("{ROOT}/weights/data/mnist_5k.csv.gz"), &dev).expect("data");
    // The first digit of each class 0..7 (the data are sorted by class, 500 each).
    let rows = Tensor::new(&[0u32, 500, 1000, 1500, 2000, 2500, 3000, 3500], &dev).unwrap();
    let x = DigitsCnn::normalize(&d.images.index_select(&rows, 0).unwrap()).unwrap();
    let t = Target::PerExample((0..8).collect());
    let a = InputXGradient::default()
        .attribute(&model, &x, &t)
        .unwrap()
        .attributions;
    let mut g = c.benchmark_group(format!(
        "metrics_digits_cnn_b8_{}",
        if dev.is_cpu() { "cpu" } else { "gpu" }
    ));
    g.sample_size(10);
    g.throughput(Throughput::Elements(8));
    let sn = SensitivityN::new(vec![1, 5, 25, 125, 627], 100, 11);
    g.bench_function("sensitivity_n_5x100", |b| {
        b.iter(|| {
            let r = sn.evaluate(&model, black_box(&x), &a, &t).unwrap();
            sync(&dev);
            r
        })
    });
    let pf = PixelFlipping::deletion(28);
    g.bench_function("deletion_28", |b| {
        b.iter(|| {
            let r = pf.evaluate(&model, black_box(&x), &a, &t).unwrap();
            sync(&dev);
            r
        })
    });
    g.finish();
}

criterion_group!(benches, bench_metrics);
