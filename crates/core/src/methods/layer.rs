//! Layer attribution (Captum's `LayerGradientXActivation`, `LayerIntegratedGradients`,
//! `LayerConductance`, `InternalInfluence`) at any layer a model names with `RuleCtx::tap`
//! (the digits CNN's `conv_layers.7`, a `Named` layer of a `Sequential`, BERT's
//! `embeddings`): the target output is attributed to the layer's activation `a`, and results
//! have the layer's shape. Neuron methods are in `neuron.rs`, LRP and DeepLIFT relevance at a
//! layer in `layer_relevance.rs`.
//!
//! Every (example, step) pair is a row of one chunked batch, as for Integrated Gradients.

use super::common::{chunked_scores, completeness_delta, path_rows, setup};
use crate::batch::{col, view, view_range};
use crate::rules::ActRule;
use crate::{
    Attribution, Attributor, Baseline, Batching, Error, Explainable, Quadrature, Result, RuleCtx,
    Target,
};
use candle_core::{Tensor, Var};

/// The layer's activation for `x`'s rows, chunked.
pub(super) fn activations(
    model: &dyn Explainable,
    x: &Tensor,
    layer: &str,
    b: &Batching,
) -> Result<Tensor> {
    let per = b.rows_per_chunk(model, x, false)?;
    let mut out = vec![];
    b.run(x.dim(0)?, per, "layer activation", |r| {
        let ctx = RuleCtx::inference().capturing(&[layer]);
        view_range(model, &r, x.device())?.forward_with(&x.narrow(0, r.start, r.len())?, &ctx)?;
        out.push(ctx.captured(layer)?.0);
        Ok(())
    })?;
    Ok(Tensor::cat(&out, 0)?)
}

/// The per-example sum of a layer-shaped quantity: `acc`, or zeros for `n` examples shaped
/// as `act`'s rows.
fn layer_sum(acc: Option<Tensor>, act: &Tensor, n: usize) -> Result<Tensor> {
    match acc {
        Some(a) => Ok(a),
        None => {
            let mut d = act.dims().to_vec();
            d[0] = n;
            Ok(Tensor::zeros(d, act.dtype(), act.device())?)
        }
    }
}

/// Scores `Σ seed · S` of `x`'s rows with the layer's activation replaced by `a`, and their
/// gradient w.r.t. `a`.
fn gradient_at_layer(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    layer: &str,
    a: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let var = Var::from_tensor(&a.detach())?;
    let ctx = RuleCtx::rule(ActRule::Gradient)?.replacing(layer, var.as_tensor().clone());
    let out = model.forward_with(&x.detach(), &ctx)?;
    ctx.require_tap(layer)?;
    let scores = (&out * seed)?.sum(1)?;
    let grads = scores.sum_all()?.backward()?;
    let g = match grads.get(var.as_tensor()) {
        Some(g) => g.clone(),
        None => a.zeros_like()?,
    };
    Ok((scores.detach(), g))
}

/// Scores of `x`'s rows and the gradient that reaches the layer (no replacement).
pub(super) fn layer_grad(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    layer: &str,
) -> Result<(Tensor, Tensor, Tensor)> {
    let ctx = RuleCtx::rule(ActRule::Gradient)?.capturing(&[layer]);
    let var = Var::from_tensor(&x.detach())?;
    let out = model.forward_with(var.as_tensor(), &ctx)?;
    let (a, _) = ctx.captured(layer)?;
    let scores = (&out * seed)?.sum(1)?;
    scores.sum_all()?.backward()?;
    let g = ctx.captured(layer)?.1.unwrap_or(a.zeros_like()?);
    Ok((scores.detach(), a, g))
}

/// `a ⊙ ∂S/∂a` at the layer.
#[derive(Debug, Clone)]
pub struct LayerGradientXActivation {
    pub layer: String,
    pub batching: Batching,
}

impl LayerGradientXActivation {
    pub fn new(layer: &str) -> Self {
        Self {
            layer: layer.into(),
            batching: Batching::default(),
        }
    }
}

