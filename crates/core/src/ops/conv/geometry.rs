//! The geometry of a 2-D convolution, shared by its kernels.

/// Geometry of a 2-D convolution (PyTorch's `Conv2d` arguments; symmetric padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub padding: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for ConvGeometry {
    fn default() -> Self {
        Self {
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
        }
    }
}
