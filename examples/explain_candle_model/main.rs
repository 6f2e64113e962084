//! Explains models exactly as Candle users write them, with no rewrite:
//! 1. an MLP of `candle_nn` layers, trained here for a few seconds on the shipped MNIST
//!    subset (`weights/data/mnist_5k.csv.gz`);
//! 2. `candle-transformers`' ViT (a small configuration; no ImageNet checkpoint is reachable
//!    here, so its weights are initialised and written by this example, then loaded back).
//!    Its attention's softmax (`candle_nn::ops::softmax_last_dim`) has no backward in Candle,
//!    so autograd gives a zero gradient: the gradient check refuses IG and SmoothGrad (the
//!    error is printed), and Occlusion and KernelSHAP, which need forward passes only,
//!    explain it;
//! 3. a `candle_nn` CNN with Candle's own max-pool, whose autograd gradient is wrong (1/(k·k)
//!    of the true one): gradient methods refuse it with an error that says so, forward-only
//!    methods still run.
//!
//! Each model goes through `candle_explain::core::any_model`, and Integrated Gradients,
//! SmoothGrad, Occlusion and KernelSHAP explain it; the maps go
//! to `grid.png` (methods named over the columns, label and prediction beside the rows,
//! colour legend).
//!
//! ```text
//! cargo run --release --example explain_candle_model -- [--out DIR]
//! ```

use anyhow::{Context, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_explain::core::any_model::{from_module, AnyModel};
use candle_explain::models::data::load_mnist_csv;
use candle_explain::prelude::*;
use candle_explain::viz::{Cell, Figure, Row, Sign};
use candle_nn::{Optimizer, VarBuilder, VarMap};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `784 → 128 → 10` with a ReLU: plain `candle_nn`.
struct Mlp {
    fc1: candle_nn::Linear,
    fc2: candle_nn::Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2
            .forward(&self.fc1.forward(&x.flatten_from(1)?)?.relu()?)
    }
}

