//! `candle-explain reproduce <paper>`: a paper's experiment rerun, written as a report
//! (`report.md`, `report.html`, `results.json`, plots as SVG / PNG) in `out/reproduce/<paper>/`,
//! one file per paper: Lundstrom et al. (2022), the method × axiom table; Ancona et al.
//! (2018), Sensitivity-n curves and the equivalences; Deng et al. (2023), the allocation
//! errors against the three principles; Rahman et al. (2022), GGIG against IG and the
//! gradient; Hooker et al. (2019), ROAR and KAR.

mod ancona;
mod deng;
mod ggig;
mod hooker;
mod lundstrom;
mod report;
mod sentences;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::prelude::*;
use std::path::PathBuf;
pub(crate) use report::{heatmaps, write_report};

#[derive(Debug, Clone, clap::Args)]
pub struct ReproduceArgs {
    /// The paper: lundstrom, ancona, deng, ggig or hooker.
    pub paper: String,
    /// The small configuration CI runs (fewer inputs and steps, the same code path).
    #[arg(long)]
    pub quick: bool,
    /// Violations up to this (relative to the largest |F(x) − F(0)|) count as holding.
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f64,
    #[arg(long, default_value = "out/reproduce")]
    pub out: PathBuf,
}

pub fn run(a: &ReproduceArgs) -> Result<()> {
    match a.paper.as_str() {
        "lundstrom" => lundstrom::run(a),
        "ancona" => ancona::run(a),
        "deng" => deng::run(a),
        "ggig" => ggig::run(a),
        "hooker" => hooker::run(a),
        other => bail!("unknown paper {other:?}: lundstrom, ancona, deng, ggig or hooker"),
    }
}

/// The trained digits CNN, `examples` rows of its MNIST subset (every `step`-th), normalised,
/// and their predicted classes as the target.
pub(crate) fn digits(
    examples: usize,
    step: usize,
    dev: &Device,
) -> Result<(crate::model::ImageModel, Tensor, Target)> {
    examples_of("digits-cnn", examples, step, dev)
}

/// A built-in image model (`digits-cnn`, `fashion-resnet`), `examples` rows of its dataset
/// (every `step`-th), normalised, and their predicted classes as the target.
pub(crate) fn examples_of(
    spec: &str,
    examples: usize,
    step: usize,
    dev: &Device,
) -> Result<(crate::model::ImageModel, Tensor, Target)> {
    let crate::model::Loaded::Image(m) = crate::model::load(spec, DType::F32, dev)? else {
        bail!("{spec} is an image model");
    };
    let data = m.dataset(dev)?;
    let idx: Vec<u32> = (0..examples)
        .map(|i| (i * step % data.labels.len()) as u32)
        .collect();
    let x = (m.normalize)(
        &data
            .images
            .index_select(&Tensor::new(idx.as_slice(), dev)?, 0)?,
    )?;
    let pred = m
        .model
        .forward(&x)?
        .argmax(candle_core::D::Minus1)?
        .to_vec1::<u32>()?;
    let t = Target::PerExample(pred.into_iter().map(|c| c as usize).collect());
    Ok((m, x, t))
}

