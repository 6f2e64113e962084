//! Neuron attribution (Captum's `NeuronGradient`, `NeuronIntegratedGradients`,
//! `NeuronConductance`): one unit of a layer the model names with `RuleCtx::tap` (`neuron`,
//! its flat index within one example's activation) is attributed to the input.
//! `NeuronGradient` and `NeuronIntegratedGradients` explain the neuron's value and ignore
//! the target; `NeuronConductance` explains the target's flow through the neuron.
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

/// The neuron's flat index checked against the layer's units per example.
fn check_neuron(a: &Tensor, layer: &str, neuron: usize) -> Result<()> {
    let units = a.dim(1)?;
    if neuron >= units {
        return Err(Error::InvalidParameter {
            name: "neuron",
            reason: format!(
                "neuron {neuron} of layer {layer:?}, which has {units} units per example"
            ),
        });
    }
    Ok(())
}

/// `∂a_j/∂x` for neuron `j` of the layer (its flat index within one example's activation),
/// and the neuron's value per example.
fn neuron_gradient(
    model: &dyn Explainable,
    x: &Tensor,
    layer: &str,
    neuron: usize,
) -> Result<(Tensor, Tensor)> {
    let ctx = RuleCtx::rule(ActRule::Gradient)?.capturing(&[layer]);
    let var = Var::from_tensor(&x.detach())?;
    model.forward_with(var.as_tensor(), &ctx)?;
    let a = ctx.captured_live(layer)?.flatten_from(1)?;
    check_neuron(&a, layer, neuron)?;
    let value = a.narrow(1, neuron, 1)?.squeeze(1)?;
    let grads = value.sum_all()?.backward()?;
    let g = match grads.get(var.as_tensor()) {
        Some(g) => g.clone(),
        None => x.zeros_like()?,
    };
    Ok((value.detach(), g))
}

/// The gradient of one neuron of a layer w.r.t. the input (the target is ignored).
#[derive(Debug, Clone)]
pub struct NeuronGradient {
    pub layer: String,
    pub neuron: usize,
    pub batching: Batching,
}

impl NeuronGradient {
    pub fn new(layer: &str, neuron: usize) -> Self {
        Self {
            layer: layer.into(),
            neuron,
            batching: Batching::default(),
        }
    }
}

impl Attributor for NeuronGradient {
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
        let (mut outs, mut grads) = (vec![], vec![]);
        self.batching.run(x.dim(0)?, per, "neuron gradient", |r| {
            let (v, g) = neuron_gradient(
                &*view_range(model, &r, x.device())?,
                &x.narrow(0, r.start, r.len())?,
                &self.layer,
                self.neuron,
            )?;
            outs.push(v);
            grads.push(g);
            Ok(())
        })?;
        Attribution::finish(
            &s.p,
            "Neuron gradient",
            Tensor::cat(&grads, 0)?,
            Tensor::cat(&outs, 0)?,
            None,
            None,
        )
    }
}

