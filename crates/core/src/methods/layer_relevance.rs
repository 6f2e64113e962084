//! Latent relevance: LRP and DeepLIFT read at a layer the model taps (Captum's `LayerLRP`,
//! `LayerDeepLift`; the relevance of concepts in a hidden layer, as in CRP). The same
//! backward as the input-level method; the result is what flows through the tap, in the
//! layer's shape. Both conserve at the layer: `Σ R = S(x)` for LRP (up to its rules'
//! absorption, e.g. biases and ε) and `Σ = S(x) − S(x̄)` for DeepLIFT (exactly).

use super::deeplift::DeepLift;
use super::lrp::Lrp;
use crate::{Attribution, Attributor, Composite, Explainable, Result, Target};
use candle_core::Tensor;

/// LRP relevance at a layer's output.
#[derive(Debug, Clone)]
pub struct LayerLrp {
    pub layer: String,
    pub lrp: Lrp,
}

impl LayerLrp {
    pub fn new(layer: &str, composite: Composite) -> Self {
        Self {
            layer: layer.into(),
            lrp: Lrp::new(composite),
        }
    }
}

impl Attributor for LayerLrp {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        self.lrp.run(model, input, target, Some(&self.layer))
    }
}

/// DeepLIFT (Rescale) contributions of a layer's activation, `(a − ā) ⊙ m`.
#[derive(Debug, Clone)]
pub struct LayerDeepLift {
    pub layer: String,
    pub deeplift: DeepLift,
}

impl LayerDeepLift {
    pub fn new(layer: &str) -> Self {
        Self {
            layer: layer.into(),
            deeplift: DeepLift::default(),
        }
    }

    pub fn with_baseline(mut self, b: crate::Baseline) -> Self {
        self.deeplift.baseline = b;
        self
    }
}

impl Attributor for LayerDeepLift {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        self.deeplift.run(model, input, target, Some(&self.layer))
    }
}
