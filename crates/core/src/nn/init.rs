//! How layers are initialised and named when they load through a `VarBuilder`.

use candle_nn::VarBuilder;

/// PyTorch's default init for linear and conv layers: U(±1/√fan_in). Only used when the
/// builder creates variables (training); loading a checkpoint ignores it.
pub(crate) fn torch_init(fan_in: usize) -> candle_nn::Init {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    candle_nn::Init::Uniform { lo: -b, up: b }
}

/// A `VarBuilder`'s path (`encoder.layer.0.attention.self.query`), `None` at the root.
pub(crate) fn path_of(vb: &VarBuilder) -> Option<String> {
    let p = vb.prefix();
    (!p.is_empty()).then_some(p)
}
