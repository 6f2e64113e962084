//! CPU kernels for max-pooling: forward, and the backward that routes each window's gradient
//! to its first maximum (recomputed from the input, so nothing is stored between passes).
//! One `(batch, channel)` plane per task, in parallel.

use super::geometry::PoolGeometry;
use crate::ops::slice;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, WithDType};
use rayon::prelude::*;

fn plane_dims(l: &Layout, p: PoolGeometry) -> Result<(usize, usize, usize, usize, usize)> {
    let (b, c, h, w) = l.shape().dims4()?;
    let (ho, wo) = p.out_hw(h, w)?;
    Ok((b * c, h, w, ho, wo))
}

/// Index (within the plane) of the first maximum of window `(oh, ow)`.
#[inline]
fn argmax<T: WithDType>(x: &[T], w: usize, p: PoolGeometry, oh: usize, ow: usize) -> usize {
    let (i0, j0) = (oh * p.stride.0, ow * p.stride.1);
    let mut best = i0 * w + j0;
    for i in i0..i0 + p.kernel.0 {
        for j in j0..j0 + p.kernel.1 {
            if x[i * w + j] > x[best] {
                best = i * w + j;
            }
        }
    }
    best
}

fn forward<T: WithDType>(
    x: &[T],
    n: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    p: PoolGeometry,
) -> Vec<T> {
    let mut y = vec![T::from_f64(0.0); n * ho * wo];
    // Planes are small: hand rayon a few thousand outputs per task, not one plane.
    let per_task = (4096 / (ho * wo).max(1)).max(1);
    y.par_chunks_mut(ho * wo * per_task)
        .enumerate()
        .for_each(|(t, ys)| {
            for (j, yp) in ys.chunks_mut(ho * wo).enumerate() {
                let k = t * per_task + j;
                let xp = &x[k * h * w..(k + 1) * h * w];
                if p.kernel == (2, 2) && p.stride == (2, 2) {
                    // The common 2×2 pool, branch-light: the first maximum's value, as `argmax`.
                    for oh in 0..ho {
                        let (r0, r1) = (
                            &xp[2 * oh * w..][..2 * wo],
                            &xp[(2 * oh + 1) * w..][..2 * wo],
                        );
                        for (ow, out) in yp[oh * wo..(oh + 1) * wo].iter_mut().enumerate() {
                            let mut m = r0[2 * ow];
                            for v in [r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]] {
                                if v > m {
                                    m = v;
                                }
                            }
                            *out = m;
                        }
                    }
                    continue;
                }
                for oh in 0..ho {
                    for ow in 0..wo {
                        yp[oh * wo + ow] = xp[argmax(xp, w, p, oh, ow)];
                    }
                }
            }
        });
    y
}

#[allow(clippy::too_many_arguments)]
fn backward<T: WithDType>(
    x: &[T],
    g: &[T],
    n: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    p: PoolGeometry,
) -> Vec<T> {
    if p.kernel == p.stride {
        return backward_tiled(x, g, n, h, w, ho, wo, p);
    }
    let mut dx = vec![T::from_f64(0.0); n * h * w];
    dx.par_chunks_mut(h * w).enumerate().for_each(|(k, dp)| {
        let xp = &x[k * h * w..(k + 1) * h * w];
        let gp = &g[k * ho * wo..(k + 1) * ho * wo];
        for oh in 0..ho {
            for ow in 0..wo {
                dp[argmax(xp, w, p, oh, ow)] += gp[oh * wo + ow];
            }
        }
    });
    dx
}

/// Non-overlapping windows tile the plane: every window writes its cells once (the gradient
/// at its first maximum, zeros elsewhere), rows by rows, without a scatter.
#[allow(clippy::too_many_arguments)]
fn backward_tiled<T: WithDType>(
    x: &[T],
    g: &[T],
    n: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    p: PoolGeometry,
) -> Vec<T> {
    let (kh, kw) = p.kernel;
    let zero = T::from_f64(0.0);
    let mut dx = vec![zero; n * h * w];
    dx.par_chunks_mut(h * w).enumerate().for_each(|(k, dp)| {
        let xp = &x[k * h * w..(k + 1) * h * w];
        let gp = &g[k * ho * wo..(k + 1) * ho * wo];
        for oh in 0..ho {
            for ow in 0..wo {
                let (i0, j0) = (oh * kh, ow * kw);
                let mut best = i0 * w + j0;
                let mut bv = xp[best];
                for i in i0..i0 + kh {
                    let row = &xp[i * w + j0..i * w + j0 + kw];
                    for (j, v) in row.iter().enumerate() {
                        if *v > bv {
                            bv = *v;
                            best = i * w + j0 + j;
                        }
                    }
                }
                dp[best] = gp[oh * wo + ow];
            }
        }
    });
    dx
}

pub(crate) struct MaxPoolCpu(pub PoolGeometry);

impl CustomOp1 for MaxPoolCpu {
    fn name(&self) -> &'static str {
        "candle-explain-max-pool-cpu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, h, w, ho, wo) = plane_dims(l, self.0)?;
        let (b, c, _, _) = l.shape().dims4()?;
        let shape = Shape::from((b, c, ho, wo));
        Ok(match s {
            CpuStorage::F32(x) => (
                CpuStorage::F32(forward(
                    slice(x, l, "max-pool kernel input")?,
                    n,
                    h,
                    w,
                    ho,
                    wo,
                    self.0,
                )),
                shape,
            ),
            CpuStorage::F64(x) => (
                CpuStorage::F64(forward(
                    slice(x, l, "max-pool kernel input")?,
                    n,
                    h,
                    w,
                    ho,
                    wo,
                    self.0,
                )),
                shape,
            ),
            _ => candle_core::bail!("max-pool cpu kernel: f32 or f64 only"),
        })
    }
}

/// `op(x, grad)`: the input gradient of max-pooling `x`.
pub(crate) struct MaxPoolGradCpu(pub PoolGeometry);

impl CustomOp2 for MaxPoolGradCpu {
    fn name(&self) -> &'static str {
        "candle-explain-max-pool-grad-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, h, w, ho, wo) = plane_dims(l1, self.0)?;
        if l2.shape().elem_count() != n * ho * wo {
            candle_core::bail!(
                "max-pool grad: gradient {:?} does not match the output of {:?}",
                l2.dims(),
                l1.dims()
            )
        }
        let shape = l1.shape().clone();
        Ok((
            float_kernel!("max-pool grad cpu kernel", [(s1, l1) => x, (s2, l2) => g], backward(
                x,
                g,
                n,
                h,
                w,
                ho,
                wo,
                self.0,
            )),
            shape,
        ))
    }
}
