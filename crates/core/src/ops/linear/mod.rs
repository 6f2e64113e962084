//! The linear layer `x · wᵀ + b` over the last dimension: one entry per computation, each
//! picking its kernel inside (our fused CPU gemm with the bias for f32 / f64, an f32 detour
//! for half precision on the CPU, Candle's matmul elsewhere).

pub(crate) mod cpu;

use super::{boundary, fused3, in_f32_on_cpu, InputGrad};
use candle_core::{Result, Tensor};

/// `(x, w, b)` ready for the fused CPU kernel (contiguous, one dtype of f32 / f64, a zero
/// bias when there is none), or `None` where it does not apply.
fn cpu_args(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let fits = |t: &Tensor| super::conv::cpu::applies(t) && t.dtype() == x.dtype();
    if !fits(x) || !fits(w) || !b.is_none_or(fits) || x.rank() == 0 {
        return Ok(None);
    }
    let b = match b {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
    };
    Ok(Some((x.contiguous()?, w.contiguous()?, b)))
}

/// `x · wᵀ + b`; differentiable by Candle's autograd when an argument tracks a gradient.
pub(crate) fn forward(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    // Forward only (nothing tracks a gradient): the fused kernel, bias included.
    if !x.track_op() && !w.track_op() && !b.is_some_and(|b| b.track_op()) {
        if let Some((x, w, b)) = cpu_args(x, w, b)? {
            return super::forward3(&x, &w, &b, cpu::LinearCpu);
        }
    }
    if let Some(r) = in_f32_on_cpu(x, w, b, forward) {
        return r;
    }
    // One (rows × in)·(in × out) gemm over all leading dimensions: a broadcast batched
    // matmul runs one small gemm per batch entry.
    let y = match x.rank() {
        2 => x.matmul(&w.t()?)?,
        _ => {
            let mut dims = x.dims().to_vec();
            let rows = x.elem_count() / dims[dims.len() - 1];
            let y = x.contiguous()?.reshape((rows, ()))?.matmul(&w.t()?)?;
            *dims.last_mut().expect("rank ≥ 3") = w.dim(0)?;
            y.reshape(dims)?
        }
    };
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// `x · wᵀ + b` whose backward is `rule` (the weights get no gradient): computed by the fused
/// kernel inside the op on the CPU, copied through a boundary elsewhere.
pub(crate) fn forward_with_rule(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    rule: impl InputGrad,
) -> Result<Tensor> {
    match cpu_args(x, w, b)? {
        Some((x, w, b)) => fused3(&x, &w, &b, cpu::LinearCpu, rule),
        None => boundary(x, &forward(&x.detach(), w, b)?, rule),
    }
}

/// `g · w`: the gradient w.r.t. the input of `⟨x · wᵀ, g⟩` (shaped like `x`).
pub(crate) fn input_grad(g: &Tensor, w: &Tensor, x: &Tensor) -> Result<Tensor> {
    if let Some(r) = in_f32_on_cpu(g, w, None, |g, w, _| input_grad(g, w, x)) {
        return r;
    }
    match g.rank() {
        2 => g.matmul(w),
        _ => {
            let rows = g.elem_count() / g.dim(candle_core::D::Minus1)?;
            g.contiguous()?
                .reshape((rows, ()))?
                .matmul(w)?
                .reshape(x.shape())
        }
    }
}
