//! The one abstraction a model implements to be explained.

use crate::{Result, RuleCtx};
use candle_core::Tensor;

/// A model whose forward pass routes every rule-replaceable operation through a [`RuleCtx`].
///
/// Nonlinearities, linear and convolution layers and pooling are asked of the context
/// (`ctx.activation`, `ctx.linear`, `ctx.conv2d`, `ctx.max_pool2d`); reshapes, residual sums
/// and concatenations are ordinary tensor ops. With [`RuleCtx::plain`] the forward is the
/// ordinary one (and differentiable w.r.t. the weights, for training); the attribution
/// methods pass contexts whose backward is a rule's.
///
/// The output must be `(batch, classes)` logits (or any per-class score).
pub trait Explainable {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor>;

    /// Per-example input shape (without the batch dimension), when the model has a fixed one.
    /// Methods use it to reject wrong inputs with a clear error before running anything.
    fn input_shape(&self) -> Option<Vec<usize>> {
        None
    }

    /// Activation memory one row takes through the forward, in bytes, for a model whose
    /// forward the chunker's probe cannot see (it routes nothing through the context).
    fn row_bytes(&self) -> Option<usize> {
        None
    }

    /// This model for the rows `rows` (indices into the batch it is explaining) of a batch a
    /// method expands (IG's steps, noise samples, perturbations, several classes): a model
    /// with inputs per example beside the attributed one ([`crate::WithInputs`]: an attention
    /// mask, token-type ids) selects them row by row. `None`: rows need nothing.
    fn for_rows(&self, rows: &Tensor) -> Result<Option<Box<dyn Explainable + '_>>> {
        let _ = rows;
        Ok(None)
    }

    /// Forward with the ordinary rules.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &RuleCtx::plain())
    }

    /// The same function rewritten for rules, when the model has such a form: every
    /// BatchNorm folded into the conv / linear layer before it (`canonize`). Composites with
    /// [`crate::composite::Canonizer::MergeBatchNorm`] run on it. `None`: nothing to fold.
    fn canonized(&self) -> Result<Option<Box<dyn Explainable + '_>>> {
        Ok(None)
    }
}

impl<T: Explainable + ?Sized> Explainable for &T {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        (**self).forward_with(x, ctx)
    }
    fn input_shape(&self) -> Option<Vec<usize>> {
        (**self).input_shape()
    }
    fn canonized(&self) -> Result<Option<Box<dyn Explainable + '_>>> {
        (**self).canonized()
    }
    fn row_bytes(&self) -> Option<usize> {
        (**self).row_bytes()
    }
    fn for_rows(&self, rows: &Tensor) -> Result<Option<Box<dyn Explainable + '_>>> {
        (**self).for_rows(rows)
    }
}

impl<T: Explainable + ?Sized> Explainable for Box<T> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        (**self).forward_with(x, ctx)
    }
    fn input_shape(&self) -> Option<Vec<usize>> {
        (**self).input_shape()
    }
    fn canonized(&self) -> Result<Option<Box<dyn Explainable + '_>>> {
        (**self).canonized()
    }
    fn row_bytes(&self) -> Option<usize> {
        (**self).row_bytes()
    }
    fn for_rows(&self, rows: &Tensor) -> Result<Option<Box<dyn Explainable + '_>>> {
        (**self).for_rows(rows)
    }
}
