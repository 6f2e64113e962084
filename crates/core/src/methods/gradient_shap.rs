//! GradientSHAP (Lundberg & Lee 2017; Captum's form) and Expected Gradients (Erion et al.
//! 2021): `E_{x̄∼D, α∼U(0,1), ε∼N(0,σ²)} [(x + ε − x̄) ⊙ ∇S(x̄ + α(x + ε − x̄))]`, estimated
//! with `samples` draws per example, all of them rows of one chunked batch.

use super::common::{
    chunked_logits, chunked_scores, completeness_delta, example_keys, normals, sample_rng, setup,
};
use crate::batch::{col, example_index, gradient};
use crate::rules::ActRule;
use crate::{Attribution, Attributor, Batching, Error, Explainable, Result, RuleCtx, Target};
use candle_core::Tensor;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct GradientShap {
    /// The baseline distribution: `(n_baselines, features…)`.
    pub baselines: Tensor,
    pub samples: usize,
    /// Standard deviation of the Gaussian noise added to the input (0: Expected Gradients).
    pub stdev: f64,
    pub seed: u64,
    pub batching: Batching,
}

impl GradientShap {
    pub fn new(baselines: Tensor, samples: usize, stdev: f64, seed: u64) -> Self {
        Self {
            baselines,
            samples,
            stdev,
            seed,
            batching: Batching::default(),
        }
    }

    /// Expected Gradients: no input noise.
    pub fn expected_gradients(baselines: Tensor, samples: usize, seed: u64) -> Self {
        Self::new(baselines, samples, 0.0, seed)
    }
}

impl Attributor for GradientShap {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        crate::validate::positive("samples", self.samples)?;
        if !(self.stdev >= 0.0) || !self.stdev.is_finite() {
            return Err(crate::error::invalid(
                "stdev",
                format!("must be finite and ≥ 0, got {}", self.stdev),
            ));
        }
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let bl = self
            .baselines
            .to_device(x.device())?
            .to_dtype(x.dtype())?
            .contiguous()?;
        if bl.rank() != x.rank() || bl.dims()[1..] != x.dims()[1..] || bl.dim(0)? == 0 {
            return Err(Error::BaselineShape {
                expected: x.dims().to_vec(),
                got: bl.dims().to_vec(),
            });
        }
        crate::validate::check_finite(&bl, "baselines")?;
        let (n, j, nb) = (x.dim(0)?, self.samples, bl.dim(0)?);
        let total = crate::validate::rows(n, j, "GradientSHAP: examples × samples")?;
        let feat = x.elem_count() / n;
        let dev = x.device();
        let keys = example_keys(x, self.seed)?;
        // Draw (baseline, α, noise) from the example's key and the sample's index: the same
        // for an example wherever it sits in the batch, and independent of chunking.
        let draw = |row: usize, noise: &mut Vec<f32>| -> (u32, f32) {
            let mut rng = sample_rng(keys[row / j], row % j);
            let b = rng.random_range(0..nb) as u32;
            let a: f32 = rng.random();
            if self.stdev > 0.0 {
                normals(&mut rng, feat, noise);
            }
            (b, a)
        };
        // S(x̄_b) for every class, once per baseline (not once per sample): the baseline term
        // of the completeness delta is the mean over each example's draws.
        // A model with inputs per example scores the baselines with each example's inputs, in
        // the loop; otherwise once per baseline here.
        let per_row_inputs = model.for_rows(&Tensor::new(&[0u32], dev)?)?.is_some();
        let bl_logits: Vec<Vec<f64>> = match per_row_inputs {
            true => vec![],
            false => chunked_logits(model, &bl, &self.batching)?
                .to_dtype(candle_core::DType::F64)?
                .to_vec2()?,
        };
        let seeds: Vec<Vec<f64>> = s.seed.to_dtype(candle_core::DType::F64)?.to_vec2()?;
        let mut bout = vec![0f64; n];
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let mut acc = x.zeros_like()?;
        self.batching.run(total, per, "gradient shap", |r| {
            let ex = example_index(&r, j, dev)?;
            let (mut bi, mut al, mut noise) = (vec![], vec![], vec![]);
            for row in r.clone() {
                let (b, a) = draw(row, &mut noise);
                let e = row / j;
                if !per_row_inputs {
                    let s_b: f64 = bl_logits[b as usize]
                        .iter()
                        .zip(&seeds[e])
                        .map(|(l, w)| l * w)
                        .sum();
                    bout[e] += s_b / j as f64;
                }
                bi.push(b);
                al.push(a);
            }
            let len = r.len();
            let mut xi = x.index_select(&ex, 0)?;
            if self.stdev > 0.0 {
                let eps =
                    (Tensor::from_vec(noise, xi.dims(), dev)?.to_dtype(x.dtype())? * self.stdev)?;
                xi = (xi + eps)?;
            }
            let xb = bl.index_select(&Tensor::new(bi, dev)?, 0)?;
            let a = col(
                &Tensor::from_vec(al, len, dev)?.to_dtype(x.dtype())?,
                x.rank(),
            )?;
            let d = (&xi - &xb)?;
            let pts = (&xb + d.broadcast_mul(&a)?)?;
            let ctx = RuleCtx::rule(ActRule::Gradient)?;
            let rows = crate::batch::view(model, &ex)?;
            let (_, g) = gradient(&*rows, &pts, &s.seed.index_select(&ex, 0)?, &ctx)?;
            if per_row_inputs {
                // The baselines' outputs with each example's own inputs (a mask, …).
                let sb: Vec<f64> =
                    crate::batch::scores(&*rows, &xb, &s.seed.index_select(&ex, 0)?)?
                        .to_dtype(candle_core::DType::F64)?
                        .to_vec1()?;
                for (row, v) in r.clone().zip(sb) {
                    bout[row / j] += v / j as f64;
                }
            }
            acc = acc.index_add(&ex, &((d * g)? / j as f64)?, 0)?;
            Ok(())
        })?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let bout = Tensor::new(bout, dev)?.to_dtype(x.dtype())?;
        let delta = completeness_delta(&acc, &out, Some(&bout))?;
        Attribution::finish(&s.p, "GradientSHAP", acc, out, Some(bout), Some(delta))
    }
}
