//! `r / (z + ε·sign z)` (sign 0 = +1): the normalisation of every LRP rule, as one pass on
//! the CPU (five tensor-op passes otherwise).

use super::activation::relu_cpu::map2;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

/// `z + ε·sign(z)` with `sign(0) = +1`: never closer to zero than ε.
pub(crate) fn stabilize(z: &Tensor, eps: f64) -> Result<Tensor> {
    let sign = z.ge(0.0)?.to_dtype(z.dtype())?.affine(2.0, -1.0)?;
    z + (sign * eps)?
}

/// `r / stabilize(z, eps)`, in one pass on the CPU.
pub(crate) fn stabilized_div(r: &Tensor, z: &Tensor, eps: f64) -> Result<Tensor> {
    if r.device().is_cpu()
        && r.dtype() == z.dtype()
        && r.dims() == z.dims()
        && matches!(r.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    {
        return r
            .contiguous()?
            .apply_op2_no_bwd(&z.contiguous()?, &StabilizedDivCpu(eps));
    }
    r / stabilize(z, eps)?
}

/// `op(r, z) = r / (z + ε·sign z)` (sign 0 = +1) in one pass: the LRP rules' normalisation,
/// five tensor-op passes otherwise.
pub(crate) struct StabilizedDivCpu(pub f64);

impl CustomOp2 for StabilizedDivCpu {
    fn name(&self) -> &'static str {
        "candle-explain-stabilized-div-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "stabilized division: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            )
        }
        fn div<T: WithDType>(r: &[T], z: &[T], eps: f64) -> Vec<T> {
            let (zero, eps) = (T::from_f64(0.0), T::from_f64(eps));
            map2(z, r, move |z, r| {
                r / if z >= zero { z + eps } else { z - eps }
            })
        }
        let shape = l1.shape().clone();
        Ok((
            float_kernel!("stabilized division kernel", [(s1, l1) => r, (s2, l2) => z], div(
                r,
                z,
                self.0,
            )),
            shape,
        ))
    }
}
