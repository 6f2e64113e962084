//! LayerNorm's input gradient on the CPU in one pass per row:
//! `dx = (a − mean(a) − x̂ · mean(a ⊙ x̂)) / σ` with `a = γ ⊙ dy` (exact), or
//! `dx = (a − mean(a)) / σ` with σ held constant (the detached factor of gradient contexts).
//!
//! From tensor ops the exact backward is Candle's autograd through about ten ops over the
//! whole activation; on a (200, 64, 384) activation it took 170 ms against 25 ms for the
//! forward. Rows run in parallel; sums accumulate in f64.

use super::slice;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, WithDType};
use rayon::prelude::*;

/// op(x, γ, dy) → dx for `y = γ ⊙ (x − μ)/σ + β` over the last dimension.
pub(crate) struct LayerNormInputGradCpu {
    pub eps: f64,
    /// Differentiate σ too (`false`: σ constant).
    pub exact: bool,
}

fn input_grad<T: WithDType>(x: &[T], gamma: &[T], dy: &[T], eps: f64, exact: bool) -> Vec<T> {
    let h = gamma.len();
    let mut dx = vec![T::from_f64(0.0); x.len()];
    dx.par_chunks_mut(h)
        .zip(x.par_chunks(h).zip(dy.par_chunks(h)))
        .for_each(|(o, (x, dy))| {
            let n = h as f64;
            let mean = x.iter().map(|v| v.to_f64()).sum::<f64>() / n;
            let var = x.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            let (mut m1, mut m2) = (0.0, 0.0);
            for ((xv, g), d) in x.iter().zip(gamma).zip(dy) {
                let a = g.to_f64() * d.to_f64();
                m1 += a;
                m2 += a * (xv.to_f64() - mean) * inv;
            }
            let (m1, m2) = (m1 / n, if exact { m2 / n } else { 0.0 });
            for (((v, xv), g), d) in o.iter_mut().zip(x).zip(gamma).zip(dy) {
                let xhat = (xv.to_f64() - mean) * inv;
                *v = T::from_f64((g.to_f64() * d.to_f64() - m1 - xhat * m2) * inv);
            }
        });
    dx
}

impl CustomOp3 for LayerNormInputGradCpu {
    fn name(&self) -> &'static str {
        "candle-explain-layer-norm-input-grad-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = l2.shape().elem_count();
        if l1.dims().last() != Some(&h) || l1.shape() != l3.shape() {
            candle_core::bail!(
                "layer norm backward: x {:?}, γ {:?} and dy {:?} do not match",
                l1.dims(),
                l2.dims(),
                l3.dims()
            )
        }
        let shape = l1.shape().clone();
        Ok(match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(g), CpuStorage::F32(d)) => (
                CpuStorage::F32(input_grad(
                    slice(x, l1, "x")?,
                    slice(g, l2, "γ")?,
                    slice(d, l3, "dy")?,
                    self.eps,
                    self.exact,
                )),
                shape,
            ),
            (CpuStorage::F64(x), CpuStorage::F64(g), CpuStorage::F64(d)) => (
                CpuStorage::F64(input_grad(
                    slice(x, l1, "x")?,
                    slice(g, l2, "γ")?,
                    slice(d, l3, "dy")?,
                    self.eps,
                    self.exact,
                )),
                shape,
            ),
            _ => candle_core::bail!("layer norm backward kernel: f32 or f64 only, one dtype"),
        })
    }
}
