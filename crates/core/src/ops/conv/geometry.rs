//! The geometry of a 2-D convolution, shared by its kernels: Candle's own `Conv2dConfig`
//! (padding, stride, dilation, groups; its cuDNN algorithm choice is ignored here), so that a
//! `candle_nn::Conv2d` converts without translation.

/// Geometry of a 2-D convolution (PyTorch's `Conv2d` arguments; symmetric padding).
pub type ConvGeometry = candle_nn::Conv2dConfig;
