//! # candle-explain-metrics
//!
//! Faithfulness metrics for attributions, with every perturbation built on the device and
//! evaluated in memory-budgeted chunks (`candle_explain_core::Batching`).
//!
//! - [`SensitivityN`] (Ancona et al. 2018): Pearson correlation between summed attributions
//!   and the output drop over random feature subsets of size n.
//! - [`PixelFlipping`]: deletion (most relevant first) and insertion curves, and AOPC.
//!
//! - [`check_axioms`]: IG's axioms (completeness, dummy, linearity, symmetry, implementation
//!   invariance, affine scale invariance) as checks on any method; [`check_monomial`],
//!   [`check_affine_invariance`] and [`check_positivity`] for the monomial closed form,
//!   shifted affine maps and non-decreasing positivity.
//!
//! - [`Infidelity`] and [`MaxSensitivity`] (Yeh et al. 2019, as in Captum).
//!
//! - [`Roar`]: ROAR and KAR with retraining (Hooker et al. 2019), on the models crate's trainer.
//!
//! - [`ModelRandomization`]: cascading / independent model-randomization sanity checks
//!   (Adebayo et al. 2018) with Spearman, SSIM and HOG similarities ([`similarity`]), and
//!   GGIG's [`ModelPerturbation`] check (small weight noise must keep the explanation).
//!
//! - [`HarsanyiInteractions`]: exact Harsanyi dividends of up to 16 feature groups from one
//!   sweep, and every method's errors against Deng et al.'s three allocation principles.

pub mod axioms;
pub mod error;
pub mod infidelity;
pub mod interactions;
pub mod perturb;
pub mod pixel_flipping;
pub mod roar;
pub mod sanity;
pub mod sensitivity_n;
pub mod similarity;

pub(crate) use error::invalid;

/// Builds a model from a `VarBuilder` (the checks that change weights rebuild it).
pub type ModelBuilder =
    dyn Fn(
        candle_nn::VarBuilder,
    ) -> candle_explain_core::Result<Box<dyn candle_explain_core::Explainable>>;
pub use axioms::{check_affine_invariance, check_axioms, check_monomial, check_positivity, AxiomReport};
pub use error::{Error, Result};
pub use infidelity::{Infidelity, MaxSensitivity};
pub use interactions::{AllocationErrors, HarsanyiInteractions, Interactions, PrincipleErrors};
pub use pixel_flipping::{Curve, FlipOrder, PixelFlipping};
pub use roar::{Roar, RoarReport};
pub use sanity::{
    ModelPerturbation, ModelRandomization, PerturbationCheck, PerturbationStep, Randomization,
    SanityStep,
};
pub use sensitivity_n::{SensitivityN, SensitivityNResult};
