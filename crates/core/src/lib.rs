//! # candle-explain-core
//!
//! Attribution methods for [Candle](https://github.com/huggingface/candle) models, built on
//! attribution rules implemented as custom backward ops.
//!
//! A model implements [`Explainable`]: its forward asks a [`RuleCtx`] for every operation
//! whose backward a rule may replace. The plain context gives the ordinary forward (and
//! training gradients); the methods pass contexts whose backward computes a rule's modified
//! gradient, returning only input gradients (never the weights').
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use candle_explain_core::nn::{Linear, Sequential};
//! use candle_explain_core::prelude::*;
//!
//! # fn main() -> candle_explain_core::Result<()> {
//! let dev = Device::Cpu;
//! // f(x) = relu(x0 - x1) + 2·relu(x1), one output.
//! let w1 = Tensor::new(&[[1f32, -1.], [0., 1.]], &dev)?;
//! let w2 = Tensor::new(&[[1f32, 2.]], &dev)?;
//! let model = Sequential::new()
//!     .push(Linear::new(w1, None))
//!     .push(Activation::Relu)
//!     .push(Linear::new(w2, None));
//! let x = Tensor::new(&[[3f32, 1.]], &dev)?;
//! let ig = IntegratedGradients::new(32).attribute(&model, &x, &Target::Class(0))?;
//! // Completeness: the attributions add up to f(x) − f(0) = 2 + 2.
//! let total = ig.attributions.sum_all()?.to_scalar::<f32>()?;
//! assert!((total - 4.0).abs() < 1e-4);
//! # Ok(()) }
//! ```
// `!(x > 0.0)` is how parameter checks reject NaN along with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod activation;
pub mod any_model;
pub mod attribution;
pub mod baseline;
pub mod batch;
pub mod canonize;
pub mod composite;
pub mod ctx;
pub mod error;
pub mod explainable;
pub mod layer_rules;
pub mod methods;
pub mod nn;
pub mod ops;
pub mod quadrature;
pub mod rule;
pub mod rules;
pub mod target;
#[doc(hidden)]
pub mod test_utils;
pub(crate) mod train;
pub mod validate;
pub mod with_inputs;

pub use activation::Activation;
pub use any_model::AnyModel;
pub use attribution::{Attribution, Attributor};
pub use baseline::Baseline;
pub use batch::Batching;
pub use composite::{Composite, LayerKind, Selector};
pub use ctx::RuleCtx;
pub use error::{Error, Result};
pub use explainable::Explainable;
pub use layer_rules::LayerRule;
pub use quadrature::Quadrature;
pub use rules::ActRule;
pub use target::Target;
pub use with_inputs::WithInputs;

/// Everything needed to explain a model.
pub mod prelude {
    pub use crate::methods::*;
    pub use crate::{
        ActRule, Activation, AnyModel, Attribution, Attributor, Baseline, Batching, Composite,
        Explainable, LayerKind, LayerRule, Quadrature, RuleCtx, Selector, Target,
    };
}

/// The crate README's code blocks (the "Write your own rule" example), compiled and run as
/// doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
