//! Max-pooling with an argmax-based backward.
//!
//! Candle's `max_pool2d` backward scales the gradient by (number of maxima)/(k·k) instead of
//! routing it to the maximum (PERFORMANCE.md: 1/4 of the true gradient for 2×2 pooling).
//! Here every window is laid out along a last axis of size `kh·kw`; the forward takes the
//! max over it and the backward routes the gradient to the first maximum, as PyTorch does.

mod cpu;
mod geometry;

pub use geometry::PoolGeometry;

use candle_core::{DType, Result, Tensor};

/// `(B, C, H, W)` → `(B, C, Ho, Wo, kh·kw)`: every pooling window along the last axis.
pub fn windows(x: &Tensor, p: PoolGeometry) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = p.out_hw(h, w)?;
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    if p.non_overlapping() {
        return x
            .narrow(2, 0, ho * kh)?
            .narrow(3, 0, wo * kw)?
            .reshape((b, c, ho, kh, wo, kw))?
            .permute((0, 1, 2, 4, 3, 5))?
            .reshape((b, c, ho, wo, kh * kw));
    }
    // One strided view per window offset; padding keeps every narrow in range and is never read.
    let xp = x
        .pad_with_zeros(2, 0, (kh - 1 + ho * sh).saturating_sub(h))?
        .pad_with_zeros(3, 0, (kw - 1 + wo * sw).saturating_sub(w))?;
    let mut views = Vec::with_capacity(kh * kw);
    for di in 0..kh {
        for dj in 0..kw {
            let v = xp
                .narrow(2, di, ho * sh)?
                .narrow(3, dj, wo * sw)?
                .reshape((b, c, ho, sh, wo, sw))?
                .narrow(3, 0, 1)?
                .narrow(5, 0, 1)?
                .reshape((b, c, ho, wo))?;
            views.push(v);
        }
    }
    Tensor::stack(&views, 4)
}

/// Inverse layout of [`windows`]: sums window values back onto the `(B, C, H, W)` input grid.
pub fn scatter_windows(v: &Tensor, p: PoolGeometry, hw: (usize, usize)) -> Result<Tensor> {
    let (b, c, ho, wo, _) = v.dims5()?;
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (h, w) = hw;
    if p.non_overlapping() {
        return v
            .reshape((b, c, ho, wo, kh, kw))?
            .permute((0, 1, 2, 4, 3, 5))?
            .reshape((b, c, ho * kh, wo * kw))?
            .pad_with_zeros(2, 0, h - ho * kh)?
            .pad_with_zeros(3, 0, w - wo * kw);
    }
    let hp = (kh - 1 + ho * sh).max(h);
    let wp = (kw - 1 + wo * sw).max(w);
    let mut acc: Option<Tensor> = None;
    for di in 0..kh {
        for dj in 0..kw {
            let k = di * kw + dj;
            let t = v
                .narrow(4, k, 1)?
                .reshape((b, c, ho, 1, wo, 1))?
                .pad_with_zeros(3, 0, sh - 1)?
                .pad_with_zeros(5, 0, sw - 1)?
                .reshape((b, c, ho * sh, wo * sw))?
                .pad_with_zeros(2, di, hp - di - ho * sh)?
                .pad_with_zeros(3, dj, wp - dj - wo * sw)?;
            acc = Some(match acc {
                None => t,
                Some(a) => (a + t)?,
            });
        }
    }
    acc.expect("kernel is non-empty")
        .narrow(2, 0, h)?
        .narrow(3, 0, w)
}

/// One-hot of the first maximum of every window: `(B, C, Ho, Wo, K)`, same dtype as `win`.
pub fn argmax_onehot(win: &Tensor) -> Result<Tensor> {
    let k = win.dim(4)?;
    let idx = win.argmax_keepdim(4)?;
    let range = Tensor::arange(0u32, k as u32, win.device())?.reshape((1, 1, 1, 1, k))?;
    idx.broadcast_eq(&range)?.to_dtype(win.dtype())
}

/// Max over every window: the pooled output `(B, C, Ho, Wo)`. Differentiable by autograd
/// (the max over the window axis routes to the maximum); see [`max_pool_no_grad`].
pub fn max_pool(x: &Tensor, p: PoolGeometry) -> Result<Tensor> {
    windows(x, p)?.max(4)
}

