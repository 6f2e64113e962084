//! Rotary position embeddings (Su et al.), in Hugging Face's "rotate half" layout, with the
//! linear and Llama 3 frequency scalings.

use super::config::{DecoderConfig, RopeScaling};
use candle_core::{DType, Device, Result, Tensor, D};

/// The rotation's inverse frequencies `(head_dim / 2)`, after scaling.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f64>,
}

impl Rope {
    pub fn new(c: &DecoderConfig) -> Self {
        let d = c.head_dim;
        let base: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / c.rope_theta.powf(2.0 * i as f64 / d as f64))
            .collect();
        let inv_freq = match c.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        };
        Self { inv_freq }
    }

    /// `cos` and `sin` `(B, 1, L, head_dim)` for positions `(B, L)`, in `dtype`. The angles are
    /// computed in f32, as transformers does.
    pub fn cos_sin(&self, positions: &Tensor, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let inv: Vec<f32> = self.inv_freq.iter().map(|&f| f as f32).collect();
        let half = inv.len();
        let inv = Tensor::from_vec(inv, (1, 1, half), device)?;
        let pos = positions.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let angles = pos.broadcast_mul(&inv)?;
        let angles = Tensor::cat(&[&angles, &angles], D::Minus1)?.unsqueeze(1)?;
        Ok((angles.cos()?.to_dtype(dtype)?, angles.sin()?.to_dtype(dtype)?))
    }
}

/// `x · cos + rotate_half(x) · sin` for `x (B, heads, L, d)`: linear in `x`, so every
/// rule sees it as part of the q / k projections.
pub fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let (a, b) = (x.narrow(D::Minus1, 0, d / 2)?, x.narrow(D::Minus1, d / 2, d / 2)?);
    let rotated = Tensor::cat(&[&b.neg()?, &a], D::Minus1)?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}
