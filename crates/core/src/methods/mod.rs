//! The attribution methods, one file each.

pub mod blur_ig;
mod common;
pub mod controls;
pub mod deep_shap;
pub mod deeplift;
pub mod feature_ablation;
mod gaussian;
pub mod ggig;
pub mod grad_cam;
pub mod gradient;
pub mod gradient_shap;
pub mod groups;
pub mod guided_ig;
pub mod integrated_gradients;
pub mod kernel_shap;
pub mod layer;
pub mod layer_relevance;
pub mod lime;
pub mod lrp;
pub mod neuron;
pub mod noise_tunnel;
pub mod occlusion;
pub mod prediction_difference;
pub mod shapley;
mod surrogate;

pub use blur_ig::BlurIntegratedGradients;
pub use controls::{RandomAttribution, SobelEdge};
pub use deep_shap::DeepShap;
pub use deeplift::{DeepLift, DeepLiftRule};
pub use feature_ablation::FeatureAblation;
pub use ggig::GeometricallyGuidedIg;
pub use grad_cam::{GradCam, GuidedGradCam};
pub use gradient::{AttnLrp, Deconvnet, EpsilonLrp, GuidedBackprop, InputXGradient, Saliency};
pub use gradient_shap::GradientShap;
pub use groups::Groups as FeatureGroups;
pub use guided_ig::GuidedIntegratedGradients;
pub use integrated_gradients::{AdaptiveSteps, IntegratedGradients};
pub use kernel_shap::KernelShap;
pub use layer::{
    InternalInfluence, LayerConductance, LayerGradientXActivation, LayerIntegratedGradients,
};
pub use layer_relevance::{LayerDeepLift, LayerLrp};
pub use lime::Lime;
pub use lrp::Lrp;
pub use neuron::{NeuronConductance, NeuronGradient, NeuronIntegratedGradients};
pub use noise_tunnel::{NoiseKind, NoiseTunnel};
pub use occlusion::Occlusion;
pub use prediction_difference::{PdSampling, PredictionDifference};
pub use shapley::{ShapleyMode, ShapleyValues};
