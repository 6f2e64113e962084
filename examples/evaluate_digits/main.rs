//! How faithful is each method? Scores attributions of real MNIST digits (the trained CNN
//! in `weights/`) with Sensitivity-n on pixels (Ancona et al.), deletion and
//! insertion AOPC (pixel flipping), and infidelity; prints a table and writes
//! `out/evaluate_digits/metrics.json`.
//!
//! ```text
//! cargo run --release --example evaluate_digits -- [--digits N]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_explain::metrics::{Infidelity, PixelFlipping, SensitivityN};
use candle_explain::models::data::load_mnist_csv;
use candle_explain::models::DigitsCnn;
use candle_explain::prelude::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let mut digits = 16usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--digits" => {
                digits = it
                    .next()
                    .context("--digits needs a value")?
                    .parse()
                    .context("--digits takes a number")?
            }
            "-h" | "--help" => {
                println!("usage: evaluate_digits [--digits N (1..=5000, default 16)]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if digits == 0 || digits > 5000 {
        bail!("--digits must be in 1..=5000");
    }
    let dev = Device::Cpu;
    let model = DigitsCnn::from_file(format!("{ROOT}/weights/digits_cnn.safetensors"), &dev)?;
    let data = load_mnist_csv(format!("{ROOT}/weights/data/mnist_5k.csv.gz"), &dev)?;
    let rows: Vec<u32> = (0..digits)
        .map(|i| ((i % 10) * 500 + 100 + i / 10) as u32)
        .collect();
    let x = DigitsCnn::normalize(
        &data
            .images
            .index_select(&Tensor::new(rows.as_slice(), &dev)?, 0)?,
    )?;
    let target = Target::PerExample(
        rows.iter()
            .map(|&r| data.labels[r as usize] as usize)
            .collect(),
    );
    let black = Baseline::Constant(-0.1307 / 0.3081);
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::signed())),
        ("gradient_x_input", Box::new(InputXGradient::default())),
        (
            "integrated_gradients",
            Box::new(IntegratedGradients::new(32).with_baseline(black.clone())),
        ),
        (
            "deeplift",
            Box::new(DeepLift::default().with_baseline(black.clone())),
        ),
        (
            "lrp_epsilon_plus",
            Box::new(Lrp::new(Composite::epsilon_plus())),
        ),
        (
            "smoothgrad_sq",
            Box::new(NoiseTunnel::new(
                Saliency::signed(),
                NoiseKind::SmoothGradSquared,
                16,
                0.15,
                0,
            )),
        ),
        (
            "occlusion_1",
            Box::new(Occlusion::single(3).with_baseline(black.clone())),
        ),
        ("random", Box::new(RandomAttribution { seed: 0 })),
    ];
    let ns = SensitivityN::log_grid(784, 6, 0.8)?;
    let sens = SensitivityN {
        baseline: black.clone(),
        ..SensitivityN::new(ns.clone(), 64, 0)
    };
    let del = PixelFlipping {
        baseline: black.clone(),
        ..PixelFlipping::deletion(16)
    };
    let ins = PixelFlipping {
        baseline: black.clone(),
        ..PixelFlipping::insertion(16)
    };
    let infid = Infidelity::new(64, 0.2, 0);
    print!("{:<22}", "method");
    for n in &ns {
        print!(" {:>7}", format!("sens-{n}"));
    }
    println!(
        " {:>10} {:>10} {:>11}",
        "del AOPC↑", "ins AOPC↑", "infidelity↓"
    );
    let mut json = vec![];
    for (name, m) in &methods {
        let a = m.attribute(&model, &x, &target)?.attributions;
        let s = sens.evaluate(&model, &x, &a, &target)?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (d, i) = (
            del.evaluate(&model, &x, &a, &target)?,
            ins.evaluate(&model, &x, &a, &target)?,
        );
        let inf = mean(&infid.evaluate(&model, &x, &a, &target)?);
        print!("{name:<22}");
        for c in &s.correlation {
            print!(" {c:>7.3}");
        }
        println!(
            " {:>10.3} {:>10.3} {:>11.3e}",
            mean(&d.aopc),
            mean(&i.aopc),
            inf
        );
        json.push(serde_json::json!({"method": name, "sensitivity_n": {"n": s.n, "correlation": s.correlation}, "deletion_aopc": mean(&d.aopc), "insertion_aopc": mean(&i.aopc), "infidelity": inf}));
    }
    std::fs::create_dir_all("out/evaluate_digits")?;
    std::fs::write(
        "out/evaluate_digits/metrics.json",
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("wrote out/evaluate_digits/metrics.json ({digits} digits)");
    Ok(())
}
