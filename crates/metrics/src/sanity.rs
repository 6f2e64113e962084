//! Model-randomization sanity checks (Adebayo et al. 2018; PAPERS.md §5): re-initialise the
//! weights layer by layer from the top (cascading) or one layer at a time (independent) and
//! compare the explanations with the original ones. A method that depends on the model must
//! change; a method that only looks at the input (an edge detector) does not.
//!
//! Similarities per example ([`crate::similarity`]): Spearman rank correlation of
//! |attribution| (as the paper), SSIM and HOG similarity of the channel-summed |attribution|
//! maps scaled to [0, 1].

use crate::perturb::normal_noise;
use crate::similarity::similarities;
use crate::{invalid, ModelBuilder, Result};
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
    /// NaN for inputs that are not images.
    pub ssim: Vec<f64>,
    /// NaN for inputs that are not images or are smaller than one HOG block.
    pub hog: Vec<f64>,
}

/// Same variance, fresh values: U(±√3·std) of the original tensor (zero-variance tensors such
/// as zero biases get U(±0.01)).
fn reinit(t: &Tensor, rng: &mut rand::rngs::StdRng, dev: &Device) -> Result<Tensor> {
    let v: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
    let b = if std > 0.0 { 3f64.sqrt() * std } else { 0.01 };
    let fresh: Vec<f32> = (0..v.len())
        .map(|_| rng.random_range(-b..b) as f32)
        .collect();
    Ok(Tensor::from_vec(fresh, t.dims(), dev)?.to_dtype(t.dtype())?)
}

/// GGIG's model-perturbation check (Rahman, Lewis & Plis 2022; PAPERS.md §5): add Gaussian
/// noise of `relative_noise` × each parameter tensor's standard deviation to every parameter,
/// `repeats` times; the model's accuracy should barely move and a trustworthy explanation
/// should stay similar to the original one (the complement of model randomization).
#[derive(Debug, Clone)]
pub struct ModelPerturbation {
    pub relative_noise: f64,
    pub repeats: usize,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct PerturbationStep {
    /// Accuracy of the perturbed model on the evaluation data, if given.
    pub accuracy: Option<f64>,
    pub spearman: Vec<f64>,
    pub ssim: Vec<f64>,
    pub hog: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct PerturbationCheck {
    /// Accuracy of the original model on the evaluation data, if given.
    pub accuracy: Option<f64>,
    pub steps: Vec<PerturbationStep>,
}

fn std_of(t: &Tensor) -> Result<f64> {
    let v = t.to_dtype(DType::F64)?.flatten_all()?;
    let n = v.dim(0)?.max(1) as f64;
    let mean = v.sum_all()?.to_scalar::<f64>()? / n;
    Ok(((v - mean)?.sqr()?.sum_all()?.to_scalar::<f64>()? / n).sqrt())
}

fn accuracy(model: &dyn Explainable, images: &Tensor, labels: &[u32]) -> Result<f64> {
    let pred: Vec<u32> = candle_explain_core::batch::logits(model, images)?
        .argmax(1)?
        .to_vec1()?;
    Ok(pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len().max(1) as f64)
}

impl ModelPerturbation {
    /// `eval` = `(images, labels)` measures the accuracy before and after each perturbation.
    pub fn evaluate(
        &self,
        build: &ModelBuilder,
        weights: &HashMap<String, Tensor>,
        method: &dyn Attributor,
        x: &Tensor,
        target: &Target,
        eval: Option<(&Tensor, &[u32])>,
    ) -> Result<PerturbationCheck> {
        if !(self.relative_noise >= 0.0 && self.relative_noise.is_finite()) {
            return Err(invalid(
                "relative_noise",
                format!("must be finite and ≥ 0, got {}", self.relative_noise),
            ));
        }
        candle_explain_core::validate::positive("repeats", self.repeats)?;
        if let Some((images, labels)) = eval {
            if images.dim(0)? != labels.len() {
                return Err(invalid(
                    "eval",
                    format!("{} images but {} labels", images.dim(0)?, labels.len()),
                ));
            }
        }
        let dev = x.device();
        let run = |w: &HashMap<String, Tensor>| -> Result<(Tensor, Option<f64>)> {
            let model = build(VarBuilder::from_tensors(w.clone(), DType::F32, dev))?;
            let acc = eval
                .map(|(i, l)| accuracy(model.as_ref(), i, l))
                .transpose()?;
            Ok((
                method.attribute(model.as_ref(), x, target)?.attributions,
                acc,
            ))
        };
        let (original, accuracy) = run(weights)?;
        let mut names: Vec<&String> = weights.keys().collect();
        names.sort();
        let mut steps = Vec::with_capacity(self.repeats);
        for r in 0..self.repeats {
            let mut noisy = HashMap::with_capacity(weights.len());
            for (i, k) in names.iter().enumerate() {
                let w = &weights[*k];
                let std = std_of(w)? * self.relative_noise;
                // Seeded per (repeat, tensor): independent of the map's iteration order.
                let seed = self
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((r * names.len() + i) as u64);
                let noise = normal_noise(&(0..1), w.elem_count(), seed, dev)?
                    .reshape(w.dims())?
                    .to_dtype(w.dtype())?;
                noisy.insert((*k).clone(), (w + (noise * std)?)?);
            }
            let (a, acc) = run(&noisy)?;
            let (spearman, ssim, hog) = similarities(&original, &a)?;
            steps.push(PerturbationStep {
                accuracy: acc,
                spearman,
                ssim,
                hog,
            });
        }
        Ok(PerturbationCheck { accuracy, steps })
    }
}

impl ModelRandomization {
    pub fn evaluate(
        &self,
        build: &ModelBuilder,
        weights: &HashMap<String, Tensor>,
        method: &dyn Attributor,
        x: &Tensor,
        target: &Target,
    ) -> Result<Vec<SanityStep>> {
        if self.layers.is_empty() {
            return Err(invalid(
                "layers",
                "name at least one layer (a parameter-name prefix)",
            ));
        }
        for l in &self.layers {
            if !weights.keys().any(|k| k.starts_with(l.as_str())) {
                let mut names: Vec<&String> = weights.keys().collect();
                names.sort();
                return Err(invalid(
                    "layers",
                    format!("no parameter starts with {l:?}; the model has {names:?}"),
                ));
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
            let mut names: Vec<String> = current
                .keys()
                .filter(|k| k.starts_with(l.as_str()))
                .cloned()
                .collect();
            names.sort();
            for k in names {
                let fresh = reinit(&current[&k], &mut rng, dev)?;
                current.insert(k, fresh);
            }
            let a = explain(&current)?;
            let (spearman, ssim, hog) = similarities(&original, &a)?;
            steps.push(SanityStep {
                layer: l.clone(),
                spearman,
                ssim,
                hog,
            });
        }
        Ok(steps)
    }
}
