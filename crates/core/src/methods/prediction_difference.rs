//! Prediction Difference analysis (Zintgraf, Cohen, Adel & Welling 2017): how much the
//! class's probability owes to each window of the image, as the weight of evidence
//!
//! `WE_w = log₂ odds p(c | x) − log₂ odds p(c | x∖w)`,  `p(c | x∖w) ≈ (1/S) Σ_s p(c | x with
//! window w set to sample s)`,
//!
//! and each pixel gets the mean `WE` of the windows (all channels, `k × k`, stride `stride`)
//! that cover it. Samples of a window come from the empirical marginal (the same window in
//! the data's images) or from a normal over `(k + 2·padding)²` patches fitted on the data,
//! conditioned on the frame of `padding` pixels around the window (the paper's conditional
//! sampling; frame pixels outside the image are left out). Every (example, window, sample)
//! is a row of one chunked batch; the odds are computed in f64 from the logits, so a
//! confident class keeps finite log-odds without the Laplace correction.
//!
//! A window spans all channels, so every channel of a pixel holds the same value (a sum over
//! channels counts it C times); the attribution's `output` is the class's probability.

use super::common::{example_keys, normals, sample_rng, setup};
use super::gaussian::{Conditional, Normal};
use crate::{Attribution, Attributor, Batching, Error, Explainable, Result, Target};
use candle_core::{DType, Tensor};
use rand::Rng;
use std::collections::HashMap;

/// Where a window's replacement values come from. `data` is `(N, C, H, W)` in the model's
/// input space (like the explained images).
#[derive(Debug, Clone)]
pub enum PdSampling {
    /// The window's values in the data's images, at the same place.
    Marginal { data: Tensor },
    /// A normal fitted on the data's `(k + 2·padding)²` patches, conditioned on the frame.
    Conditional { data: Tensor, padding: usize },
}

#[derive(Debug, Clone)]
pub struct PredictionDifference {
    /// Window side `k` (square, all channels).
    pub window: usize,
    pub stride: usize,
    /// Samples per window. `None` (marginal sampling only): every data image once, the exact
    /// expectation over the empirical marginal.
    pub samples: Option<usize>,
    pub sampling: PdSampling,
    /// The paper's Laplace correction `p ← (p·N + 1) / (N + K)` with this `N` (its training
    /// set size), `K` classes; `None`: none.
    pub laplace: Option<usize>,
    pub seed: u64,
    pub batching: Batching,
}

impl PredictionDifference {
    /// The paper's defaults on MNIST: 10 conditional samples, a 2-pixel frame.
    pub fn conditional(data: Tensor, window: usize) -> Self {
        Self {
            window,
            stride: 1,
            samples: Some(10),
            sampling: PdSampling::Conditional { data, padding: 2 },
            laplace: None,
            seed: 0,
            batching: Batching::default(),
        }
    }

