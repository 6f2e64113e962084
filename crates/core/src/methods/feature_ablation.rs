//! Feature ablation: replace one group of features at a time (a superpixel, a token, a
//! column) by the baseline; every feature of the group gets the output drop.

use super::common::{chunked_scores, setup};
use super::groups::Groups;
use crate::batch::{col, example_index};
use crate::{Attribution, Attributor, Baseline, Batching, Explainable, Result, Target};
use candle_core::Tensor;

#[derive(Debug, Clone)]
pub struct FeatureAblation {
    /// Group id per feature (see `Groups`: per-example shape, or broadcastable to the input).
    pub feature_mask: Tensor,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl FeatureAblation {
    pub fn new(feature_mask: Tensor) -> Self {
        Self { feature_mask, baseline: Baseline::Zero, batching: Batching::default() }
    }
}

impl Attributor for FeatureAblation {
    fn attribute(&self, model: &dyn Explainable, input: &Tensor, target: &Target) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        let x = &s.p.x;
        let groups = Groups::new(&self.feature_mask, x)?;
        let xbar = self.baseline.resolve(x)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let (n, g) = (x.dim(0)?, groups.count);
        let dev = x.device();
        let per = self.batching.rows_per_chunk(model, x, false)?;
        let mut acc = x.zeros_like()?;
        self.batching.run(n * g, per, "feature ablation", |r| {
            let ex = example_index(&r, g, dev)?;
            let gi: Vec<u32> = r.clone().map(|i| (i % g) as u32).collect();
            let xi = x.index_select(&ex, 0)?;
            let m = groups.member_mask(&ex, &gi)?.reshape(xi.dims())?;
            let pert = (&xi + ((xbar.index_select(&ex, 0)? - &xi)? * &m)?)?;
            let sc = crate::batch::scores(model, &pert, &s.seed.index_select(&ex, 0)?)?;
            let drop = (out.index_select(&ex, 0)? - sc)?;
            acc = acc.index_add(&ex, &m.broadcast_mul(&col(&drop, m.rank())?)?, 0)?;
            Ok(())
        })?;
        Attribution::finish(&s.p, acc, out, None, None)
    }
}
