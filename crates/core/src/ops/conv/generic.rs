//! Input gradient of a 2-D convolution, as a *forward* convolution.
//!
//! Candle's own conv backward is `conv_transpose2d`, a naive loop on CPU and CUDA
//! (PERFORMANCE.md §2). The gradient w.r.t. the input of `y = conv(x, w)` is the full
//! correlation of the (stride-dilated) output gradient with the flipped, in/out-swapped
//! kernel, which Candle computes with its im2col + gemm path.

use super::geometry::ConvGeometry;
use candle_core::{DType, Result, Tensor};

/// `w (Cout, Cin/g, kh, kw)` → flipped in space, in/out swapped per group: `(Cin, Cout/g, kh, kw)`.
pub fn flipped_kernel(w: &Tensor, groups: usize) -> Result<Tensor> {
    let (cout, cin_g, kh, kw) = w.dims4()?;
    let rev = |n: usize| Tensor::arange(0u32, n as u32, w.device()).and_then(|t| t.flip_indices(n));
    let w = w.index_select(&rev(kh)?, 2)?.index_select(&rev(kw)?, 3)?;
    w.reshape((groups, cout / groups, cin_g, kh, kw))?
        .transpose(1, 2)?
        .reshape((groups * cin_g, cout / groups, kh, kw))?
        .contiguous()
}

trait FlipIndices {
    fn flip_indices(&self, n: usize) -> Result<Tensor>;
}
impl FlipIndices for Tensor {
    fn flip_indices(&self, n: usize) -> Result<Tensor> {
        // (n − 1) − i, computed in f32 to stay on the device, then back to u32.
        self.to_dtype(DType::F32)?
            .affine(-1.0, (n - 1) as f64)?
            .to_dtype(DType::U32)
    }
}

/// Pads (`> 0`) or crops (`< 0`) one dimension on both sides.
fn pad_or_crop(t: &Tensor, dim: usize, left: isize, right: isize) -> Result<Tensor> {
    let mut t = t.clone();
    let n = t.dim(dim)? as isize;
    let (cl, cr) = ((-left).max(0), (-right).max(0));
    if cl > 0 || cr > 0 {
        t = t.narrow(dim, cl as usize, (n - cl - cr).max(0) as usize)?;
    }
    if left > 0 || right > 0 {
        t = t.pad_with_zeros(dim, left.max(0) as usize, right.max(0) as usize)?;
    }
    Ok(t)
}

/// Inserts `s − 1` zeros between neighbouring elements of dims 2 and 3.
fn dilate(g: &Tensor, s: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(g.clone());
    }
    let (b, c, h, w) = g.dims4()?;
    g.reshape((b, c, h, 1, w, 1))?
        .pad_with_zeros(3, 0, s - 1)?
        .pad_with_zeros(5, 0, s - 1)?
        .reshape((b, c, h * s, w * s))?
        .narrow(2, 0, (h - 1) * s + 1)?
        .narrow(3, 0, (w - 1) * s + 1)
}

/// Gradient w.r.t. the input `(B, Cin, in_h, in_w)` of `conv2d(x, w, geometry)`, given the
/// output gradient `grad (B, Cout, Ho, Wo)` and the flipped kernel from [`flipped_kernel`].
pub fn conv2d_input_grad(
    grad: &Tensor,
    w_flipped: &Tensor,
    kernel_hw: (usize, usize),
    g: ConvGeometry,
    in_hw: (usize, usize),
) -> Result<Tensor> {
    let (kh, kw) = kernel_hw;
    let d = g.dilation;
    let gd = dilate(grad, g.stride)?;
    // Rows of the input no output window reaches (floor mode) get zero gradient: pad for them.
    let pads = |k: usize, n_in: usize, n_g: usize| {
        let full = (d * (k - 1)) as isize - g.padding as isize;
        let covered = n_g as isize + 2 * full - (d * (k - 1)) as isize;
        (full, full + (n_in as isize - covered))
    };
    let (t, b) = pads(kh, in_hw.0, gd.dim(2)?);
    let (l, r) = pads(kw, in_hw.1, gd.dim(3)?);
    if t == b && l == r && t == l && t >= 0 {
        return gd
            .contiguous()?
            .conv2d(w_flipped, t as usize, 1, d, g.groups);
    }
    let gd = pad_or_crop(&pad_or_crop(&gd, 2, t, b)?, 3, l, r)?.contiguous()?;
    gd.conv2d(w_flipped, 0, 1, d, g.groups)
}