    /// Marginal sampling; `samples: None` uses every data image once.
    pub fn marginal(data: Tensor, window: usize, samples: Option<usize>) -> Self {
        Self {
            window,
            stride: 1,
            samples,
            sampling: PdSampling::Marginal { data },
            laplace: None,
            seed: 0,
            batching: Batching::default(),
        }
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    crate::error::invalid(name, reason)
}

/// `(log p, log (1 − p))` of class `c` from one row of logits, in f64.
fn log_p_q(logits: &[f32], c: usize) -> (f64, f64) {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let lse = |skip: Option<usize>| -> f64 {
        let s: f64 = logits.iter().enumerate().filter(|(i, _)| Some(*i) != skip).map(|(_, &v)| (v as f64 - max).exp()).sum();
        max + s.ln()
    };
    let all = lse(None);
    (logits[c] as f64 - all, lse(Some(c)) - all)
}

/// The sampler of one call: fitted once, then asked for each (example, window, sample).
enum Sampler {
    /// `all`: draw `s` is data image `s` (every image once); else a random image per draw.
    Marginal { data: Vec<f32>, n: usize, all: bool },
    /// One conditional per clipping pattern of the frame (interior windows share one).
    Conditional { padding: usize, by_pattern: HashMap<[usize; 4], Conditional>, patch: usize },
}

impl Attributor for PredictionDifference {
    fn attribute(&self, model: &dyn Explainable, input: &Tensor, target: &Target) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        let model = &*s.model;
        let x = &s.p.x;
        let &[rows, ch, h, w] = x.dims() else {
            return Err(invalid("input", format!("Prediction Difference slides windows over images (batch, C, H, W); got {:?}", x.dims())));
        };
        let k = self.window;
        if k == 0 || self.stride == 0 || k > h || k > w {
            return Err(invalid("window", format!("window {k} and stride {} must be ≥ 1 and the window ≤ the image's {h} × {w}", self.stride)));
        }
        let data = match &self.sampling {
            PdSampling::Marginal { data } | PdSampling::Conditional { data, .. } => data,
        };
        if data.rank() != 4 || data.dims()[1..] != x.dims()[1..] {
            return Err(invalid("data", format!("the sampling data must be images shaped like the input (N, {ch}, {h}, {w}); got {:?}", data.dims())));
        }
        let n_data = data.dim(0)?;
        if n_data == 0 {
            return Err(invalid("data", "the sampling data holds no images"));
        }
        let samples = match (self.samples, &self.sampling) {
            (Some(0), _) => return Err(invalid("samples", "must be at least 1")),
            (Some(s), _) => s,
            (None, PdSampling::Marginal { .. }) => n_data,
            (None, PdSampling::Conditional { .. }) => return Err(invalid("samples", "conditional sampling needs a number of samples")),
        };
        // One class per row: the probability of a mixture of classes has no odds.
        let seed: Vec<Vec<f32>> = s.seed.to_dtype(DType::F32)?.to_vec2()?;
        let class: Vec<usize> = seed
            .iter()
            .map(|r| {
                let hot: Vec<usize> = r.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i).collect();
                match hot.as_slice() {
                    [c] if r[*c] == 1.0 => Ok(*c),
                    _ => Err(invalid("target", "Prediction Difference explains one class per example (no Target::Seed mixtures)")),
                }
            })
            .collect::<Result<_>>()?;
        let positions: Vec<(usize, usize)> = (0..=h - k).step_by(self.stride).flat_map(|i| (0..=w - k).step_by(self.stride).map(move |j| (i, j))).collect();
        let total = crate::validate::rows(rows, positions.len(), "Prediction Difference: examples × windows")?;
        let total = crate::validate::rows(total, samples, "Prediction Difference: examples × windows × samples")?;
        let xv: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let img = ch * h * w;
        let sampler = self.sampler(data, (ch, h, w), &positions)?;
        let keys = example_keys(x, self.seed)?;
        // Sums over the samples of p and 1 − p, per (example, window).
        let (mut sp, mut sq) = (vec![0f64; rows * positions.len()], vec![0f64; rows * positions.len()]);
        let per = self.batching.rows_per_chunk(model, &x.narrow(0, 0, 1)?, false)?;
        self.batching.run(total, per, "prediction difference", |r| {
            let mut buf = Vec::with_capacity(r.len() * img);
            for row in r.clone() {
                let (b, rest) = (row / (positions.len() * samples), row % (positions.len() * samples));
                let (p, smp) = (rest / samples, rest % samples);
                let mut image = xv[b * img..(b + 1) * img].to_vec();
                let values = sampler.draw(&xv[b * img..(b + 1) * img], (ch, h, w), k, positions[p], keys[b], p * samples + smp, smp)?;
                let (i0, j0) = positions[p];
                let mut at = 0;
                for c in 0..ch {
                    for i in i0..i0 + k {
                        for j in j0..j0 + k {
                            image[c * h * w + i * w + j] = values[at];
                            at += 1;
                        }
                    }
                }
                buf.extend(image);
            }
            let batch = Tensor::from_vec(buf, (r.len(), ch, h, w), x.device())?.to_dtype(x.dtype())?;
            let view = crate::batch::view(model, &Tensor::new(r.clone().map(|row| (row / (positions.len() * samples)) as u32).collect::<Vec<_>>(), x.device())?)?;
            let logits: Vec<Vec<f32>> = crate::batch::logits(&*view, &batch)?.to_dtype(DType::F32)?.to_vec2()?;
            for (row, l) in r.clone().zip(&logits) {
                let b = row / (positions.len() * samples);
                let p = (row % (positions.len() * samples)) / samples;
                let (lp, lq) = log_p_q(l, class[b]);
                sp[b * positions.len() + p] += lp.exp();
                sq[b * positions.len() + p] += lq.exp();
            }
            Ok(())
        })?;
        let logits: Vec<Vec<f32>> = super::common::chunked_logits(model, x, &self.batching)?.to_dtype(DType::F32)?.to_vec2()?;
        let classes = logits.first().map_or(0, |l| l.len());
        // log₂ odds, with the Laplace correction when asked for.
        let log_odds = |lp: f64, lq: f64| -> f64 {
            match self.laplace {
                Some(n) => {
                    let p = (lp.exp() * n as f64 + 1.0) / (n as f64 + classes as f64);
                    (p / (1.0 - p)).log2()
                }
                None => (lp - lq) / std::f64::consts::LN_2,
            }
        };
        let mut attr = vec![0f64; rows * h * w];
        let mut cover = vec![0f64; h * w];
        for &(i0, j0) in &positions {
            for i in i0..i0 + k {
                for j in j0..j0 + k {
                    cover[i * w + j] += 1.0;
                }
            }
        }
        let mut probs = Vec::with_capacity(rows);
        for b in 0..rows {
            let (lp, lq) = log_p_q(&logits[b], class[b]);
            probs.push(lp.exp() as f32);
            let full = log_odds(lp, lq);
            for (p, &(i0, j0)) in positions.iter().enumerate() {
                let (mp, mq) = (sp[b * positions.len() + p] / samples as f64, sq[b * positions.len() + p] / samples as f64);
                let we = full - log_odds(mp.ln(), mq.ln());
                for i in i0..i0 + k {
                    for j in j0..j0 + k {
                        attr[b * h * w + i * w + j] += we / cover[i * w + j];
                    }
                }
            }
        }
        let attr = Tensor::from_vec(attr.iter().map(|&v| v as f32).collect::<Vec<_>>(), (rows, 1, h, w), x.device())?
            .broadcast_as((rows, ch, h, w))?
            .contiguous()?
            .to_dtype(x.dtype())?;
        let out = Tensor::new(probs, x.device())?.to_dtype(x.dtype())?;
        Attribution::finish(&s.p, "Prediction Difference", attr, out, None, None)
    }
}