fn train_mlp(x: &Tensor, y: &Tensor, dev: &Device) -> Result<Mlp> {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, dev);
    let mlp = Mlp {
        fc1: candle_nn::linear(784, 128, vb.pp("fc1"))?,
        fc2: candle_nn::linear(128, 10, vb.pp("fc2"))?,
    };
    let mut opt = candle_nn::AdamW::new_lr(vars.all_vars(), 2e-3)?;
    let n = x.dim(0)?;
    for _epoch in 0..4 {
        for start in (0..n).step_by(100) {
            let len = 100.min(n - start);
            let logits = mlp.forward(&x.narrow(0, start, len)?)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y.narrow(0, start, len)?)?;
            opt.backward_step(&loss)?;
        }
    }
    Ok(mlp)
}

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let mut out = std::path::PathBuf::from("out/explain_candle_model");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().context("--out needs a folder")?.into(),
            "-h" | "--help" => {
                println!(
                    "usage: explain_candle_model [--out DIR (default out/explain_candle_model)]"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let dev = Device::Cpu;
    let data = load_mnist_csv(format!("{ROOT}/weights/data/mnist_5k.csv.gz"), &dev)?;
    let images = (data.images / 255.0)?;
    let labels = Tensor::new(
        data.labels.iter().map(|&l| l as u32).collect::<Vec<_>>(),
        &dev,
    )?;
    // The file is sorted by class: shuffle with a fixed permutation to train.
    let perm: Vec<u32> = (0..5000u32).map(|i| (i * 2_971) % 5000).collect();
    let perm = Tensor::new(perm, &dev)?;
    let t0 = std::time::Instant::now();
    let mlp = train_mlp(
        &images.index_select(&perm, 0)?,
        &labels.index_select(&perm, 0)?,
        &dev,
    )?;
    // Six test digits, one per row, taken from every class's last 50 (not trained on first).
    let rows: Vec<u32> = (0..6u32).map(|i| i * 500 + 499).collect();
    let x = images.index_select(&Tensor::new(rows.as_slice(), &dev)?, 0)?;
    let truth: Vec<usize> = rows
        .iter()
        .map(|&r| data.labels[r as usize] as usize)
        .collect();
    let acc = mlp
        .forward(&images)?
        .argmax(D::Minus1)?
        .eq(&labels)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    println!(
        "candle_nn MLP trained in {:.1} s: {:.1} % on the 5,000 digits",
        t0.elapsed().as_secs_f64(),
        100.0 * acc
    );

    // 1. The candle_nn MLP, unchanged.
    let model = from_module(mlp).with_input_shape(&[1, 28, 28]);
    let pred: Vec<usize> = model_argmax(&model, &x)?;
    let groups = Tensor::arange(0u32, 784, &dev)?
        .reshape((1, 28, 28))?
        .to_dtype(DType::F32)?
        .apply(&|t: &Tensor| {
            // 7×7 superpixels: 16 groups.
            let r = (t / 28.0)?.floor()?;
            let c = (t - (&r * 28.0)?)?;
            ((r / 7.0)?.floor()? * 4.0)? + (c / 7.0)?.floor()?
        })?
        .to_dtype(DType::U32)?;
    let all = methods(&groups)?;
    let maps = explain(&model, &x, &pred, &all)?;
    figure(
        "candle_nn MLP (unchanged Module) on MNIST",
        &x,
        &maps,
        &all,
        |r| format!("label {}\npred {}", truth[r], pred[r]),
        &out.join("grid.png"),
    )?;

    // 2. candle-transformers' ViT, as it is (a small configuration, weights written here).
    let cfg = candle_transformers::models::vit::Config {
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 128,
        hidden_act: candle_nn::Activation::Gelu,
        layer_norm_eps: 1e-12,
        image_size: 28,
        patch_size: 7,
        num_channels: 1,
        qkv_bias: true,
    };
    let path = out.join("vit_small_random.safetensors");
    let vars = VarMap::new();
    candle_transformers::models::vit::Model::new(
        &cfg,
        10,
        VarBuilder::from_varmap(&vars, DType::F32, &dev),
    )?;
    vars.save(&path)?;
    // SAFETY: the file was just written by this process and is not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &dev)? };
    // Its forward is an inherent method, not `Module`: a closure takes it as it is.
    let vit_model = candle_transformers::models::vit::Model::new(&cfg, 10, vb)?;
    let vit = AnyModel::new(move |x: &Tensor| vit_model.forward(x));
    let vit_pred = model_argmax(&vit, &x)?;
    match IntegratedGradients::new(16).attribute(&vit, &x, &Target::PerExample(vit_pred.clone())) {
        Ok(_) => println!("ViT: IG ran (the gradient check passed)"),
        Err(e) => println!("ViT, Integrated Gradients refused:\n  {e}"),
    }
    let forward_only: Vec<(&'static str, Box<dyn Attributor>)> = methods(&groups)?
        .into_iter()
        .filter(|(n, _)| n.starts_with("occlusion") || n.starts_with("kernel_shap"))
        .collect();
    let vit_maps = explain(&vit, &x, &vit_pred, &forward_only)?;
    figure(
        "candle-transformers ViT (random weights written by the example)",
        &x,
        &vit_maps,
        &forward_only,
        |r| format!("pred {}", vit_pred[r]),
        &out.join("grid_vit.png"),
    )?;

    // 3. A candle_nn CNN with Candle's max-pool: refused for gradients, fine for occlusion.
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let conv = candle_nn::conv2d(1, 4, 3, Default::default(), vb.pp("conv"))?;
    let fc = candle_nn::linear(4 * 13 * 13, 10, vb.pp("fc"))?;
    let cnn = AnyModel::new(move |x: &Tensor| {
        fc.forward(&conv.forward(x)?.relu()?.max_pool2d(2)?.flatten_from(1)?)
    });
    match IntegratedGradients::new(16).attribute(&cnn, &x, &Target::Class(0)) {
        Ok(_) => println!("max-pool CNN: IG ran (the gradient check passed)"),
        Err(e) => println!("max-pool CNN, Integrated Gradients refused:\n  {e}"),
    }
    let occ = Occlusion::new(&[1, 4, 4], &[1, 2, 2]).attribute(&cnn, &x, &Target::Class(0))?;
    println!(
        "max-pool CNN, Occlusion (forward passes only): {:?}",
        occ.attributions.dims()
    );
    println!(
        "wrote {}/{{grid.png, grid_vit.png, vit_small_random.safetensors}}",
        out.display()
    );
    Ok(())
}

fn model_argmax(m: &dyn Explainable, x: &Tensor) -> Result<Vec<usize>> {
    Ok(m.forward(x)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

fn methods(groups: &Tensor) -> Result<Vec<(&'static str, Box<dyn Attributor>)>> {
    Ok(vec![
        (
            "integrated_gradients",
            Box::new(IntegratedGradients::new(32)),
        ),
        (
            "smoothgrad",
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 16, 0)),
        ),
        (
            "occlusion_4x4",
            Box::new(Occlusion::new(&[1, 4, 4], &[1, 2, 2])),
        ),
        (
            "kernel_shap_7x7",
            Box::new(KernelShap::sampling(groups.clone(), 300, 0)),
        ),
    ])
}

fn explain(
    m: &dyn Explainable,
    x: &Tensor,
    pred: &[usize],
    methods: &[(&'static str, Box<dyn Attributor>)],
) -> Result<Vec<Tensor>> {
    let t = Target::PerExample(pred.to_vec());
    let mut maps = vec![];
    for (name, method) in methods {
        let t0 = std::time::Instant::now();
        let a = method
            .attribute(m, x, &t)
            .with_context(|| name.to_string())?;
        println!("  {name:<22} {:>8.3} s", t0.elapsed().as_secs_f64());
        maps.push(a.attributions);
    }
    Ok(maps)
}

fn figure(
    title: &str,
    x: &Tensor,
    maps: &[Tensor],
    methods: &[(&'static str, Box<dyn Attributor>)],
    label: impl Fn(usize) -> String,
    path: &std::path::Path,
) -> Result<()> {
    let mut rows = vec![];
    for r in 0..x.dim(0)? {
        let img = x.get(r)?;
        let mut cells = vec![Cell::input(&img, 3, "").map_err(anyhow::Error::msg)?];
        for m in maps {
            cells.push(
                Cell::attribution(&img, &m.get(r)?, Sign::Signed, 1.0, 3)
                    .map_err(anyhow::Error::msg)?,
            );
        }
        rows.push(Row {
            label: label(r),
            cells,
        });
    }
    let mut columns = vec!["input".to_string()];
    columns.extend(methods.iter().map(|(n, _)| n.to_string()));
    Figure {
        title: title.into(),
        columns,
        rows,
        sign: Sign::Signed,
        notes: vec![],
    }
    .save(path)
    .map_err(anyhow::Error::msg)
}
