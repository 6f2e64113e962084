//! Candle interop: our layers are `candle_core::Module`s (their ordinary forward), and they
//! are made from `candle_nn` layers already loaded, sharing the weights (a `Tensor` clone
//! shares its storage: nothing is copied or reloaded).

use super::{AvgPool2d, BatchNorm, Conv2d, Flatten, Linear, MaxPool2d, Named, Sequential};
use super::{Embedding, LayerNorm};
use crate::{Activation, Explainable, RuleCtx};
use candle_core::{Module, Tensor};

/// Our error as Candle's (the `Module` trait's error type).
fn plain(m: &dyn Explainable, x: &Tensor) -> candle_core::Result<Tensor> {
    m.forward_with(x, &RuleCtx::plain())
        .map_err(candle_core::Error::wrap)
}

macro_rules! module {
    ($($t:ty),+) => {$(
        impl Module for $t {
            fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
                plain(self, x)
            }
        }
    )+};
}
module!(
    Linear, Conv2d, LayerNorm, BatchNorm, MaxPool2d, AvgPool2d, Flatten, Activation, Sequential
);

impl<L: Explainable> Module for Named<L> {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        plain(self, x)
    }
}

impl From<&candle_nn::Linear> for Linear {
    fn from(l: &candle_nn::Linear) -> Self {
        Linear::new(l.weight().clone(), l.bias().cloned())
    }
}

impl From<&candle_nn::Conv2d> for Conv2d {
    fn from(c: &candle_nn::Conv2d) -> Self {
        Conv2d::new(c.weight().clone(), c.bias().cloned(), *c.config())
    }
}

impl From<&candle_nn::Embedding> for Embedding {
    fn from(e: &candle_nn::Embedding) -> Self {
        Embedding::new(e.embeddings().clone())
    }
}

impl TryFrom<&candle_nn::LayerNorm> for LayerNorm {
    type Error = crate::Error;

    /// A mean-removing LayerNorm; an RMS norm (`candle_nn::LayerNorm::rms_norm`, whose
    /// mean-removal flag Candle keeps private) is recognised by its output on a constant
    /// vector and refused.
    fn try_from(n: &candle_nn::LayerNorm) -> crate::Result<Self> {
        let w = n.weight();
        let ones = Tensor::ones((1, w.elem_count()), w.dtype(), w.device())?;
        let y = n.forward(&ones)?;
        let expect = match n.bias() {
            Some(b) => b.unsqueeze(0)?,
            None => ones.zeros_like()?,
        };
        let gap = (y - expect)?
            .abs()?
            .to_dtype(candle_core::DType::F64)?
            .max_all()?
            .to_scalar::<f64>()?;
        if gap > 1e-3 {
            return Err(crate::error::invalid(
                "layer_norm",
                "this candle_nn::LayerNorm does not remove the mean (an RMS norm): no explainable RMS norm exists yet",
            ));
        }
        Ok(LayerNorm::new(w.clone(), n.bias().cloned(), n.eps()))
    }
}
