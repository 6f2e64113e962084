//! Inputs beside the attributed one (Captum's `additional_forward_args`): an attention mask,
//! token-type ids, any tensor with one row per example. They are not attributed; every method
//! gives each row it runs the inputs of the example it comes from (IG's steps, noise samples,
//! perturbations and several classes all expand a batch row by row), and the model reads them
//! from the context (`RuleCtx::input`).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use candle_explain_core::prelude::*;
//! use candle_explain_core::{Explainable, RuleCtx, WithInputs};
//!
//! /// Σ of the features kept by a 0/1 mask given beside them.
//! struct MaskedSum;
//! impl Explainable for MaskedSum {
//!     fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
//!         let mask = ctx.input("mask").expect("given with the input");
//!         Ok((x * mask)?.sum_keepdim(1)?)
//!     }
//! }
//!
//! # fn main() -> candle_explain_core::Result<()> {
//! let dev = Device::Cpu;
//! let x = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev)?;
//! let mask = Tensor::new(&[[1f32, 1., 0.], [1., 0., 0.]], &dev)?;
//! let model = WithInputs::new(&MaskedSum).with("mask", mask)?;
//! let a = IntegratedGradients::new(8).attribute(&model, &x, &Target::Class(0))?;
//! assert_eq!(a.attributions.to_vec2::<f32>()?, vec![vec![1., 2., 0.], vec![4., 0., 0.]]);
//! # Ok(()) }
//! ```

use crate::{Error, Explainable, Result, RuleCtx};
use candle_core::Tensor;

/// A model with named inputs per example beside the attributed one.
pub struct WithInputs<'m> {
    model: &'m dyn Explainable,
    inputs: Vec<(String, Tensor)>,
}

impl<'m> WithInputs<'m> {
    pub fn new(model: &'m dyn Explainable) -> Self {
        Self {
            model,
            inputs: vec![],
        }
    }

    /// Adds an input: one row per example of the batch to explain (leading axis).
    pub fn with(mut self, name: impl Into<String>, t: Tensor) -> Result<Self> {
        let name = name.into();
        if t.rank() == 0 {
            return Err(crate::error::invalid(
                "inputs",
                format!("input {name:?} needs a leading batch axis, got a scalar"),
            ));
        }
        self.inputs.push((name, t.contiguous()?));
        Ok(self)
    }
}

impl Explainable for WithInputs<'_> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        let rows = x.dim(0)?;
        if let Some((name, t)) = self
            .inputs
            .iter()
            .find(|(_, t)| t.dim(0).ok() != Some(rows))
        {
            return Err(Error::InputShape {
                expected: format!(
                    "input {name:?} with one row per example ({rows}), got {:?}: give it for the batch being explained",
                    t.dims()
                ),
                got: x.dims().to_vec(),
            });
        }
        let _given = ctx.provide_inputs(&self.inputs);
        self.model.forward_with(x, ctx)
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.model.input_shape()
    }

    fn row_bytes(&self) -> Option<usize> {
        self.model.row_bytes()
    }

    fn for_rows(&self, rows: &Tensor) -> Result<Option<Box<dyn Explainable + '_>>> {
        let last = match rows.elem_count() {
            0 => 0,
            _ => rows.max(0)?.to_scalar::<u32>()? as usize,
        };
        if let Some((name, t)) = self
            .inputs
            .iter()
            .find(|(_, t)| t.dim(0).is_ok_and(|n| n <= last))
        {
            return Err(Error::InputShape {
                expected: format!(
                    "input {name:?} with one row per example: row {last} of the batch was asked for"
                ),
                got: t.dims().to_vec(),
            });
        }
        let inputs = self
            .inputs
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.index_select(rows, 0)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Box::new(WithInputs {
            model: self.model,
            inputs,
        })))
    }
}