impl PredictionDifference {
    fn sampler(&self, data: &Tensor, (ch, h, w): (usize, usize, usize), positions: &[(usize, usize)]) -> Result<Sampler> {
        let dv: Vec<f32> = data.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let n = data.dim(0)?;
        let padding = match &self.sampling {
            PdSampling::Marginal { .. } => return Ok(Sampler::Marginal { data: dv, n, all: self.samples.is_none() }),
            PdSampling::Conditional { padding, .. } => *padding,
        };
        let (k, l) = (self.window, self.window + 2 * padding);
        if l > h || l > w {
            return Err(invalid("padding", format!("window {k} + 2 × padding {padding} must fit the image's {h} × {w}")));
        }
        // Patches fully inside the images, at most about 20,000 of them, evenly spread (by
        // index: the places are never listed whole).
        let (rows, cols) = (h - l + 1, w - l + 1);
        let places = n * rows * cols;
        let step = places.div_ceil(20_000).max(1);
        let d = ch * l * l;
        let patches: Vec<Vec<f64>> = (0..places)
            .step_by(step)
            .map(|at| (at / (rows * cols), at / cols % rows, at % cols))
            .map(|(m, i0, j0)| {
                let mut v = Vec::with_capacity(d);
                for c in 0..ch {
                    for i in i0..i0 + l {
                        for j in j0..j0 + l {
                            v.push(dv[m * ch * h * w + c * h * w + i * w + j] as f64);
                        }
                    }
                }
                v
            })
            .collect();
        let normal = Normal::fit(&patches, d)?;
        let mut by_pattern = HashMap::new();
        for &(i0, j0) in positions {
            let pattern = clip(i0, j0, k, padding, h, w);
            if by_pattern.contains_key(&pattern) {
                continue;
            }
            let (wi, fi) = split(pattern, ch, k, padding);
            by_pattern.insert(pattern, normal.condition(&wi, &fi)?);
        }
        Ok(Sampler::Conditional { padding, by_pattern, patch: l })
    }
}

