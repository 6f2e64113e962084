//! Kernel and stride of a pool, shared by its kernels.

use candle_core::Result;

/// Kernel and stride of a max-pool (no padding, floor mode, as `nn.MaxPool2d(k, s)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
}

impl PoolGeometry {
    pub fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (kh, kw) = self.kernel;
        if h < kh || w < kw || kh == 0 || kw == 0 || self.stride.0 == 0 || self.stride.1 == 0 {
            candle_core::bail!("max-pool: input {h}x{w} is smaller than kernel {kh}x{kw} (or a zero kernel/stride)")
        }
        Ok(((h - kh) / self.stride.0 + 1, (w - kw) / self.stride.1 + 1))
    }

    pub(crate) fn non_overlapping(&self) -> bool {
        self.kernel == self.stride
    }
}
