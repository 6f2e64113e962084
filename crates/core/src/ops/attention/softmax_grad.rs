//! The softmax's backward over the last dimension, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, as one
//! op (the CPU loop here, the CUDA kernel with the `cuda` feature). Attention's gradient
//! contexts use it where the fused CPU attention op does not apply (CUDA, half precision):
//! from tensor ops it is four passes and three buffers of `(…, Lq, Lk)`.

use crate::ops::slice;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

pub(crate) struct SoftmaxGrad;

fn grad<T: WithDType>(p: &[T], dp: &[T], cols: usize) -> Vec<T> {
    let mut ds = vec![T::zero(); p.len()];
    ds.par_chunks_mut(cols)
        .zip(p.par_chunks(cols).zip(dp.par_chunks(cols)))
        .for_each(|(ds, (p, dp))| {
            let s = p
                .iter()
                .zip(dp)
                .map(|(a, b)| a.to_f64() * b.to_f64())
                .sum::<f64>();
            for ((o, p), dp) in ds.iter_mut().zip(p).zip(dp) {
                *o = T::from_f64(p.to_f64() * (dp.to_f64() - s));
            }
        });
    ds
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "candle-explain-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let cols = check(l1, l2)?;
        let ds = match (s1, s2) {
            (CpuStorage::F32(p), CpuStorage::F32(d)) => {
                CpuStorage::F32(grad(slice(p, l1, "P")?, slice(d, l2, "dP")?, cols))
            }
            (CpuStorage::F64(p), CpuStorage::F64(d)) => {
                CpuStorage::F64(grad(slice(p, l1, "P")?, slice(d, l2, "dP")?, cols))
            }
            _ => candle_core::bail!("softmax backward on the CPU: f32 or f64, one dtype"),
        };
        Ok((ds, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        check(l1, l2)?;
        crate::ops::cuda::softmax_grad((s1, l1), (s2, l2))
    }
}

fn check(lp: &Layout, ld: &Layout) -> Result<usize> {
    match lp.dims().last() {
        Some(&cols) if cols > 0 && lp.shape() == ld.shape() => Ok(cols),
        _ => candle_core::bail!(
            "softmax backward: P {:?} and dP {:?} must have one non-empty shape",
            lp.dims(),
            ld.dims()
        ),
    }
}

/// `P ⊙ (dP − rowsum(dP ⊙ P))` for `P`, `dP` of one shape: the op on the CPU (f32 / f64) and
/// on CUDA (with the feature), tensor ops elsewhere.
pub(crate) fn softmax_grad(p: &Tensor, dp: &Tensor) -> Result<Tensor> {
    let fused = match p.device() {
        candle_core::Device::Cpu => {
            matches!(p.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
        }
        candle_core::Device::Cuda(_) => cfg!(feature = "cuda") && p.dtype().is_float(),
        _ => false,
    };
    if fused && p.dtype() == dp.dtype() {
        return p
            .contiguous()?
            .apply_op2_no_bwd(&dp.contiguous()?, &SoftmaxGrad);
    }
    p * dp.broadcast_sub(&(dp * p)?.sum_keepdim(candle_core::D::Minus1)?)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, D};

    #[test]
    fn the_op_equals_the_tensor_ops() -> Result<()> {
        let dev = Device::Cpu;
        for dt in [DType::F32, DType::F64] {
            let p = candle_nn::ops::softmax(&Tensor::randn(0f32, 2., (3, 4, 7), &dev)?, D::Minus1)?
                .to_dtype(dt)?;
            let dp = Tensor::randn(0f32, 1., (3, 4, 7), &dev)?.to_dtype(dt)?;
            let want = (&p * dp.broadcast_sub(&(&dp * &p)?.sum_keepdim(D::Minus1)?)?)?;
            let got = softmax_grad(&p, &dp)?;
            let err = (got - &want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_dtype(DType::F64)?;
            assert!(err.to_scalar::<f64>()? < 1e-6, "{dt:?}: {err}");
            // The mismatched shapes are an error, not a panic.
            assert!(p
                .apply_op2_no_bwd(&dp.narrow(2, 0, 6)?.contiguous()?, &SoftmaxGrad)
                .is_err());
        }
        Ok(())
    }
}
