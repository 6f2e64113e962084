//! Model-randomization sanity checks (Adebayo et al. 2018; PAPERS.md §5): re-initialise the
//! weights layer by layer from the top (cascading) or one layer at a time (independent) and
//! compare the explanations with the original ones. A method that depends on the model must
//! change; a method that only looks at the input (an edge detector) does not.
//!
//! Similarities per example: Spearman rank correlation of |attribution| (as the paper), and
//! SSIM of the channel-summed |attribution| maps scaled to [0, 1] (7×7 uniform windows,
//! K1 = 0.01, K2 = 0.03, data range 1, as scikit-image's defaults).

use crate::{invalid, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain_core::{Attributor, Explainable, Target};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Randomization {
    /// Layers 1..=k randomised (from the top) at step k.
    Cascading,
    /// Only layer k randomised at step k.
    Independent,
}

#[derive(Debug, Clone)]
pub struct ModelRandomization {
    /// Parameter-name prefixes of each layer, from the top (output) layer down.
    pub layers: Vec<String>,
    pub mode: Randomization,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct SanityStep {
    /// The layer randomised last (cascading) or alone (independent).
    pub layer: String,
    /// Per example.
    pub spearman: Vec<f64>,
    pub ssim: Vec<f64>,
}

/// Spearman correlation of |a| and |b| per example (ties broken by position).
pub fn spearman(a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    let rank = |t: &Tensor| -> Result<Vec<Vec<f32>>> {
        let f = t.abs()?.to_dtype(DType::F32)?.flatten_from(1)?.contiguous()?;
        Ok(f.arg_sort_last_dim(true)?.to_dtype(DType::F32)?.arg_sort_last_dim(true)?.to_dtype(DType::F32)?.to_vec2()?)
    };
    let (ra, rb) = (rank(a)?, rank(b)?);
    Ok(ra.iter().zip(&rb).map(|(x, y)| {
        let (x, y): (Vec<f64>, Vec<f64>) = (x.iter().map(|v| *v as f64).collect(), y.iter().map(|v| *v as f64).collect());
        crate::sensitivity_n::pearson(&x, &y)
    }).collect())
}

/// SSIM of the channel-summed |maps| of `(B, C, H, W)` attributions, each scaled to [0, 1].
pub fn ssim(a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    let prep = |t: &Tensor| -> Result<Tensor> {
        let m = t.abs()?.to_dtype(DType::F64)?.sum_keepdim(1)?;
        let mx = m.flatten_from(1)?.max_keepdim(1)?.clamp(1e-12, f64::MAX)?.unsqueeze(2)?.unsqueeze(3)?;
        Ok(m.broadcast_div(&mx)?)
    };
    if a.rank() != 4 || a.dims() != b.dims() {
        return Err(invalid("ssim", format!("needs two (batch, channels, h, w) maps of one shape, got {:?} and {:?}", a.dims(), b.dims())));
    }
    let (x, y) = (prep(a)?, prep(b)?);
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    let win = 7.min(h).min(w);
    let k = (Tensor::ones((1, 1, win, win), DType::F64, x.device())? / (win * win) as f64)?;
    let mean = |t: &Tensor| t.conv2d(&k, 0, 1, 1, 1);
    let (mx, my) = (mean(&x)?, mean(&y)?);
    // Sample covariances over each window, as scikit-image (n/(n−1)).
    let n = (win * win) as f64;
    let cov = n / (n - 1.0);
    let vx = ((mean(&x.sqr()?)? - mx.sqr()?)? * cov)?;
    let vy = ((mean(&y.sqr()?)? - my.sqr()?)? * cov)?;
    let vxy = ((mean(&(&x * &y)?)? - (&mx * &my)?)? * cov)?;
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let num = ((((&mx * &my)? * 2.0)? + c1)? * ((vxy * 2.0)? + c2)?)?;
    let den = (((mx.sqr()? + my.sqr()?)? + c1)? * ((vx + vy)? + c2)?)?;
    Ok((num / den)?.flatten_from(1)?.mean(1)?.to_vec1()?)
}

/// Same variance, fresh values: U(±√3·std) of the original tensor (zero-variance tensors such
/// as zero biases get U(±0.01)).
fn reinit(t: &Tensor, rng: &mut rand::rngs::StdRng, dev: &Device) -> Result<Tensor> {
    let v: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
    let b = if std > 0.0 { 3f64.sqrt() * std } else { 0.01 };
    let fresh: Vec<f32> = (0..v.len()).map(|_| rng.random_range(-b..b) as f32).collect();
    Ok(Tensor::from_vec(fresh, t.dims(), dev)?.to_dtype(t.dtype())?)
}

impl ModelRandomization {
    #[allow(clippy::type_complexity)]
    pub fn evaluate(
        &self,
        build: &dyn Fn(VarBuilder) -> candle_explain_core::Result<Box<dyn Explainable>>,
        weights: &HashMap<String, Tensor>,
        method: &dyn Attributor,
        x: &Tensor,
        target: &Target,
    ) -> Result<Vec<SanityStep>> {
        if self.layers.is_empty() {
            return Err(invalid("layers", "name at least one layer (a parameter-name prefix)"));
        }
        for l in &self.layers {
            if !weights.keys().any(|k| k.starts_with(l.as_str())) {
                let mut names: Vec<&String> = weights.keys().collect();
                names.sort();
                return Err(invalid("layers", format!("no parameter starts with {l:?}; the model has {names:?}")));
            }
        }
        let dev = x.device();
        let explain = |w: &HashMap<String, Tensor>| -> Result<Tensor> {
            let model = build(VarBuilder::from_tensors(w.clone(), DType::F32, dev))?;
            Ok(method.attribute(model.as_ref(), x, target)?.attributions)
        };
        let original = explain(weights)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let mut current = weights.clone();
        let mut steps = vec![];
        for l in &self.layers {
            if self.mode == Randomization::Independent {
                current = weights.clone();
            }
            let mut names: Vec<String> = current.keys().filter(|k| k.starts_with(l.as_str())).cloned().collect();
            names.sort();
            for k in names {
                let fresh = reinit(&current[&k], &mut rng, dev)?;
                current.insert(k, fresh);
            }
            let a = explain(&current)?;
            let ssim = if a.rank() == 4 { ssim(&original, &a)? } else { vec![f64::NAN; a.dim(0)?] };
            steps.push(SanityStep { layer: l.clone(), spearman: spearman(&original, &a)?, ssim });
        }
        Ok(steps)
    }
}
