//! NoiseTunnel: SmoothGrad (Smilkov et al. 2017), SmoothGrad² and VarGrad (Adebayo et al.
//! 2018; Hooker et al. 2019) around any method. The noisy copies of every example are rows
//! of one batch handed to the inner method, which chunks them.

use super::common::{normals, row_rng};
use crate::target::repeat_rows;
use crate::validate::check_input;
use crate::{Attribution, Attributor, Explainable, Result, Target};
use candle_core::Tensor;

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
    pub seed: u64,
}

impl<A: Attributor> NoiseTunnel<A> {
    pub fn new(inner: A, kind: NoiseKind, samples: usize, stdev_fraction: f64, seed: u64) -> Self {
        Self {
            inner,
            kind,
            samples,
            stdev_fraction,
            seed,
        }
    }

    /// SmoothGrad with Hooker et al.'s σ = 0.15 of the input range.
    pub fn smooth_grad(inner: A, samples: usize, seed: u64) -> Self {
        Self::new(inner, NoiseKind::SmoothGrad, samples, 0.15, seed)
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
        let (b, j) = (input.dim(0)?, self.samples);
        let flat = input.flatten_from(1)?;
        let range = (flat.max(1)? - flat.min(1)?)?;
        let sigma = (repeat_rows(&range, j)? * self.stdev_fraction)?;
        let feat = flat.dim(1)?;
        let mut noise = Vec::with_capacity(b * j * feat);
        for row in 0..b * j {
            let mut rng = row_rng(self.seed, row);
            normals(&mut rng, feat, &mut noise);
        }
        let noise =
            Tensor::from_vec(noise, (b * j, feat), input.device())?.to_dtype(input.dtype())?;
        let noisy = (repeat_rows(&flat, j)? + noise.broadcast_mul(&sigma.unsqueeze(1)?)?)?;
        let mut dims = input.dims().to_vec();
        dims[0] = b * j;
        let noisy = noisy.reshape(dims)?;
        let res = self
            .inner
            .attribute(model, &noisy, &target.repeat_examples(j)?)?;
        let a = &res.attributions;
        let mut g = vec![b, j];
        g.extend_from_slice(&a.dims()[1..]);
        let a = a.reshape(g)?;
        let attributions = match self.kind {
            NoiseKind::SmoothGrad => a.mean(1)?,
            NoiseKind::SmoothGradSquared => a.sqr()?.mean(1)?,
            NoiseKind::VarGrad => (a.sqr()?.mean(1)? - a.mean(1)?.sqr()?)?,
        };
        // The explained score is the clean input's.
        let clean = super::common::setup(model, input, target)?;
        let out = super::common::chunked_scores(
            model,
            &clean.p.x,
            &clean.seed,
            &crate::Batching::default(),
        )?;
        Attribution::finish(
            &clean.p,
            attributions.reshape(clean.p.x.dims())?,
            out,
            None,
            None,
        )
    }
}
