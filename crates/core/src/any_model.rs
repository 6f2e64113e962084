//! Any model as it is: a Candle `Module` (a `candle_nn` network, a `candle-transformers`
//! model) or a closure from the input to `(batch, outputs)` scores, explained without
//! rewriting it.
//!
//! Its forward asks the rule context for nothing, so:
//! - methods that need only forward passes (Occlusion, FeatureAblation, Shapley values, the
//!   metrics) and gradient methods (Saliency, Gradient × Input, Integrated Gradients,
//!   NoiseTunnel, GradientSHAP, Blur IG, Guided IG) work, the gradients coming from Candle's
//!   autograd;
//! - rule-based methods (LRP, DeepLIFT, guided backprop, …) give `Error::RulesNotApplied`;
//! - the chunker cannot see inside it: chunks are `batch::UNMEASURED_ROWS` rows unless
//!   [`AnyModel::with_row_bytes`] says how much memory a row takes.
//!
//! Candle's stock autograd has known defects: ops without a backward stop the gradient
//! (`candle_nn::ops::softmax_last_dim`, in the attention of many `candle-transformers`
//! models), the max-pool backward scales the gradient by 1/(k·k), and the conv backward fails
//! on strided convs that leave rows uncovered. So that they never give silently wrong
//! attributions, the first gradient pass checks the autograd
//! directional derivative of the model against central finite differences, on one row, and
//! refuses the model with an error that says what disagreed.

use crate::{Error, Explainable, Result, RuleCtx};
use candle_core::{DType, Tensor};
use std::sync::OnceLock;

/// A model given as a function from input to scores.
pub struct AnyModel<F> {
    forward: F,
    input_shape: Option<Vec<usize>>,
    row_bytes: Option<usize>,
    /// The outcome of the gradient check, made once.
    checked: OnceLock<std::result::Result<(), String>>,
}

impl<F> AnyModel<F>
where
    F: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    /// `forward` maps a batch `(batch, features…)` to scores `(batch, outputs)`.
    pub fn new(forward: F) -> Self {
        Self {
            forward,
            input_shape: None,
            row_bytes: None,
            checked: OnceLock::new(),
        }
    }

    /// Declares the per-example input shape, so that methods reject wrong inputs early.
    pub fn with_input_shape(mut self, shape: &[usize]) -> Self {
        self.input_shape = Some(shape.to_vec());
        self
    }

    /// Memory one row takes through a forward (activations), in bytes: what the chunker
    /// sizes chunks by (it cannot measure a model that does not use the context).
    pub fn with_row_bytes(mut self, bytes: usize) -> Self {
        self.row_bytes = Some(bytes);
        self
    }

    /// Checks `d/dε f(x + ε v)` by autograd against central differences on row 0 of `x`.
    fn check_gradient(&self, x: &Tensor) -> Result<()> {
        let outcome = self.checked.get_or_init(|| {
            gradient_agrees(&self.forward, x)
                .map_err(|e| e.to_string())
                .and_then(|r| r)
        });
        outcome
            .clone()
            .map_err(|reason| Error::Unsupported(format!("AnyModel: {reason}")))
    }
}

/// A `candle_core::Module` as it is.
pub fn from_module<M: candle_core::Module>(
    m: M,
) -> AnyModel<impl Fn(&Tensor) -> candle_core::Result<Tensor>> {
    AnyModel::new(move |x: &Tensor| m.forward(x))
}

impl<F> Explainable for AnyModel<F>
where
    F: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        // A gradient pass (the input tracks a gradient): check Candle's autograd once.
        if x.track_op() && ctx.act_rule().is_some() {
            self.check_gradient(x)?;
        }
        Ok((self.forward)(x)?)
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    fn row_bytes(&self) -> Option<usize> {
        self.row_bytes
    }
}

/// Relative disagreement beyond which the autograd gradient is refused: Candle's max-pool
/// defect is a factor of k·k (4 for 2×2), far above the differences' own error.
const TOLERANCE: f64 = 0.2;

/// `Ok(Ok(()))` when the directional derivatives agree (or the model is flat there),
/// `Ok(Err(reason))` when they do not.
fn gradient_agrees<F>(f: &F, x: &Tensor) -> candle_core::Result<std::result::Result<(), String>>
where
    F: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    let row = x.narrow(0, 0, 1)?.detach().contiguous()?;
    let n = row.elem_count();
    let dt = row.dtype();
    // A fixed direction with every entry ±1 / √n (no chance alignment with a kink pattern).
    let v: Vec<f64> = (0..n)
        .map(|i| if (i * 2_654_435_761) % 7 < 4 { 1.0 } else { -1.0 } / (n as f64).sqrt())
        .collect();
    let v = Tensor::from_vec(v, row.shape(), row.device())?.to_dtype(dt)?;
    let score = |t: &Tensor| -> candle_core::Result<f64> {
        f(t)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()
    };
    let var = candle_core::Var::from_tensor(&row)?;
    let out = f(var.as_tensor())?.sum_all()?;
    let grads = out.backward()?;
    let autograd = match grads.get(var.as_tensor()) {
        Some(g) => (g * &v)?
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?,
        None => 0.0,
    };
    let scale = row
        .abs()?
        .to_dtype(DType::F64)?
        .max_all()?
        .to_scalar::<f64>()?
        .max(1.0);
    // Two step sizes: a kink crossed by one is unlikely to be crossed by both in the same way.
    let mut best = f64::INFINITY;
    let mut diffs = vec![];
    for h in [1e-2 * scale, 2.5e-3 * scale] {
        let up = score(&(&row + (&v * h)?)?)?;
        let down = score(&(&row - (&v * h)?)?)?;
        let fd = (up - down) / (2.0 * h);
        diffs.push(fd);
        let rel = (autograd - fd).abs() / autograd.abs().max(fd.abs()).max(1e-6);
        best = best.min(rel);
    }
    if best <= TOLERANCE || !autograd.is_finite() && diffs.iter().all(|d| !d.is_finite()) {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "Candle's autograd gradient of this model disagrees with finite differences: the \
         directional derivative is {autograd:.6e} by autograd and {:.6e} by differences \
         (relative error {best:.2}). Known causes in Candle: an op without a backward, which \
         stops the gradient (candle_nn::ops::softmax_last_dim, used by the attention of many \
         candle-transformers models: the gradient is then 0); max_pool2d's backward, which \
         scales the gradient by 1/(k·k); a strided conv whose backward Candle gets wrong. Build \
         those layers from candle_explain_core::nn (or route them through the RuleCtx), or \
         explain with forward-only methods (Occlusion, Shapley values, FeatureAblation)",
        diffs[0]
    )))
}