/// How far the frame of the window at `(i0, j0)` sticks out of the image: top, left, bottom,
/// right.
fn clip(i0: usize, j0: usize, k: usize, pad: usize, h: usize, w: usize) -> [usize; 4] {
    [pad.saturating_sub(i0), pad.saturating_sub(j0), (i0 + k + pad).saturating_sub(h), (j0 + k + pad).saturating_sub(w)]
}

/// The patch dimensions of the window and of the frame's in-image part, channel-major.
fn split(pattern: [usize; 4], ch: usize, k: usize, pad: usize) -> (Vec<usize>, Vec<usize>) {
    let l = k + 2 * pad;
    let (mut wi, mut fi) = (vec![], vec![]);
    for c in 0..ch {
        for i in 0..l {
            for j in 0..l {
                let at = c * l * l + i * l + j;
                if (pad..pad + k).contains(&i) && (pad..pad + k).contains(&j) {
                    wi.push(at);
                } else if i >= pattern[0] && j >= pattern[1] && i < l - pattern[2] && j < l - pattern[3] {
                    fi.push(at);
                }
            }
        }
    }
    (wi, fi)
}

impl Sampler {
    /// The `C·k·k` values (channel-major) of sample `smp` for the window at `(i0, j0)` of
    /// `image`, from the RNG of `(key, draw)`: the same whatever the chunking.
    #[allow(clippy::too_many_arguments)]
    fn draw(&self, image: &[f32], (ch, h, w): (usize, usize, usize), k: usize, (i0, j0): (usize, usize), key: u64, draw: usize, smp: usize) -> Result<Vec<f32>> {
        let mut rng = sample_rng(key, draw);
        match self {
            Sampler::Marginal { data, n, all } => {
                if *n == 0 {
                    return Err(invalid("data", "marginal sampling needs at least one data image"));
                }
                let m = if *all { smp } else { rng.random_range(0..*n) };
                let src = &data[m * ch * h * w..(m + 1) * ch * h * w];
                Ok((0..ch).flat_map(|c| (i0..i0 + k).flat_map(move |i| (j0..j0 + k).map(move |j| src[c * h * w + i * w + j]))).collect())
            }
            Sampler::Conditional { padding, by_pattern, patch } => {
                let pattern = clip(i0, j0, k, *padding, h, w);
                let cond = by_pattern.get(&pattern).ok_or_else(|| Error::Unsupported("prediction difference: no conditional for a window".into()))?;
                let (_, fi) = split(pattern, ch, k, *padding);
                let l = *patch;
                // The frame's values, patch coordinates → image coordinates.
                let frame: Vec<f64> = fi
                    .iter()
                    .map(|&at| {
                        let (c, i, j) = (at / (l * l), at / l % l, at % l);
                        image[c * h * w + (i0 + i - padding) * w + (j0 + j - padding)] as f64
                    })
                    .collect();
                let mut z = Vec::with_capacity(ch * k * k + 1);
                normals(&mut rng, ch * k * k, &mut z);
                Ok(cond.sample(&cond.mean(&frame), &z).into_iter().map(|v| v as f32).collect())
            }
        }
    }
}
