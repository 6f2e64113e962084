//! Trains the small ResNet (`SmallResNetConfig::fashion_mnist`: widths 16/32/64, one basic
//! block each, BatchNorm, 78k parameters) on Fashion-MNIST's 60,000 training images (fetched
//! by `scripts/fetch-assets.sh fashion-mnist`) with the project's trainer (AdamW, seeded
//! shuffling, BatchNorm on batch statistics, the conv's kernel gradient on our CPU kernels)
//! and writes `weights/fashion_resnet.safetensors`, reporting the test accuracy on the 10,000
//! test images after every epoch.
//!
//! ```text
//! cargo run --release --example train_fashion_resnet -- [--epochs N] [--out FILE] [--cuda]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::models::data::load_idx;
use candle_explain::models::small_resnet::SmallResNet;
use candle_explain::models::train::{save, train, OptimizerKind, TrainConfig};
use candle_explain::models::SmallResNetConfig;
use candle_nn::{VarBuilder, VarMap};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let mut cfg = TrainConfig {
        epochs: 4,
        batch_size: 128,
        learning_rate: 2e-3,
        optimizer: OptimizerKind::AdamW { weight_decay: 1e-4 },
        seed: 0,
        progress: true,
    };
    let mut out = std::path::PathBuf::from(format!("{ROOT}/weights/fashion_resnet.safetensors"));
    let mut device = Device::Cpu;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--out" => out = it.next().context("--out needs a file")?.into(),
            "--epochs" => {
                cfg.epochs = it
                    .next()
                    .context("--epochs needs a number")?
                    .parse()
                    .context("--epochs takes a number")?
            }
            "--cuda" => {
                device = Device::new_cuda(0)
                    .context("--cuda: no CUDA device (build with --features cuda)")?
            }
            "-h" | "--help" => {
                println!("usage: train_fashion_resnet [--epochs N (default 4)] [--out FILE (default weights/fashion_resnet.safetensors)] [--cuda]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let dir = candle_explain::models::assets::ensure("fashion-mnist")?
        .display()
        .to_string();
    let load = |split: &str| -> Result<(Tensor, Tensor)> {
        let d = load_idx(
            format!("{dir}/{split}-images-idx3-ubyte.gz"),
            format!("{dir}/{split}-labels-idx1-ubyte.gz"),
            &device,
        )?;
        let y = Tensor::new(d.labels.as_slice(), &device)?.to_dtype(DType::U32)?;
        Ok((SmallResNet::normalize(&d.images)?, y))
    };
    let (x, y) = load("train")?;
    let (xt, yt) = load("t10k")?;
    let vars = VarMap::new();
    let model = SmallResNet::load(
        VarBuilder::from_varmap(&vars, DType::F32, &device),
        SmallResNetConfig::fashion_mnist(),
    )?;
    let t0 = std::time::Instant::now();
    let report = train(&model, &vars, &x, &y, Some((&xt, &yt)), &cfg)?;
    for (e, (l, a)) in report.losses.iter().zip(&report.accuracy).enumerate() {
        println!(
            "epoch {}: training loss {l:.4}, test accuracy {:.2} %",
            e + 1,
            a * 100.0
        );
    }
    println!(
        "{} training / {} test images, {:.0} s",
        x.dim(0)?,
        xt.dim(0)?,
        t0.elapsed().as_secs_f64()
    );
    save(&vars, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}
