//! Training-mode BatchNorm on the CPU as one op: the forward computes each channel's batch
//! statistics and normalises in two passes; the backward is the closed form
//! `dx = γ·σ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂))`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
//!
//! Written with Candle ops the same layer records about a dozen graph nodes over the whole
//! activation; measured on a (128, 16, 28, 28) batch, forward + backward took 187 ms against
//! 50 ms for the conv before it. Channels run in parallel; sums accumulate in f64.

use crate::ops::{float_kernel, slice};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Per-channel batch mean and biased variance, kept by the forward for the backward and for
/// the caller's running averages.
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchStats {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
}

/// `(x − μ)/√(σ² + ε)·γ + β` over `x (B, C, …)` contiguous, with `γ, β (C)`.
pub(crate) struct BatchNormTrainCpu {
    pub eps: f64,
    pub stats: Arc<Mutex<BatchStats>>,
}

/// `(batch, channels, values per channel per item)` of `x`.
fn geometry(l: &Layout, c_expected: usize) -> Result<(usize, usize, usize)> {
    let d = l.dims();
    if d.len() < 2 || d[1] != c_expected {
        candle_core::bail!("batch norm: input {d:?} does not have {c_expected} channels on axis 1")
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// Runs `f(channel, item's block)` over channel `c`'s values.
fn blocks<T>(x: &[T], c: usize, (b, nc, hw): (usize, usize, usize)) -> impl Iterator<Item = &[T]> {
    (0..b).map(move |i| &x[(i * nc + c) * hw..][..hw])
}

fn stats<T: WithDType>(x: &[T], geo: (usize, usize, usize)) -> BatchStats {
    let n = (geo.0 * geo.2) as f64;
    let per: Vec<(f64, f64)> = (0..geo.1)
        .into_par_iter()
        .map(|c| {
            let mean = blocks(x, c, geo)
                .flat_map(|s| s.iter())
                .map(|v| v.to_f64())
                .sum::<f64>()
                / n;
            let var = blocks(x, c, geo)
                .flat_map(|s| s.iter())
                .map(|v| (v.to_f64() - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, var)
        })
        .collect();
    BatchStats {
        mean: per.iter().map(|p| p.0).collect(),
        var: per.iter().map(|p| p.1).collect(),
    }
}

fn forward<T: WithDType>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    st: &BatchStats,
    eps: f64,
    geo: (usize, usize, usize),
) -> Vec<T> {
    let (b, nc, hw) = geo;
    let mut y = vec![T::from_f64(0.0); x.len()];
    y.par_chunks_mut(hw).enumerate().for_each(|(row, out)| {
        let c = row % nc;
        let scale = gamma[c].to_f64() / (st.var[c] + eps).sqrt();
        let shift = beta[c].to_f64() - st.mean[c] * scale;
        let (scale, shift) = (T::from_f64(scale), T::from_f64(shift));
        for (o, v) in out.iter_mut().zip(&x[row * hw..][..hw]) {
            *o = *v * scale + shift;
        }
    });
    debug_assert_eq!(y.len(), b * nc * hw);
    y
}

impl CustomOp3 for BatchNormTrainCpu {
    fn name(&self) -> &'static str {
        "candle-explain-batch-norm-train-cpu"
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
        let c = l2.shape().elem_count();
        let geo = geometry(l1, c)?;
        if l3.shape().elem_count() != c {
            candle_core::bail!(
                "batch norm: bias {:?} does not match weight {:?}",
                l3.dims(),
                l2.dims()
            )
        }
        macro_rules! run {
            ($x:expr, $g:expr, $b:expr, $variant:ident) => {{
                let x = slice($x, l1, "x")?;
                let st = stats(x, geo);
                let y = forward(
                    x,
                    slice($g, l2, "weight")?,
                    slice($b, l3, "bias")?,
                    &st,
                    self.eps,
                    geo,
                );
                *self.stats.lock().map_err(|_| {
                    candle_core::Error::Msg("batch norm: poisoned statistics".into())
                })? = st;
                CpuStorage::$variant(y)
            }};
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(g), CpuStorage::F32(b)) => run!(x, g, b, F32),
            (CpuStorage::F64(x), CpuStorage::F64(g), CpuStorage::F64(b)) => run!(x, g, b, F64),
            _ => candle_core::bail!("batch norm cpu kernel: f32 or f64 only, one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let st = self
            .stats
            .lock()
            .map_err(|_| candle_core::Error::Msg("batch norm: poisoned statistics".into()))?
            .clone();
        let c = gamma.elem_count();
        let grad = BatchNormTrainGradCpu {
            eps: self.eps,
            stats: st,
        };
        // Packed result: dx, then dγ and dβ.
        let packed = x.apply_op3_no_bwd(gamma, &dy.contiguous()?, &grad)?;
        let n = x.elem_count();
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, n, c)?.reshape(gamma.shape())?;
        let dbeta = packed.narrow(0, n + c, c)?.reshape(gamma.shape())?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// The backward: `(x, γ, dy)` → `[dx…, dγ…, dβ…]` flat.
struct BatchNormTrainGradCpu {
    eps: f64,
    stats: BatchStats,
}

fn backward<T: WithDType>(
    x: &[T],
    gamma: &[T],
    dy: &[T],
    st: &BatchStats,
    eps: f64,
    geo: (usize, usize, usize),
) -> Vec<T> {
    let (b, nc, hw) = geo;
    let n = (b * hw) as f64;
    let inv: Vec<f64> = st.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    // Σ dy and Σ dy·x̂ per channel.
    let sums: Vec<(f64, f64)> = (0..nc)
        .into_par_iter()
        .map(|c| {
            let (mut s, mut sx) = (0.0, 0.0);
            for (xs, ds) in blocks(x, c, geo).zip(blocks(dy, c, geo)) {
                for (v, d) in xs.iter().zip(ds) {
                    let d = d.to_f64();
                    s += d;
                    sx += d * (v.to_f64() - st.mean[c]) * inv[c];
                }
            }
            (s, sx)
        })
        .collect();
    let mut out = vec![T::from_f64(0.0); x.len() + 2 * nc];
    let (dx, tail) = out.split_at_mut(x.len());
    dx.par_chunks_mut(hw).enumerate().for_each(|(row, o)| {
        let c = row % nc;
        let (s, sx) = sums[c];
        let k = gamma[c].to_f64() * inv[c];
        for ((o, v), d) in o
            .iter_mut()
            .zip(&x[row * hw..][..hw])
            .zip(&dy[row * hw..][..hw])
        {
            let xhat = (v.to_f64() - st.mean[c]) * inv[c];
            *o = T::from_f64(k * (d.to_f64() - s / n - xhat * sx / n));
        }
    });
    for (c, &(s, sx)) in sums.iter().enumerate() {
        tail[c] = T::from_f64(sx);
        tail[nc + c] = T::from_f64(s);
    }
    out
}

impl CustomOp3 for BatchNormTrainGradCpu {
    fn name(&self) -> &'static str {
        "candle-explain-batch-norm-train-grad-cpu"
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
        let c = l2.shape().elem_count();
        let geo = geometry(l1, c)?;
        if l3.dims() != l1.dims() || self.stats.mean.len() != c {
            candle_core::bail!(
                "batch norm backward: dy {:?} does not match x {:?}",
                l3.dims(),
                l1.dims()
            )
        }
        let shape = Shape::from(l1.shape().elem_count() + 2 * c);
        Ok((
            float_kernel!("batch norm backward cpu kernel", [(s1, l1) => x, (s2, l2) => g, (s3, l3) => d], backward(
                x,
                g,
                d,
                &self.stats,
                self.eps,
                geo,
            )),
            shape,
        ))
    }
}
