//! The perturbation engine: for rows (example, perturbation), build masks on the device,
//! fill the masked features from a baseline, run the model in chunks, return the scores.

use crate::{invalid, Result};
use candle_core::{DType, Tensor};
use candle_explain_core::{Batching, Explainable, Target};
use std::ops::Range;

/// A checked input with its per-row target seed.
pub struct Prepared {
    pub x: Tensor,
    pub seed: Tensor,
    /// `S_c(x)` per example.
    pub score: Tensor,
}

/// Validates `x` against the model and target, and scores it.
pub fn prepare(model: &dyn Explainable, x: &Tensor, target: &Target) -> Result<Prepared> {
    if matches!(target, Target::Classes(_)) {
        return Err(invalid(
            "target",
            "metrics explain one output per example: use Class, PerExample or Seed",
        ));
    }
    candle_explain_core::validate::check_input(model, x)?;
    // Rows are gathered with index_select, which needs a contiguous layout.
    let x = &x.contiguous()?;
    let out = candle_explain_core::batch::logits(model, x)?;
    candle_explain_core::validate::check_finite(&out, "the model's output")?;
    let seed = target.seed(x.dim(0)?, out.dim(1)?, x.device(), x.dtype())?;
    let score = (&out * &seed)?.sum(1)?;
    Ok(Prepared {
        x: x.clone(),
        seed,
        score,
    })
}

/// Attributions to evaluate must be finite: a NaN would make the ranking (and every curve
/// built on it) meaningless.
pub fn check_attributions(attributions: &Tensor) -> Result<()> {
    candle_explain_core::validate::check_finite(attributions, "attributions to evaluate")?;
    Ok(())
}

/// Scores of `rows` perturbed inputs, `per_example` per example (example-major rows), on
/// core's perturbation engine: `mask_of(range, example_index)` returns the `(len, features…)`
/// 0/1 masks of the rows in `range` (1 = replaced by the baseline).
pub fn masked_scores(
    model: &dyn Explainable,
    p: &Prepared,
    baseline: &Tensor,
    per_example: usize,
    batching: &Batching,
    label: &str,
    mut mask_of: impl FnMut(&Range<usize>, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let mut out = Vec::new();
    candle_explain_core::batch::perturbation_sweep(
        model,
        &p.x,
        baseline,
        &p.seed,
        per_example,
        batching,
        label,
        |r, ex| mask_of(r, ex),
        |_, _, sc| -> Result<()> {
            out.push(sc);
            Ok(())
        },
    )?;
    Ok(Tensor::cat(&out, 0)?)
}

/// Deterministic pseudo-random keys in [0, 1) for `(row, feature)`, computed on the device
/// from the row and feature indices (a hash, no host loop), so results do not depend on
/// chunking or device.
pub fn hash_keys(
    rows: &Range<usize>,
    features: usize,
    seed: u64,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let r = Tensor::arange(rows.start as u32, rows.end as u32, device)?
        .to_dtype(DType::F64)?
        .reshape((rows.len(), 1))?;
    let f = Tensor::arange(0u32, features as u32, device)?
        .to_dtype(DType::F64)?
        .reshape((1, features))?;
    let s = (seed % 1_000_003) as f64;
    // Two rounds of the classic fract(sin(·)·43758.5453) hash over (row, feature, seed).
    let frac = |t: Tensor| -> Result<Tensor> { Ok((&t - t.floor()?)?) };
    let a = (r
        .affine(0.1031, s * 0.0973)?
        .broadcast_add(&(f * 0.1030)?)?
        .sin()?
        * 43758.5453)?;
    let h = frac(a)?;
    let b = (((h * 12.9898)?
        + r.broadcast_as((rows.len(), features))?
            .affine(78.233e-3, s * 1e-3)?)?
    .sin()?
        * 43758.5453)?;
    frac(b)
}

/// 0/1 masks selecting, per row, the `n[row]` features with the smallest key.
pub fn smallest_k_masks(keys: &Tensor, n: &[usize]) -> Result<Tensor> {
    let (rows, f) = keys.dims2()?;
    let (sorted, _) = keys.contiguous()?.sort_last_dim(true)?;
    let idx = Tensor::new(
        n.iter()
            .map(|&k| (k.clamp(1, f) - 1) as u32)
            .collect::<Vec<_>>(),
        keys.device(),
    )?
    .reshape((rows, 1))?;
    let thr = sorted.gather(&idx, 1)?;
    let m = keys.broadcast_le(&thr)?.to_dtype(DType::F32)?;
    // n = 0 selects nothing.
    let nz = Tensor::new(
        n.iter().map(|&k| (k > 0) as u8 as f32).collect::<Vec<_>>(),
        keys.device(),
    )?
    .reshape((rows, 1))?;
    Ok(m.broadcast_mul(&nz)?)
}

/// Standard normal noise `(rows, features)` from two independent hash streams (Box–Muller).
pub fn normal_noise(
    rows: &std::ops::Range<usize>,
    f: usize,
    seed: u64,
    dev: &candle_core::Device,
) -> Result<Tensor> {
    let u1 = hash_keys(rows, f, seed.wrapping_mul(2).wrapping_add(1), dev)?.clamp(1e-12, 1.0)?;
    let u2 = hash_keys(rows, f, seed.wrapping_mul(2).wrapping_add(2), dev)?;
    Ok(((u1.log()? * -2.0)?.sqrt()? * (u2 * std::f64::consts::TAU)?.cos()?)?)
}
