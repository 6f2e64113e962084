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
        self.run(model, input, target, None)
    }
}

impl Lrp {
    /// The relevance at the input, or (`layer`) at the activation the model taps under that
    /// name: the rules' backward carries relevance itself, so what flows through a tap is the
    /// layer's relevance.
    pub(super) fn run(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
        layer: Option<&str>,
    ) -> Result<Attribution> {
        self.composite.validate()?;
        // The composite's canonizers: the model's folded form, when it has one.
        let folded = match self.composite.canonizers.is_empty() {
            true => None,
            false => model.canonized()?,
        };
        let model: &dyn Explainable = folded.as_deref().unwrap_or(model);
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        // `Selector::last` needs the number of linear / conv layers: one forward of one row.
        let layers = match self.composite.needs_layer_count() {
            true => {
                let count = RuleCtx::inference();
                crate::batch::view_range(model, &(0..1), x.device())?
                    .forward_with(&x.narrow(0, 0, 1)?, &count)?;
                Some(count.layers_seen())
            }
            false => None,
        };
        let (mut outs, mut rels) = (vec![], vec![]);
        self.batching.run(x.dim(0)?, per, "lrp", |r| {
            let mut ctx = RuleCtx::composite(self.composite.clone())?;
            if let Some(n) = layers {
                ctx = ctx.with_layer_count(n);
            }
            if let Some(l) = layer {
                ctx = ctx.capturing(&[l]);
            }
            let (o, rel) = relevance(
                &*crate::batch::view_range(model, &r, x.device())?,
                &x.narrow(0, r.start, r.len())?,
                &s.seed.narrow(0, r.start, r.len())?,
                &ctx,
            )?;
            let rel = match layer {
                None => rel,
                Some(l) => {
                    let (a, g) = ctx.captured(l)?;
                    g.map_or_else(|| a.zeros_like(), Ok)?
                }
            };
            outs.push(o);
            rels.push(rel);
            Ok(())
        })?;
        let (out, rel) = (Tensor::cat(&outs, 0)?, Tensor::cat(&rels, 0)?);
        let delta = completeness_delta(&rel, &out, None)?;
        let name = if layer.is_some() { "Layer LRP" } else { "LRP" };
        Attribution::finish(&s.p, name, rel, out, None, Some(delta))
    }
}
