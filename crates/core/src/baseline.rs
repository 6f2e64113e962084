//! Baselines (reference inputs) for path and difference methods.

use crate::{Error, Result};
use candle_core::Tensor;
use rand::{Rng, SeedableRng};

/// The reference input `x̄`.
#[derive(Debug, Clone, Default)]
pub enum Baseline {
    #[default]
    Zero,
    Constant(f64),
    /// The input blurred by a Gaussian of this σ (in pixels), per channel; `(B, C, H, W)` inputs.
    Blurred {
        sigma: f64,
    },
    /// Uniform noise in `[low, high)`, seeded.
    UniformNoise {
        low: f64,
        high: f64,
        seed: u64,
    },
    /// A given tensor: the input's shape, its per-example shape, or batch 1.
    Tensor(Tensor),
    /// Each example's per-channel mean (over the dimensions after the channel axis of
    /// `(B, C, …)` inputs; over all features of `(B, F)` inputs): the "mean" fill of
    /// perturbation metrics.
    ChannelMean,
}

impl Baseline {
    /// The baseline for every example of `x`, with `x`'s shape.
    pub fn resolve(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Baseline::Zero => Ok(x.zeros_like()?),
            Baseline::Constant(c) => {
                crate::validate::finite_param("Baseline::Constant", *c)?;
                let b = x.ones_like()?.affine(*c, 0.0)?;
                if crate::validate::non_finite_count(&b)? > 0 {
                    return Err(crate::error::invalid(
                        "Baseline::Constant",
                        format!("{c} does not fit in the input's dtype {:?}", x.dtype()),
                    ));
                }
                Ok(b)
            }
            Baseline::Blurred { sigma } => gaussian_blur(x, *sigma),
            Baseline::UniformNoise { low, high, seed } => {
                if !(low < high) || !low.is_finite() || !high.is_finite() {
                    return Err(crate::error::invalid(
                        "Baseline::UniformNoise",
                        format!("need finite low < high, got [{low}, {high})"),
                    ));
                }
                let mut rng = rand::rngs::StdRng::seed_from_u64(*seed);
                let v: Vec<f32> = (0..x.elem_count())
                    .map(|_| rng.random_range(*low as f32..*high as f32))
                    .collect();
                Ok(Tensor::from_vec(v, x.dims(), x.device())?.to_dtype(x.dtype())?)
            }
            Baseline::ChannelMean => {
                let (b, rest) = (x.dim(0)?, x.elem_count() / x.dim(0)?);
                let c = if x.rank() >= 3 { x.dim(1)? } else { 1 };
                let mean = x.reshape((b, c, rest / c))?.mean_keepdim(2)?;
                Ok(mean.broadcast_as((b, c, rest / c))?.reshape(x.dims())?)
            }
            Baseline::Tensor(t) => {
                let t = t.to_device(x.device())?.to_dtype(x.dtype())?.contiguous()?;
                crate::validate::check_finite(&t, "baseline")?;
                if t.dims() == x.dims() {
                    Ok(t)
                } else if t.dims() == &x.dims()[1..]
                    || (t.rank() == x.rank() && t.dim(0)? == 1 && t.dims()[1..] == x.dims()[1..])
                {
                    Ok(t.broadcast_as(x.dims())?.contiguous()?)
                } else {
                    Err(Error::BaselineShape {
                        expected: x.dims().to_vec(),
                        got: t.dims().to_vec(),
                    })
                }
            }
        }
    }
}

/// Separable Gaussian blur of `(B, C, H, W)` with zero padding, kernel radius ⌈3σ⌉.
pub fn gaussian_blur(x: &Tensor, sigma: f64) -> Result<Tensor> {
    blur(x, sigma, false)
}

/// Gaussian blur with edge replication (the image's border extends outwards), so that a
/// large σ tends to a flat image of the border's colour instead of to black. σ = 0 is the
/// identity. Used by Blur IG.
pub fn gaussian_blur_replicate(x: &Tensor, sigma: f64) -> Result<Tensor> {
    if sigma == 0.0 {
        return Ok(x.clone());
    }
    blur(x, sigma, true)
}

fn blur(x: &Tensor, sigma: f64, replicate: bool) -> Result<Tensor> {
    if !(sigma > 0.0) || !sigma.is_finite() {
        return Err(crate::error::invalid(
            "sigma",
            format!("must be a positive number, got {sigma}"),
        ));
    }
    let (_, c, h, w) = x.dims4().map_err(|_| Error::InputShape {
        expected: "(batch, channels, height, width) for a blurred baseline".into(),
        got: x.dims().to_vec(),
    })?;
    let r = ((3.0 * sigma).ceil() as usize).min(2 * h.max(w));
    let k: Vec<f32> = (0..2 * r + 1)
        .map(|i| (-((i as f64 - r as f64).powi(2)) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / s).collect();
    let n = k.len();
    let kt = Tensor::from_vec(k, n, x.device())?.to_dtype(x.dtype())?;
    let kh = kt.reshape((1, 1, n, 1))?.repeat((c, 1, 1, 1))?;
    let kw = kt.reshape((1, 1, 1, n))?.repeat((c, 1, 1, 1))?;
    let pad = |t: &Tensor, d: usize| {
        if replicate {
            t.pad_with_same(d, r, r)
        } else {
            t.pad_with_zeros(d, r, r)
        }
    };
    // Candle's CPU convolution has no f16 / bf16 matmul: blur half-precision inputs in f32.
    let (xc, kh, kw) = in_f32_if_half(x, &kh, &kw)?;
    let y = pad(&xc, 2)?.conv2d(&kh, 0, 1, 1, c)?;
    let y = pad(&y, 3)?.conv2d(&kw, 0, 1, 1, c)?;
    Ok(y.to_dtype(x.dtype())?)
}

/// `x` and two kernels in f32 when `x` is f16 / bf16 on the CPU (whose convolution lacks
/// those dtypes), unchanged otherwise.
pub(crate) fn in_f32_if_half(
    x: &Tensor,
    a: &Tensor,
    b: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    use candle_core::DType;
    if x.device().is_cpu() && matches!(x.dtype(), DType::F16 | DType::BF16) {
        Ok((
            x.to_dtype(DType::F32)?,
            a.to_dtype(DType::F32)?,
            b.to_dtype(DType::F32)?,
        ))
    } else {
        Ok((x.clone(), a.clone(), b.clone()))
    }
}
