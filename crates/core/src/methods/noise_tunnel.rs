//! NoiseTunnel: SmoothGrad (Smilkov et al. 2017), SmoothGrad² and VarGrad (Adebayo et al.
//! 2018; Hooker et al. 2019) around any method. The (example, sample) pairs are rows cut
//! into chunks by the shared chunker: each chunk's noisy copies are made, explained by the
//! inner method and summed into per-example accumulators, so memory does not grow with the
//! number of samples.

use super::common::{example_keys, normals, sample_rng};
use crate::batch::example_index;
use crate::validate::check_input;
use crate::{Attribution, Attributor, Batching, Explainable, Result, Target};
use candle_core::{DType, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// Mean of the attributions of the noisy copies.
    SmoothGrad,
    /// Mean of their squares.
    SmoothGradSquared,
    /// Their variance, `mean(g²) − mean(g)²`.
    VarGrad,
}

#[derive(Debug, Clone)]
pub struct NoiseTunnel<A> {
    pub inner: A,
    pub kind: NoiseKind,
    pub samples: usize,
    /// σ of the Gaussian noise as a fraction of each example's range `max(x) − min(x)`
    /// (Smilkov et al. use 0.1–0.2; Hooker et al. 0.15).
    pub stdev_fraction: f64,
    /// Sample `s` of an example draws its noise from `seed`, `s` and the example's values, so
    /// an example's result does not depend on where it sits in the batch.
    pub seed: u64,
    /// How many noisy copies are explained at a time (the inner method chunks its own work
    /// with its own budget).
    pub batching: Batching,
}

impl<A: Attributor> NoiseTunnel<A> {
    pub fn new(inner: A, kind: NoiseKind, samples: usize, stdev_fraction: f64, seed: u64) -> Self {
        Self {
            inner,
            kind,
            samples,
            stdev_fraction,
            seed,
            batching: Batching::default(),
        }
    }

    /// SmoothGrad with Hooker et al.'s σ = 0.15 of the input range.
    pub fn smooth_grad(inner: A, samples: usize, seed: u64) -> Self {
        Self::new(inner, NoiseKind::SmoothGrad, samples, 0.15, seed)
    }

    pub fn with_batching(mut self, b: Batching) -> Self {
        self.batching = b;
        self
    }
}

impl<A: Attributor> Attributor for NoiseTunnel<A> {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        crate::validate::positive("samples", self.samples)?;
        if !(self.stdev_fraction >= 0.0) || !self.stdev_fraction.is_finite() {
            return Err(crate::error::invalid(
                "stdev_fraction",
                format!("must be finite and ≥ 0, got {}", self.stdev_fraction),
            ));
        }
        check_input(model, input)?;
        let input = input.contiguous()?;
        let (b, j, dev) = (input.dim(0)?, self.samples, input.device().clone());
        let total = crate::validate::rows(b, j, "NoiseTunnel: examples × samples")?;
        let flat = input.flatten_from(1)?;
        let feat = flat.dim(1)?;
        let sigma = ((flat.max(1)? - flat.min(1)?)? * self.stdev_fraction)?.unsqueeze(1)?;
        let keys = example_keys(&input, self.seed)?;
        // Half-precision sums of many samples would lose the small terms.
        let acc_dtype = match input.dtype() {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        };
        let squares = self.kind != NoiseKind::SmoothGrad;
        let (mut sum, mut sum_sq): (Option<Tensor>, Option<Tensor>) = (None, None);
        // The inner method runs a whole chunk at once on top of this chunk's noisy copies,
        // noise and attributions: chunks are sized to half the budget, so that the two
        // together stay near it (measured: 64 MiB → +134 MiB peak at the full budget).
        let half = Batching {
            budget_bytes: self.batching.budget_bytes / 2,
            ..self.batching.clone()
        };
        let per = half.rows_per_chunk(model, &input, true)?;
        self.batching.run(total, per, "noise tunnel", |r| {
            let ex = example_index(&r, j, &dev)?;
            let mut noise = Vec::with_capacity(r.len() * feat);
            for row in r.clone() {
                normals(&mut sample_rng(keys[row / j], row % j), feat, &mut noise);
            }
            let noise = Tensor::from_vec(noise, (r.len(), feat), &dev)?.to_dtype(input.dtype())?;
            let noisy = (flat.index_select(&ex, 0)?
                + noise.broadcast_mul(&sigma.index_select(&ex, 0)?)?)?;
            let mut dims = input.dims().to_vec();
            dims[0] = r.len();
            let ex_ids: Vec<u32> = ex.to_vec1()?;
            let rows = crate::batch::view(model, &ex)?;
            let a = self
                .inner
                .attribute(
                    &*rows,
                    &noisy.reshape(dims)?,
                    &target.select_examples(&ex_ids)?,
                )
                .map_err(|e| in_callers_terms(e, &ex_ids))?
                .attributions
                .to_dtype(acc_dtype)?;
            let zeros = || -> Result<Tensor> {
                let mut d = a.dims().to_vec();
                d[0] = b;
                Ok(Tensor::zeros(d, acc_dtype, &dev)?)
            };
            // index_add adds the rows in order: each example's samples are summed in sample
            // order whatever the chunk boundaries.
            sum = Some(sum.take().map_or_else(zeros, Ok)?.index_add(&ex, &a, 0)?);
            if squares {
                sum_sq = Some(sum_sq.take().map_or_else(zeros, Ok)?.index_add(
                    &ex,
                    &a.sqr()?,
                    0,
                )?);
            }
            Ok(())
        })?;
        let mean = |t: Option<Tensor>| -> Result<Tensor> {
            let t = t.ok_or_else(|| crate::error::invalid("samples", "no sample was explained"))?;
            Ok((t / j as f64)?)
        };
        let attributions = match self.kind {
            NoiseKind::SmoothGrad => mean(sum)?,
            NoiseKind::SmoothGradSquared => mean(sum_sq)?,
            NoiseKind::VarGrad => {
                let m = mean(sum)?;
                (mean(sum_sq)? - m.sqr()?)?
            }
        }
        .to_dtype(input.dtype())?;
        // The explained score is the clean input's.
        let clean = super::common::setup(model, &input, target)?;
        let out =
            super::common::chunked_scores(&*clean.model, &clean.p.x, &clean.seed, &self.batching)?;
        Attribution::finish(
            &clean.p,
            "NoiseTunnel",
            attributions.reshape(clean.p.x.dims())?,
            out,
            None,
            None,
        )
    }
}

/// The inner method's non-finite error names rows of the noisy batch: name the caller's
/// examples instead, and say the noise was involved.
fn in_callers_terms(e: crate::Error, ex: &[u32]) -> crate::Error {
    match e {
        crate::Error::NonFiniteResult {
            method,
            what,
            examples,
            layer,
            hint,
        } => {
            let mut mapped: Vec<usize> = examples
                .iter()
                .filter_map(|&r| ex.get(r).map(|&e| e as usize))
                .collect();
            mapped.dedup();
            crate::Error::NonFiniteResult {
                method,
                what,
                examples: mapped,
                layer,
                hint: format!("{hint} (on noisy copies made by NoiseTunnel: a smaller stdev_fraction may help)"),
            }
        }
        e => e,
    }
}
