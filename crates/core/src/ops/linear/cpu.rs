//! `y = x·Wᵀ + b` over the last dimension of `x` as one gemm on the CPU, the bias written
//! into the output before the gemm accumulates (no separate bias pass), used as the kernel of
//! the linear layer's boundary op (no copy of the output either).

use crate::ops::gemm::{matmul, Parallelism, View};
use crate::ops::slice;
use crate::ops::CpuKernel;
use candle_core::{CpuStorage, Layout, Result, Shape, WithDType};

pub(crate) struct LinearCpu;

fn forward<T: WithDType>(x: &[T], w: &[T], b: &[T], (m, k, n): (usize, usize, usize)) -> Vec<T> {
    let mut y = Vec::with_capacity(m * n);
    for _ in 0..m {
        y.extend_from_slice(b);
    }
    // Small products lose more to thread start-up than they gain.
    let par = if m * n * k >= 1 << 18 {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: y is (m × n) row-major, x (m × k) row-major, and Wᵀ is read from the (n × k)
    // row-major W through its strides (column step k, row step 1); all lie in their buffers.
    unsafe {
        matmul(
            (m, n, k),
            View::rows(y.as_mut_ptr(), n),
            View::rows(x.as_ptr(), k),
            View::transposed(w.as_ptr(), k),
            true,
            1.0,
            par,
        );
    }
    y
}

impl CpuKernel for LinearCpu {
    /// Arguments: `x (…, k)`, `w (n, k)`, `b (n,)`.
    fn cpu_fwd(&self, args: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let &[(sx, lx), (sw, lw), (sb, lb)] = args else {
            candle_core::bail!("linear kernel: expected x, w, b")
        };
        let (&[n, k], Some(&kx)) = (lw.dims(), lx.dims().last()) else {
            candle_core::bail!(
                "linear kernel: w must be (out, in) and x non-scalar, got {:?} and {:?}",
                lw.dims(),
                lx.dims()
            )
        };
        if kx != k || lb.dims() != [n] {
            candle_core::bail!("linear: x {:?}, w {:?} and b {:?} do not fit (x's last dimension must be w's second, b must be (out,))", lx.dims(), lw.dims(), lb.dims())
        }
        let m = lx.shape().elem_count() / k.max(1);
        let mut dims = lx.dims().to_vec();
        *dims.last_mut().expect("non-scalar") = n;
        let mk = (m, k, n);
        let y = match (sx, sw, sb) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                CpuStorage::F32(forward(
                    slice(x, lx, "x")?,
                    slice(w, lw, "w")?,
                    slice(b, lb, "b")?,
                    mk,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(forward(
                    slice(x, lx, "x")?,
                    slice(w, lw, "w")?,
                    slice(b, lb, "b")?,
                    mk,
                ))
            }
            _ => candle_core::bail!("linear kernel: f32 or f64, one dtype"),
        };
        Ok((y, Shape::from(dims)))
    }
}
