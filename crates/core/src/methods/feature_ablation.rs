//! Feature ablation: replace one group of features at a time (a superpixel, a token, a
//! column) by the baseline; every feature of the group gets the output drop.

use super::common::{ablation_sums, chunked_scores, setup};
use super::groups::Groups;
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
        Self {
            feature_mask,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }
}

impl Attributor for FeatureAblation {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let groups = Groups::new(&self.feature_mask, x)?;
        let xbar = self.baseline.resolve(x)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let g = groups.count;
        let acc = ablation_sums(
            model,
            &s,
            &xbar,
            &out,
            g,
            &self.batching,
            "feature ablation",
            |r, ex| {
                let gi: Vec<u32> = r.clone().map(|i| (i % g) as u32).collect();
                groups.member_mask(ex, &gi)
            },
        )?;
        Attribution::finish(&s.p, "Feature ablation", acc, out, None, None)
    }
}