/// Integrated Gradients of one neuron w.r.t. the input; complete, `Σ = a_j(x) − a_j(x̄)`
/// (the target is ignored).
#[derive(Debug, Clone)]
pub struct NeuronIntegratedGradients {
    pub layer: String,
    pub neuron: usize,
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl NeuronIntegratedGradients {
    pub fn new(layer: &str, neuron: usize, steps: usize) -> Self {
        Self {
            layer: layer.into(),
            neuron,
            steps,
            quadrature: Quadrature::GaussLegendre,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }
}

impl Attributor for NeuronIntegratedGradients {
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
        let total = crate::validate::rows(n, j, "NeuronIntegratedGradients: examples × steps")?;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let mut acc = x.zeros_like()?;
        self.batching
            .run(total, per, "neuron integrated gradients", |r| {
                let p = path_rows(&r, j, &nodes, &xbar, &diff)?;
                let (ex, pts, w) = (&p.ex, &p.points, col(&p.weights, xbar.rank())?);
                let (_, g) = neuron_gradient(&*view(model, ex)?, pts, &self.layer, self.neuron)?;
                acc = acc.index_add(ex, &g.broadcast_mul(&w)?, 0)?;
                Ok(())
            })?;
        let attr = (diff * acc)?;
        // The neuron's values: a chunked forward that keeps the layer (no backward).
        let value = |t: &Tensor| -> Result<Tensor> {
            let a = super::layer::activations(model, t, &self.layer, &self.batching)?
                .flatten_from(1)?;
            check_neuron(&a, &self.layer, self.neuron)?;
            Ok(a.narrow(1, self.neuron, 1)?.squeeze(1)?)
        };
        let (out, base_out) = (value(x)?, value(&xbar)?);
        let delta = completeness_delta(&attr, &out, Some(&base_out))?;
        Attribution::finish(
            &s.p,
            "Neuron Integrated Gradients",
            attr,
            out,
            Some(base_out),
            Some(delta),
        )
    }
}

/// The target's conductance through one neuron (Dhamdhere et al. 2018; Captum's
/// `NeuronConductance`): `(x − x̄) ⊙ Σ_k w_k · ∂S/∂a_j(x_k) · ∂a_j/∂x(x_k)` along the
/// straight path. Summed over all the layer's neurons it is Integrated Gradients (for a layer
/// every path passes through). Captum's default quadrature here is `RiemannTrapezoid`.
#[derive(Debug, Clone)]
pub struct NeuronConductance {
    pub layer: String,
    pub neuron: usize,
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl NeuronConductance {
    pub fn new(layer: &str, neuron: usize, steps: usize) -> Self {
        Self {
            layer: layer.into(),
            neuron,
            steps,
            quadrature: Quadrature::RiemannTrapezoid,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }

    pub fn with_quadrature(mut self, q: Quadrature) -> Self {
        self.quadrature = q;
        self
    }
}

/// Per row: `∂S/∂a_j · ∂a_j/∂x` (two backward passes over one forward).
fn conductance_rows(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    layer: &str,
    neuron: usize,
) -> Result<Tensor> {
    let ctx = RuleCtx::rule(ActRule::Gradient)?.capturing(&[layer]);
    let var = Var::from_tensor(&x.detach())?;
    let out = model.forward_with(var.as_tensor(), &ctx)?;
    let a = ctx.captured_live(layer)?.flatten_from(1)?;
    check_neuron(&a, layer, neuron)?;
    (&out * seed)?.sum_all()?.backward()?;
    let through = match ctx.captured(layer)?.1 {
        Some(g) => g.flatten_from(1)?.narrow(1, neuron, 1)?.squeeze(1)?,
        None => Tensor::zeros(x.dim(0)?, x.dtype(), x.device())?,
    };
    let grads = a.narrow(1, neuron, 1)?.sum_all()?.backward()?;
    let g = match grads.get(var.as_tensor()) {
        Some(g) => g.clone(),
        None => x.zeros_like()?,
    };
    Ok(g.broadcast_mul(&col(&through, x.rank())?)?)
}

impl Attributor for NeuronConductance {
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
        let total = crate::validate::rows(n, j, "NeuronConductance: examples × steps")?;
        // Two backward passes per row.
        let per = (self.batching.rows_per_chunk(model, x, true)? / 2).max(1);
        let mut acc = x.zeros_like()?;
        self.batching.run(total, per, "neuron conductance", |r| {
            let p = path_rows(&r, j, &nodes, &xbar, &diff)?;
            let (ex, pts, w) = (&p.ex, &p.points, col(&p.weights, xbar.rank())?);
            let g = conductance_rows(
                &*view(model, ex)?,
                pts,
                &s.seed.index_select(ex, 0)?,
                &self.layer,
                self.neuron,
            )?;
            acc = acc.index_add(ex, &g.broadcast_mul(&w)?, 0)?;
            Ok(())
        })?;
        let attr = (diff * acc)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        Attribution::finish(&s.p, "Neuron conductance", attr, out, None, None)
    }
}
