//! Custom backward ops: the mechanism every attribution rule uses.
//!
//! A layer's output `y` is computed with ordinary Candle ops from a *detached* input, so
//! autograd never records the weights. [`boundary`] then re-attaches `y` to the input `x`
//! through a `CustomOp2` whose forward is a plain copy of `y` (generic over the backend
//! storage: the same code on CPU, CUDA and Metal) and whose backward returns only the
//! input gradient, as computed by an [`InputGrad`] rule from ordinary tensor ops. The
//! weights' gradients are never computed: that is the whole point (see PERFORMANCE.md).

/// The CPU storage `$body` makes from the f32 or f64 elements of the inputs (all of one
/// dtype), each bound to its name after slicing by its layout: the dtype dispatch every CPU
/// kernel needs, written once.
macro_rules! float_kernel {
    ($what:expr, [$(($s:expr, $l:expr) => $v:ident),+ $(,)?], $body:expr) => {
        match ($($s,)+) {
            ($(candle_core::CpuStorage::F32($v),)+) => {
                $(let $v = $crate::ops::slice($v, $l, $what)?;)+
                candle_core::CpuStorage::F32($body)
            }
            ($(candle_core::CpuStorage::F64($v),)+) => {
                $(let $v = $crate::ops::slice($v, $l, $what)?;)+
                candle_core::CpuStorage::F64($body)
            }
            _ => candle_core::bail!("{}: f32 or f64 only, one dtype", $what),
        }
    };
}
pub(crate) use float_kernel;

pub(crate) mod activation;
pub(crate) mod attention;
pub mod conv;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
pub(crate) mod fast_math;
pub(crate) mod gemm;
pub(crate) mod layer_norm;
pub(crate) mod linear;
pub mod pool;
pub(crate) mod stabilize;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

/// The elements of a contiguous layout of `s`; an error naming `what` otherwise (our CPU
/// kernels are given contiguous tensors by their callers).
pub(crate) fn slice<'a, T>(s: &'a [T], l: &Layout, what: &str) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// What the backward of a boundary computes: the (possibly modified) gradient w.r.t. the
/// layer input, given the input `x` (detached), the forward output `y`, and the incoming
/// gradient `grad` (same shape as `y`).
pub trait InputGrad: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn input_grad(&self, x: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor>;
}

struct Boundary<G: InputGrad>(G);

impl<G: InputGrad> CustomOp2 for Boundary<G> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    // `affine(1, 0)` is a layout-aware copy that exists on every backend.
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((s2.affine(l2, 1.0, 0.0)?, l2.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        Ok((s2.affine(l2, 1.0, 0.0)?, l2.shape().clone()))
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        _: &candle_core::MetalStorage,
        _: &Layout,
        s2: &candle_core::MetalStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, Shape)> {
        Ok((s2.affine(l2, 1.0, 0.0)?, l2.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = self.0.input_grad(&x.detach(), y, grad)?;
        Ok((Some(dx), None))
    }
}

/// Returns `y` in the forward pass, and `rule.input_grad(x, y, grad)` as the gradient of `x`
/// in the backward pass. `y` must have been computed from `x.detach()` (or from anything
/// that does not track gradients).
pub fn boundary<G: InputGrad>(x: &Tensor, y: &Tensor, rule: G) -> candle_core::Result<Tensor> {
    if !x.track_op() {
        // Nothing upstream needs a gradient: skip the copy.
        return Ok(y.clone());
    }
    x.apply_op2_arc(&y.detach(), std::sync::Arc::new(Box::new(Boundary(rule))))
}

/// A CPU kernel computing an op's output from its inputs (forward only).
pub(crate) trait CpuKernel: Send + Sync + 'static {
    fn cpu_fwd(&self, args: &[(&CpuStorage, &Layout)]) -> candle_core::Result<(CpuStorage, Shape)>;
}

/// A boundary op that computes its own output with a CPU kernel instead of copying one
/// computed beforehand (the copy in [`boundary`] costs a pass over every layer's output).
/// The gradient goes to the first argument only; the others are parameters.
struct Fused<K: CpuKernel, G: InputGrad>(K, G);

impl<K: CpuKernel, G: InputGrad> candle_core::CustomOp1 for Fused<K, G> {
    fn name(&self) -> &'static str {
        self.1.name()
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.0.cpu_fwd(&[(s, l)])
    }
    fn bwd(&self, x: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.1.input_grad(&x.detach(), y, grad)?))
    }
}

