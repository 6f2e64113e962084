//! Occlusion (Zeiler & Fergus 2014; Ancona et al.'s Occlusion-1 and -N): slide a window over
//! the input, replace it by the baseline, and give every feature in the window the output
//! drop `S(x) − S(x_occluded)`, averaged over the windows that cover it (Captum's rule).
//!
//! Window masks are built on the device as outer products of per-axis indicator vectors, so
//! no per-patch loop touches the features.

use super::common::{ablation_sums, chunked_scores, setup};
use crate::{Attribution, Attributor, Baseline, Batching, Error, Explainable, Result, Target};
use candle_core::{Device, Tensor};

#[derive(Debug, Clone)]
pub struct Occlusion {
    /// Window extent along every per-example axis (e.g. `[1, 3, 3]` for `(C, H, W)`).
    pub window: Vec<usize>,
    /// Step along every per-example axis.
    pub strides: Vec<usize>,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl Occlusion {
    pub fn new(window: &[usize], strides: &[usize]) -> Self {
        Self {
            window: window.to_vec(),
            strides: strides.to_vec(),
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }

    /// Occlusion-1: one feature at a time.
    pub fn single(rank: usize) -> Self {
        Self::new(&vec![1; rank], &vec![1; rank])
    }

    pub fn with_baseline(mut self, b: Baseline) -> Self {
        self.baseline = b;
        self
    }
}

/// `(positions, len)` 0/1 matrix: row p marks the window starting at `p · stride`.
fn indicators(len: usize, w: usize, s: usize, dev: &Device) -> Result<(usize, Tensor)> {
    let n = (len - w) / s + 1;
    crate::validate::host_alloc(
        n.saturating_mul(len),
        4,
        "occlusion's window table (windows × length of an axis)",
    )?;
    let mut v = vec![0f32; n * len];
    for p in 0..n {
        for i in p * s..p * s + w {
            v[p * len + i] = 1.0;
        }
    }
    Ok((n, Tensor::from_vec(v, (n, len), dev)?))
}

impl Attributor for Occlusion {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let shape = x.dims()[1..].to_vec();
        if self.window.len() != shape.len() || self.strides.len() != shape.len() {
            return Err(crate::error::invalid(
                "window",
                format!(
                    "window {:?} and strides {:?} need one entry per input axis {:?}",
                    self.window, self.strides, shape
                ),
            ));
        }
        for (d, (&w, &st)) in self.window.iter().zip(&self.strides).enumerate() {
            if w == 0 || st == 0 || w > shape[d] {
                return Err(Error::InvalidParameter {
                    name: "window",
                    reason: format!(
                        "axis {d}: window {w} / stride {st} must be ≥ 1 and the window ≤ {}",
                        shape[d]
                    ),
                });
            }
        }
        let dev = x.device();
        let dt = x.dtype();
        let axes: Vec<(usize, Tensor)> = (0..shape.len())
            .map(|d| indicators(shape[d], self.window[d], self.strides[d], dev))
            .collect::<Result<_>>()?;
        let npatch: usize = axes.iter().map(|a| a.0).product();
        // Broadcastable per-axis factors: axis d of a row's mask is `(len, 1…, shape[d], …1)`.
        let factor = |d: usize, coords: &[u32], len: usize| -> Result<Tensor> {
            let mut dims = vec![1; shape.len() + 1];
            dims[0] = len;
            dims[d + 1] = shape[d];
            Ok(axes[d]
                .1
                .index_select(&Tensor::new(coords, dev)?, 0)?
                .reshape(dims)?)
        };
        let mask_of = |patches: &[usize]| -> Result<Tensor> {
            let len = patches.len();
            let mut m: Option<Tensor> = None;
            let mut stride = npatch;
            for (d, (n, _)) in axes.iter().enumerate() {
                stride /= n;
                let coords: Vec<u32> = patches.iter().map(|p| ((p / stride) % n) as u32).collect();
                let f = factor(d, &coords, len)?;
                m = Some(match m {
                    None => f,
                    Some(m) => m.broadcast_mul(&f)?,
                });
            }
            let mut full = vec![len];
            full.extend_from_slice(&shape);
            Ok(m.expect("at least one axis")
                .broadcast_as(full)?
                .to_dtype(dt)?)
        };
        let xbar = self.baseline.resolve(x)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let acc = ablation_sums(
            model,
            &s,
            &xbar,
            &out,
            npatch,
            &self.batching,
            "occlusion",
            |r, _| {
                let patches: Vec<usize> = r.clone().map(|i| i % npatch).collect();
                mask_of(&patches)
            },
        )?;
        // How many windows cover each feature: the outer product of per-axis coverage counts.
        let mut count: Option<Tensor> = None;
        for (d, (_, ind)) in axes.iter().enumerate() {
            let mut dims = vec![1; shape.len()];
            dims[d] = shape[d];
            let c = ind.sum(0)?.reshape(dims)?;
            count = Some(match count {
                None => c,
                Some(k) => k.broadcast_mul(&c)?,
            });
        }
        let count = count.expect("at least one axis").to_dtype(dt)?;
        let uncovered = count.eq(0.0)?;
        let safe = uncovered.where_cond(&count.ones_like()?, &count)?;
        // Features no window reaches (a stride that skips the border) get 0.
        let attr = acc
            .broadcast_div(&safe)?
            .broadcast_mul(&uncovered.eq(0.0)?.to_dtype(dt)?)?;
        Attribution::finish(&s.p, "Occlusion", attr, out, None, None)
    }
}
