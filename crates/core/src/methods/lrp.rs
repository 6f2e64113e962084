//! Layer-wise relevance propagation with a composite (Bach et al. 2015; Montavon et al.
//! 2019; Zennit's composites): the output relevance `R = S_c(x)` (the target logit) flows
//! back through every layer by its rule; the result is the relevance of each input feature.
//! The delta is the conservation error `Σ R_in − S_c(x)`.

use super::common::{completeness_delta, setup};
use crate::batch::relevance;
use crate::{Attribution, Attributor, Batching, Composite, Explainable, Result, RuleCtx, Target};
use candle_core::Tensor;

#[derive(Debug, Clone)]
pub struct Lrp {
    pub composite: Composite,
    pub batching: Batching,
}

impl Lrp {
    pub fn new(composite: Composite) -> Self {
        Self {
            composite,
            batching: Batching::default(),
        }
    }
}

impl Attributor for Lrp {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        self.composite.validate()?;
        let s = setup(model, input, target)?;
        let x = &s.p.x;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let (mut outs, mut rels) = (vec![], vec![]);
        self.batching.run(x.dim(0)?, per, "lrp", |r| {
            let ctx = RuleCtx::composite(self.composite.clone())?;
            let (o, rel) = relevance(
                model,
                &x.narrow(0, r.start, r.len())?,
                &s.seed.narrow(0, r.start, r.len())?,
                &ctx,
            )?;
            outs.push(o);
            rels.push(rel);
            Ok(())
        })?;
        let (out, rel) = (Tensor::cat(&outs, 0)?, Tensor::cat(&rels, 0)?);
        let delta = completeness_delta(&rel, &out, None)?;
        Attribution::finish(&s.p, "LRP", rel, out, None, Some(delta))
    }
}
