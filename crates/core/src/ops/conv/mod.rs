//! 2-D convolution: its geometry and one entry per computation, each picking its kernel
//! inside (our CPU kernels for f32 / f64, an f32 detour for half precision on the CPU,
//! Candle's ops elsewhere).

pub(crate) mod cpu;
mod generic;
mod geometry;

pub use generic::{conv2d_input_grad, flipped_kernel};
pub use geometry::ConvGeometry;

use super::in_f32_on_cpu;
use candle_core::{Result, Tensor};

/// `conv(x, w) + b`, differentiable by Candle's autograd (prediction).
pub(crate) fn forward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: ConvGeometry,
) -> Result<Tensor> {
    if let Some(r) = in_f32_on_cpu(x, w, b, |x, w, b| forward(x, w, b, g)) {
        return r;
    }
    let y = x.conv2d(w, g.padding, g.stride, g.dilation, g.groups)?;
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?,
        None => y,
    })
}

/// `conv(x, w) + b` when no autograd is needed: our CPU kernel where it applies.
pub(crate) fn forward_no_grad(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: ConvGeometry,
) -> Result<Tensor> {
    // Half precision runs our f32 kernel.
    if let Some(r) = in_f32_on_cpu(x, w, b, |x, w, b| forward_no_grad(x, w, b, g)) {
        return r;
    }
    if !cpu::applies(x) || x.dtype() != w.dtype() {
        return forward(x, w, b, g);
    }
    match b {
        Some(b) if b.dtype() == x.dtype() => x.contiguous()?.apply_op3_no_bwd(
            &w.contiguous()?,
            &b.contiguous()?,
            &cpu::Conv2dBiasCpu(g),
        ),
        Some(b) => x
            .contiguous()?
            .apply_op2_no_bwd(&w.contiguous()?, &cpu::Conv2dCpu(g))?
            .broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => x
            .contiguous()?
            .apply_op2_no_bwd(&w.contiguous()?, &cpu::Conv2dCpu(g)),
    }
}

/// `(Wx + b, W⁺x + b⁺)` from one im2col and two gemms, for an input that is ≥ 0 (after a
/// ReLU, or pixels in [0, 1]): there z⁺'s normaliser is `W⁺x + b⁺`, which would otherwise
/// cost a second convolution in the backward. `None` where the stacked CPU kernel does not
/// apply or the input has a negative entry.
pub(crate) fn forward_with_positive(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: ConvGeometry,
) -> Result<Option<(Tensor, Tensor)>> {
    let fits = |t: &Tensor| cpu::applies(t) && t.dtype() == x.dtype();
    if g.groups != 1 || !fits(x) || !fits(w) || !b.is_none_or(fits) {
        return Ok(None);
    }
    if x.flatten_all()?
        .min(0)?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        < 0.0
    {
        return Ok(None);
    }
    let cout = w.dim(0)?;
    let b = match b {
        Some(b) => b.clone(),
        None => Tensor::zeros(cout, w.dtype(), w.device())?,
    };
    let wk = Tensor::cat(&[w, &w.relu()?], 0)?;
    let bk = Tensor::cat(&[&b, &b.relu()?], 0)?;
    let both =
        x.contiguous()?
            .apply_op3_no_bwd(&wk, &bk, &cpu::Conv2dStackedCpu { g, parts: 2 })?;
    Ok(Some((both.get(0)?, both.get(1)?)))
}

/// Gradient w.r.t. a conv's input `(…, in_hw)`: the CPU kernel where it applies, else the
/// generic path (a forward convolution of the dilated gradient with the flipped kernel).
pub(crate) fn input_grad(
    grad: &Tensor,
    w: &Tensor,
    g: ConvGeometry,
    in_hw: (usize, usize),
) -> Result<Tensor> {
    if let Some(r) = in_f32_on_cpu(grad, w, None, |grad, w, _| input_grad(grad, w, g, in_hw)) {
        return r;
    }
    if cpu::applies(grad) && grad.dtype() == w.dtype() {
        let op = cpu::Conv2dInputGradCpu { g, in_hw };
        return grad.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &op);
    }
    let (_, _, kh, kw) = w.dims4()?;
    conv2d_input_grad(grad, &flipped_kernel(w, g.groups)?, (kh, kw), g, in_hw)
}

/// `input ⊙ (input gradient of the conv applied to g)`, fused into the CPU kernel; `None`
/// where it does not apply (the caller multiplies).
pub(crate) fn input_grad_times(
    grad: &Tensor,
    w: &Tensor,
    input: &Tensor,
    g: ConvGeometry,
) -> Result<Option<Tensor>> {
    let fits = |t: &Tensor| cpu::applies(t) && t.dtype() == grad.dtype();
    if !(fits(grad) && fits(w) && fits(input)) {
        return Ok(None);
    }
    let op = cpu::Conv2dInputGradTimesCpu { g };
    Ok(Some(grad.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &input.contiguous()?,
        &op,
    )?))
}
