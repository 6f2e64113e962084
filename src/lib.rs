//! # candle-explain
//!
//! Attribution methods (which inputs made the network say this?) for Candle models, with
//! the attribution rules implemented as custom backward ops, and faithfulness metrics.
//!
//! This facade re-exports the workspace crates:
//! - [`core`]: the rule context, the custom backward ops and the methods;
//! - [`models`]: explainable classifiers that load real checkpoints;
//! - [`metrics`]: perturbation metrics;
//! - [`jobs`]: dataset-scale jobs split into shards for a cluster engine;
//! - [`viz`]: heatmaps over images, grids, coloured-token pages for text, SVG line plots of
//!   metric curves.
//!
//! ```
//! use candle_explain::prelude::*;
//! use candle_explain::core::nn::{Linear, Sequential};
//! use candle_core::{Device, Tensor};
//!
//! # fn main() -> candle_explain::core::Result<()> {
//! let w = Tensor::new(&[[2f32, -1.]], &Device::Cpu)?;
//! let model = Sequential::new().push(Linear::new(w, None));
//! let x = Tensor::new(&[[1f32, 3.]], &Device::Cpu)?;
//! let a = InputXGradient::default().attribute(&model, &x, &Target::Class(0))?;
//! assert_eq!(a.attributions.to_vec2::<f32>()?, vec![vec![2., -3.]]);
//! # Ok(()) }
//! ```

pub use candle_explain_core as core;
pub use candle_explain_metrics as metrics;
pub use candle_explain_models as models;

pub mod alloc;
pub mod jobs;
pub mod viz;

/// Everything needed to explain a model.
pub mod prelude {
    pub use candle_explain_core::prelude::*;
}

/// The README's code blocks, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