impl<K: CpuKernel, G: InputGrad> candle_core::CustomOp3 for Fused<K, G> {
    fn name(&self) -> &'static str {
        self.1.name()
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.0.cpu_fwd(&[(s1, l1), (s2, l2), (s3, l3)])
    }
    fn bwd(
        &self,
        x: &Tensor,
        _: &Tensor,
        _: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Ok((Some(self.1.input_grad(&x.detach(), y, grad)?), None, None))
    }
}

/// `kernel(x)` in the forward, `rule.input_grad` in the backward (CPU tensors only).
pub(crate) fn fused1<K: CpuKernel, G: InputGrad>(
    x: &Tensor,
    kernel: K,
    rule: G,
) -> candle_core::Result<Tensor> {
    let op = Fused(kernel, rule);
    if x.track_op() {
        x.apply_op1_arc(std::sync::Arc::new(Box::new(op)))
    } else {
        x.apply_op1_no_bwd(&op)
    }
}

/// `kernel(x, p1, p2)` in the forward, `rule.input_grad` for `x` in the backward (CPU only;
/// `p1`, `p2` get no gradient).
pub(crate) fn fused3<K: CpuKernel, G: InputGrad>(
    x: &Tensor,
    p1: &Tensor,
    p2: &Tensor,
    kernel: K,
    rule: G,
) -> candle_core::Result<Tensor> {
    let op = Fused(kernel, rule);
    // Detached, so that Candle's backward does not wait for gradients of parameters that
    // are `Var`s (a model being trained), which this op never gives.
    let (p1, p2) = (&p1.detach(), &p2.detach());
    if x.track_op() {
        x.apply_op3_arc(p1, p2, std::sync::Arc::new(Box::new(op)))
    } else {
        x.apply_op3_no_bwd(p1, p2, &op)
    }
}

/// The rule of an op run without a backward (`forward3`): never called.
struct NoBackward;

impl InputGrad for NoBackward {
    fn name(&self) -> &'static str {
        "candle-explain-forward"
    }
    fn input_grad(&self, _: &Tensor, _: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        candle_core::bail!("a forward-only op has no backward")
    }
}

/// `kernel(x, p1, p2)`, recording no backward (CPU tensors only).
pub(crate) fn forward3<K: CpuKernel>(
    x: &Tensor,
    p1: &Tensor,
    p2: &Tensor,
    kernel: K,
) -> candle_core::Result<Tensor> {
    x.apply_op3_no_bwd(p1, p2, &Fused(kernel, NoBackward))
}

/// Candle's CPU matmul has no bf16 / f16: for a half-precision `x` on the CPU, `f` runs on f32
/// copies of `x`, `w` and `b` (f32 accumulation) and the result is rounded back to `x`'s
/// dtype. `None` elsewhere (the caller computes as usual).
pub(crate) fn in_f32_on_cpu(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    f: impl FnOnce(&Tensor, &Tensor, Option<&Tensor>) -> candle_core::Result<Tensor>,
) -> Option<candle_core::Result<Tensor>> {
    if !(x.device().is_cpu() && is_half(x.dtype())) {
        return None;
    }
    let up = |t: &Tensor| t.to_dtype(DType::F32);
    Some((|| {
        f(&up(x)?, &up(w)?, b.map(up).transpose()?.as_ref())?.to_dtype(x.dtype())
    })())
}

/// f16 or bf16.
pub(crate) fn is_half(dt: DType) -> bool {
    matches!(dt, DType::BF16 | DType::F16)
}