impl Attributor for LayerGradientXActivation {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        let model = &*s.model;
        let x = &s.p.x;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let (mut outs, mut attrs) = (vec![], vec![]);
        self.batching
            .run(x.dim(0)?, per, "layer gradient × activation", |r| {
                let (o, a, g) = layer_grad(
                    &*view_range(model, &r, x.device())?,
                    &x.narrow(0, r.start, r.len())?,
                    &s.seed.narrow(0, r.start, r.len())?,
                    &self.layer,
                )?;
                outs.push(o);
                attrs.push((a * g)?);
                Ok(())
            })?;
        let (out, attr) = (Tensor::cat(&outs, 0)?, Tensor::cat(&attrs, 0)?);
        Attribution::finish(&s.p, "Layer gradient × activation", attr, out, None, None)
    }
}

/// Integrated Gradients at the layer: its activation moves from its value on the baseline
/// to its value on the input, `(a_x − a_x̄) ⊙ ∫ ∂S/∂a (a_x̄ + α(a_x − a_x̄)) dα`; complete at
/// the layer, `Σ = S(x) − S(x̄)`.
#[derive(Debug, Clone)]
pub struct LayerIntegratedGradients {
    pub layer: String,
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl LayerIntegratedGradients {
    pub fn new(layer: &str, steps: usize) -> Self {
        Self {
            layer: layer.into(),
            steps,
            quadrature: Quadrature::GaussLegendre,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }

    pub fn with_baseline(mut self, b: Baseline) -> Self {
        self.baseline = b;
        self
    }
}

impl Attributor for LayerIntegratedGradients {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        let model = &*s.model;
        let x = &s.p.x;
        let xbar = self.baseline.resolve(x)?;
        let (ax, ab) = (
            activations(model, x, &self.layer, &self.batching)?,
            activations(model, &xbar, &self.layer, &self.batching)?,
        );
        let diff = (&ax - &ab)?;
        let nodes = self.quadrature.nodes(self.steps)?;
        let (n, j) = (x.dim(0)?, self.steps);
        let total = crate::validate::rows(n, j, "LayerIntegratedGradients: examples × steps")?;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let mut acc = ax.zeros_like()?;
        self.batching
            .run(total, per, "layer integrated gradients", |r| {
                // The path runs at the layer, from its activation on x̄ to that on x.
                let p = path_rows(&r, j, &nodes, &ab, &diff)?;
                let (_, g) = gradient_at_layer(
                    &*view(model, &p.ex)?,
                    &x.index_select(&p.ex, 0)?,
                    &s.seed.index_select(&p.ex, 0)?,
                    &self.layer,
                    &p.points,
                )?;
                acc = acc.index_add(&p.ex, &g.broadcast_mul(&col(&p.weights, g.rank())?)?, 0)?;
                Ok(())
            })?;
        let attr = (diff * acc)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let base_out = chunked_scores(model, &xbar, &s.seed, &self.batching)?;
        let delta = completeness_delta(&attr, &out, Some(&base_out))?;
        Attribution::finish(
            &s.p,
            "Layer Integrated Gradients",
            attr,
            out,
            Some(base_out),
            Some(delta),
        )
    }
}

/// Internal influence (Leino et al. 2018): the layer's gradient integrated along the input's
/// straight path, `∫ ∂S/∂a (x̄ + α(x − x̄)) dα`.
#[derive(Debug, Clone)]
pub struct InternalInfluence {
    pub layer: String,
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl InternalInfluence {
    pub fn new(layer: &str, steps: usize) -> Self {
        Self {
            layer: layer.into(),
            steps,
            quadrature: Quadrature::GaussLegendre,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }
}

impl Attributor for InternalInfluence {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        let model = &*s.model;
        let x = &s.p.x;
        let xbar = self.baseline.resolve(x)?;
        let diff = (x - &xbar)?;
        let nodes = self.quadrature.nodes(self.steps)?;
        let (n, j) = (x.dim(0)?, self.steps);
        let total = crate::validate::rows(n, j, "InternalInfluence: examples × steps")?;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let mut acc: Option<Tensor> = None;
        self.batching.run(total, per, "internal influence", |r| {
            let p = path_rows(&r, j, &nodes, &xbar, &diff)?;
            let (_, act, g) = layer_grad(
                &*view(model, &p.ex)?,
                &p.points,
                &s.seed.index_select(&p.ex, 0)?,
                &self.layer,
            )?;
            let w = col(&p.weights, g.rank())?;
            acc =
                Some(layer_sum(acc.take(), &act, n)?.index_add(&p.ex, &g.broadcast_mul(&w)?, 0)?);
            Ok(())
        })?;
        let attr = acc.ok_or_else(|| Error::Unsupported("no step was run".into()))?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        Attribution::finish(&s.p, "Internal influence", attr, out, None, None)
    }
}

/// Conductance (Dhamdhere et al. 2018; Captum's `LayerConductance`): the chain rule along the
/// input's straight path, `Σ_k ∂S/∂a(x_k) ⊙ (a(x_{k+1}) − a(x_k))` over the `steps + 1`
/// points `x_k = x̄ + α_k(x − x̄)` of the quadrature's nodes (its weights are not used: the
/// activation's differences are the step sizes). With `RiemannTrapezoid` the points run from
/// x̄ to x and the sum over the layer tends to `S(x) − S(x̄)` (the delta); Captum's default
/// is `GaussLegendre`, whose points stop short of both ends.
#[derive(Debug, Clone)]
pub struct LayerConductance {
    pub layer: String,
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl LayerConductance {
    pub fn new(layer: &str, steps: usize) -> Self {
        Self {
            layer: layer.into(),
            steps,
            quadrature: Quadrature::GaussLegendre,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }

    pub fn with_quadrature(mut self, q: Quadrature) -> Self {
        self.quadrature = q;
        self
    }

    pub fn with_baseline(mut self, b: Baseline) -> Self {
        self.baseline = b;
        self
    }
}

impl Attributor for LayerConductance {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        let model = &*s.model;
        let x = &s.p.x;
        let xbar = self.baseline.resolve(x)?;
        let diff = (x - &xbar)?;
        let points = self
            .steps
            .checked_add(1)
            .ok_or_else(|| crate::error::invalid("steps", "too many"))?;
        let nodes = self.quadrature.nodes(points)?;
        let (n, dev) = (x.dim(0)?, x.device());
        let total = crate::validate::rows(n, points, "LayerConductance: examples × (steps + 1)")?;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let mut acc: Option<Tensor> = None;
        // Rows run in order, example-major: a step's successor is the next row, or the first
        // row of the next chunk (carried over as the previous chunk's last row).
        let mut carry: Option<(usize, Tensor, Tensor)> = None;
        self.batching.run(total, per, "layer conductance", |r| {
            let p = path_rows(&r, points, &nodes, &xbar, &diff)?;
            let (_, act, g) = layer_grad(
                &*view(model, &p.ex)?,
                &p.points,
                &s.seed.index_select(&p.ex, 0)?,
                &self.layer,
            )?;
            let (mut rows, mut gs, mut acts): (Vec<usize>, Vec<Tensor>, Vec<Tensor>) =
                (vec![], vec![], vec![]);
            if let Some((row, g0, a0)) = carry.take() {
                rows.push(row);
                gs.push(g0);
                acts.push(a0);
            }
            rows.extend(r.clone());
            gs.push(g.clone());
            acts.push(act.clone());
            let (g, act) = (Tensor::cat(&gs, 0)?, Tensor::cat(&acts, 0)?);
            // Pairs (i, i + 1) within one example: every row but an example's last point.
            let pairs: Vec<u32> = (0..rows.len().saturating_sub(1))
                .filter(|&i| rows[i] % points != points - 1)
                .map(|i| i as u32)
                .collect();
            if !pairs.is_empty() {
                let idx = Tensor::new(pairs.as_slice(), dev)?;
                let next: Vec<u32> = pairs.iter().map(|i| i + 1).collect();
                let next = Tensor::new(next.as_slice(), dev)?;
                let step = (act.index_select(&next, 0)? - act.index_select(&idx, 0)?)?;
                let contrib = (g.index_select(&idx, 0)? * step)?;
                let owners: Vec<u32> = pairs
                    .iter()
                    .map(|&i| (rows[i as usize] / points) as u32)
                    .collect();
                acc = Some(layer_sum(acc.take(), &act, n)?.index_add(
                    &Tensor::new(owners.as_slice(), dev)?,
                    &contrib,
                    0,
                )?);
            }
            let last = rows.len() - 1;
            carry = Some((rows[last], g.narrow(0, last, 1)?, act.narrow(0, last, 1)?));
            Ok(())
        })?;
        let attr = acc.ok_or_else(|| Error::Unsupported("no step was run".into()))?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let base_out = chunked_scores(model, &xbar, &s.seed, &self.batching)?;
        let delta = completeness_delta(&attr, &out, Some(&base_out))?;
        Attribution::finish(
            &s.p,
            "Layer conductance",
            attr,
            out,
            Some(base_out),
            Some(delta),
        )
    }
}