fn cpu_kernel_applies(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// [`max_pool`] for values that need no gradient: a CPU kernel where it applies.
pub fn max_pool_no_grad(x: &Tensor, p: PoolGeometry) -> Result<Tensor> {
    if cpu_kernel_applies(x) {
        return x.contiguous()?.apply_op1_no_bwd(&cpu::MaxPoolCpu(p));
    }
    max_pool(x, p)
}

/// Routes `grad (B, C, Ho, Wo)` to the argmax of every window of `x`.
pub fn max_pool_input_grad(x: &Tensor, p: PoolGeometry, grad: &Tensor) -> Result<Tensor> {
    if cpu_kernel_applies(x) && x.dtype() == grad.dtype() {
        return x
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &cpu::MaxPoolGradCpu(p));
    }
    max_pool_input_grad_generic(x, p, grad)
}

/// [`max_pool_input_grad`] from ordinary tensor ops (every device).
pub fn max_pool_input_grad_generic(x: &Tensor, p: PoolGeometry, grad: &Tensor) -> Result<Tensor> {
    let onehot = argmax_onehot(&windows(x, p)?)?;
    let (_, _, h, w) = x.dims4()?;
    scatter_windows(&onehot.broadcast_mul(&grad.unsqueeze(4)?)?, p, (h, w))
}

/// DeepLIFT's max-pool multiplier (as Captum implements it): the output difference
/// `grad · (y − ȳ)` is sent to the argmax of `x` (the part above the baseline's max) and to
/// the argmax of `x̄` (the part below), then divided by `x − x̄`; where `|x − x̄| < eps` the
/// plain gradient is used. Summed over a window, multiplier × Δx gives grad · Δy exactly,
/// which is what makes DeepLIFT complete through max-pools.
pub fn max_pool_rescale_grad(
    x: &Tensor,
    xref: &Tensor,
    p: PoolGeometry,
    grad: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    // In f16 / bf16 the stabiliser (1e-10) rounds to 0, so |x − x̄| < eps never holds and an
    // exact tie x = x̄ divided 0 by 0: the digits CNN's f16 DeepLIFT was all NaN. The
    // multiplier is computed in f32 and given back in the gradient's dtype.
    if matches!(grad.dtype(), DType::F16 | DType::BF16) {
        let f = |t: &Tensor| t.to_dtype(DType::F32);
        return max_pool_rescale_grad(&f(x)?, &f(xref)?, p, &f(grad)?, eps)?.to_dtype(grad.dtype());
    }
    let (_, _, h, w) = x.dims4()?;
    let (win, win_ref) = (windows(x, p)?, windows(xref, p)?);
    let (y, yref) = (win.max(4)?, win_ref.max(4)?);
    let m = y.maximum(&yref)?;
    let up = (grad * (&m - &yref)?)?.unsqueeze(4)?;
    let down = (grad * (&y - &m)?)?.unsqueeze(4)?;
    let u = (argmax_onehot(&win)?.broadcast_mul(&up)?
        + argmax_onehot(&win_ref)?.broadcast_mul(&down)?)?;
    let u = scatter_windows(&u, p, (h, w))?;
    let dx = (x - xref)?;
    // ≤ so that exact ties fall back to the gradient even when eps is 0.
    let small = dx.abs()?.le(eps)?;
    let safe = small.where_cond(&dx.ones_like()?, &dx)?;
    let plain = scatter_windows(
        &argmax_onehot(&win)?.broadcast_mul(&grad.unsqueeze(4)?)?,
        p,
        (h, w),
    )?;
    small.where_cond(&plain, &(u / safe)?)
}

/// Average over every window (floor mode, no padding), as `nn.AvgPool2d(k, s)`.
pub fn avg_pool(x: &Tensor, p: PoolGeometry) -> Result<Tensor> {
    let k = (p.kernel.0 * p.kernel.1) as f64;
    windows(x, p)?.sum(4)? / k
}

/// Input gradient of [`avg_pool`]: every window gets `grad / k²` on each of its cells.
pub fn avg_pool_input_grad(grad: &Tensor, p: PoolGeometry, hw: (usize, usize)) -> Result<Tensor> {
    let k = p.kernel.0 * p.kernel.1;
    let (b, c, ho, wo) = grad.dims4()?;
    let spread = (grad.unsqueeze(4)?.broadcast_as((b, c, ho, wo, k))? / k as f64)?.contiguous()?;
    scatter_windows(&spread, p, hw)
}
