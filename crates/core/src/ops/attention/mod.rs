//! Scaled dot-product attention on any device, from Candle's tensor ops, as one boundary:
//! the forward is computed from detached inputs (the fused softmax), and one `CustomOp3`
//! attaches it to q, k and v and gives all three their closed-form gradients at once
//! (`dv = Pᵀ g`, `dS = softmax_grad(P, g vᵀ)`, `dq = dS k·scale`, `dk = dSᵀ q·scale`).
//! The CPU in f32 / f64 has its own kernel (`cpu_attention`); this is the path of CUDA,
//! Metal and half precision. One op instead of one boundary per input saves two copies of
//! the output, a zero tensor and two sums per layer.

pub(crate) mod cpu;
pub(crate) mod softmax_grad;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use softmax_grad::softmax_grad;

struct AttentionBoundary {
    /// The forward's output and weights, from detached inputs.
    y: Tensor,
    p: Tensor,
    scale: f64,
}

/// The attention's output, copied out of its storage (`affine(1, 0)`: a layout-aware copy
/// on every backend): a custom op must return new storage.
macro_rules! copy_y {
    ($self:ident, $variant:ident) => {{
        let (s, l) = $self.y.storage_and_layout();
        match &*s {
            Storage::$variant(c) => Ok((c.affine(l, 1.0, 0.0)?, l.shape().clone())),
            _ => candle_core::bail!("attention: q, k, v and the output on different devices"),
        }
    }};
}

impl CustomOp3 for AttentionBoundary {
    fn name(&self) -> &'static str {
        "candle-explain-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        copy_y!(self, Cpu)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        copy_y!(self, Cuda)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        _: &candle_core::MetalStorage,
        _: &Layout,
        _: &candle_core::MetalStorage,
        _: &Layout,
        _: &candle_core::MetalStorage,
        _: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        copy_y!(self, Metal)
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (g, p) = (g.contiguous()?, &self.p);
        let dv = p.t()?.contiguous()?.matmul(&g)?;
        let dp = g.matmul(&v.detach().t()?.contiguous()?)?;
        let ds = softmax_grad(p, &dp)?;
        let dq = (ds.matmul(&k.detach().contiguous()?)? * self.scale)?;
        let dk = (ds.t()?.contiguous()?.matmul(&q.detach().contiguous()?)? * self.scale)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// The weights `softmax(q kᵀ·scale + mask)`: through Candle's fused softmax, which has no
/// backward, or (`differentiable`) the composed one.
pub(crate) fn weights(
    q: &Tensor,
    k: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    differentiable: bool,
) -> Result<Tensor> {
    let mut s = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
    if let Some(m) = mask {
        s = s.broadcast_add(m)?;
    }
    if differentiable {
        candle_nn::ops::softmax(&s, candle_core::D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(&s.contiguous()?)
    }
}

/// `softmax(q kᵀ·scale + mask) v` over the last two dimensions, with the exact gradient of
/// all three inputs (`mask` additive, broadcasting to the scores).
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let p = weights(&q.detach(), &k.detach(), mask, scale, false)?;
    let y = p.matmul(&v.detach().contiguous()?)?;
    if ![q, k, v].iter().any(|t| t.track_op()) {
        return Ok(y);
    }
    let op = AttentionBoundary { y, p, scale };
    q.apply_op3_arc(k, v, std::sync::Arc::new(Box::new(op)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var, D};

    /// Forward and the three gradients equal Candle's autograd through the same formula, in
    /// f64 on the CPU (the path CUDA takes), with a row-varying mask and strided inputs.
    #[test]
    fn equals_autograd_through_the_composed_ops() -> Result<()> {
        let dev = Device::Cpu;
        let r = |s: &[usize]| Tensor::randn(0f64, 1.0, s, &dev);
        let q = Var::from_tensor(&r(&[2, 5, 3, 4])?.transpose(1, 2)?)?;
        let k = Var::from_tensor(&r(&[2, 6, 3, 4])?.transpose(1, 2)?)?;
        let v = Var::from_tensor(&r(&[2, 6, 3, 7])?.transpose(1, 2)?)?;
        let mut m = vec![0f64; 30];
        m[3] = -1e4;
        m[17] = -1e4;
        let mask = Tensor::from_vec(m, (1, 1, 5, 6), &dev)?;
        let readout = r(&[2, 3, 5, 7])?;
        let grads = |y: &Tensor| -> Result<Vec<Tensor>> {
            let g = (y * &readout)?.sum_all()?.backward()?;
            [&q, &k, &v]
                .iter()
                .map(|t| {
                    g.get(t.as_tensor())
                        .cloned()
                        .ok_or_else(|| candle_core::Error::Msg("no gradient".into()))
                })
                .collect()
        };
        let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
        let y = attention(qt, kt, vt, Some(&mask), 0.6)?;
        let s = (qt.matmul(&kt.t()?)? * 0.6)?.broadcast_add(&mask)?;
        let y_ref = candle_nn::ops::softmax(&s, D::Minus1)?.matmul(vt)?;
        let close = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()
        };
        assert!(close(&y, &y_ref)? < 1e-12);
        for (a, b) in grads(&y)?.iter().zip(grads(&y_ref)?.iter()) {
            assert!(close(a, b)? < 1e-12);
        }
        Ok(())
    }
}
