//! Similarity of two explanations, per example: Spearman rank correlation of |attribution|,
//! SSIM, and HOG similarity (Adebayo et al. 2018 use all three for their sanity checks).
//!
//! SSIM and HOG compare maps: the channel-summed |attribution| of `(batch, channels, h, w)`
//! tensors, each scaled to [0, 1].

use crate::{invalid, Result};
use candle_core::{DType, Tensor};

/// Spearman correlation of |a| and |b| per example (ties broken by position).
pub fn spearman(a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    let rank = |t: &Tensor| -> Result<Vec<Vec<f32>>> {
        let f = t
            .abs()?
            .to_dtype(DType::F32)?
            .flatten_from(1)?
            .contiguous()?;
        Ok(f.arg_sort_last_dim(true)?
            .to_dtype(DType::F32)?
            .arg_sort_last_dim(true)?
            .to_dtype(DType::F32)?
            .to_vec2()?)
    };
    let (ra, rb) = (rank(a)?, rank(b)?);
    Ok(ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| {
            let (x, y): (Vec<f64>, Vec<f64>) = (
                x.iter().map(|v| *v as f64).collect(),
                y.iter().map(|v| *v as f64).collect(),
            );
            crate::sensitivity_n::pearson(&x, &y)
        })
        .collect())
}

/// SSIM of the maps (7×7 uniform windows, K1 = 0.01, K2 = 0.03, data range 1, sample
/// covariances: scikit-image's defaults).
pub fn ssim(a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    check_maps("ssim", a, b)?;
    let (x, y) = (unit_maps(a)?, unit_maps(b)?);
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    let win = 7.min(h).min(w);
    let k = (Tensor::ones((1, 1, win, win), DType::F64, x.device())? / (win * win) as f64)?;
    let mean = |t: &Tensor| t.conv2d(&k, 0, 1, 1, 1);
    let (mx, my) = (mean(&x)?, mean(&y)?);
    // Sample covariances over each window, as scikit-image (n/(n−1)).
    let n = (win * win) as f64;
    let cov = n / (n - 1.0);
    let vx = ((mean(&x.sqr()?)? - mx.sqr()?)? * cov)?;
    let vy = ((mean(&y.sqr()?)? - my.sqr()?)? * cov)?;
    let vxy = ((mean(&(&x * &y)?)? - (&mx * &my)?)? * cov)?;
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let num = ((((&mx * &my)? * 2.0)? + c1)? * ((vxy * 2.0)? + c2)?)?;
    let den = (((mx.sqr()? + my.sqr()?)? + c1)? * ((vx + vy)? + c2)?)?;
    Ok((num / den)?.flatten_from(1)?.mean(1)?.to_vec1()?)
}

/// Histogram-of-oriented-gradients descriptors as scikit-image's `hog` computes them (its
/// defaults: 9 unsigned orientations, 8×8-pixel cells, 3×3-cell blocks, L2-Hys): central
/// differences (zero on the border rows / columns), magnitudes summed per orientation bin
/// `[180°·i/n, 180°·(i+1)/n)` and cell and divided by the cell's area, then every block of cells
/// normalised. Runs on the host in f64: the maps are small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hog {
    pub orientations: usize,
    /// `(rows, columns)` pixels per cell.
    pub cell: (usize, usize),
    /// `(rows, columns)` cells per block.
    pub block: (usize, usize),
}

impl Default for Hog {
    fn default() -> Self {
        Self {
            orientations: 9,
            cell: (8, 8),
            block: (3, 3),
        }
    }
}

impl Hog {
    /// The descriptor of one `h × w` map (row-major).
    pub fn descriptor(&self, map: &[f64], h: usize, w: usize) -> Result<Vec<f64>> {
        let (cr, cc) = self.cell;
        let (br, bc) = self.block;
        if self.orientations == 0 || cr == 0 || cc == 0 || br == 0 || bc == 0 {
            return Err(invalid(
                "hog",
                "orientations, cell and block sizes must be at least 1",
            ));
        }
        if map.len() != h * w {
            return Err(invalid(
                "hog",
                format!("a {h}×{w} map has {} values, got {}", h * w, map.len()),
            ));
        }
        let (ncr, ncc) = (h / cr, w / cc);
        if ncr < br || ncc < bc {
            return Err(invalid(
                "hog",
                format!(
                    "a {h}×{w} map is smaller than one block of {}×{} pixels",
                    br * cr,
                    bc * cc
                ),
            ));
        }
        let at = |r: usize, c: usize| map[r * w + c];
        let n = self.orientations;
        let mut hist = vec![0.0; ncr * ncc * n];
        let width = 180.0 / n as f64;
        for r in 0..ncr * cr {
            for c in 0..ncc * cc {
                let gr = if r == 0 || r == h - 1 {
                    0.0
                } else {
                    at(r + 1, c) - at(r - 1, c)
                };
                let gc = if c == 0 || c == w - 1 {
                    0.0
                } else {
                    at(r, c + 1) - at(r, c - 1)
                };
                let theta = gr.atan2(gc).to_degrees().rem_euclid(180.0);
                let bin = ((theta / width) as usize).min(n - 1);
                hist[((r / cr) * ncc + c / cc) * n + bin] += gr.hypot(gc);
            }
        }
        let area = (cr * cc) as f64;
        hist.iter_mut().for_each(|v| *v /= area);
        let eps2 = 1e-10;
        let mut out = Vec::with_capacity((ncr - br + 1) * (ncc - bc + 1) * br * bc * n);
        for r in 0..=ncr - br {
            for c in 0..=ncc - bc {
                let mut block: Vec<f64> = (r..r + br)
                    .flat_map(|i| {
                        (c..c + bc).flat_map(move |j| (0..n).map(move |o| (i * ncc + j) * n + o))
                    })
                    .map(|k| hist[k])
                    .collect();
                // L2-Hys: L2-normalise, clip at 0.2, normalise again.
                let norm = |b: &[f64]| (b.iter().map(|v| v * v).sum::<f64>() + eps2).sqrt();
                let first = norm(&block);
                block.iter_mut().for_each(|v| *v = (*v / first).min(0.2));
                let second = norm(&block);
                out.extend(block.iter().map(|v| v / second));
            }
        }
        Ok(out)
    }
}

/// Pearson correlation of the HOG descriptors of the two maps, per example.
pub fn hog_similarity(a: &Tensor, b: &Tensor, hog: &Hog) -> Result<Vec<f64>> {
    check_maps("hog", a, b)?;
    let (h, w) = (a.dim(2)?, a.dim(3)?);
    let (x, y): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (
        unit_maps(a)?.flatten_from(1)?.to_vec2()?,
        unit_maps(b)?.flatten_from(1)?.to_vec2()?,
    );
    x.iter()
        .zip(&y)
        .map(|(p, q)| {
            Ok(crate::sensitivity_n::pearson(
                &hog.descriptor(p, h, w)?,
                &hog.descriptor(q, h, w)?,
            ))
        })
        .collect()
}

fn check_maps(name: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.rank() != 4 || a.dims() != b.dims() {
        return Err(invalid(
            name,
            format!(
                "needs two (batch, channels, h, w) maps of one shape, got {:?} and {:?}",
                a.dims(),
                b.dims()
            ),
        ));
    }
    Ok(())
}

/// Channel-summed |t| per example, scaled to [0, 1]: `(batch, 1, h, w)` in f64.
fn unit_maps(t: &Tensor) -> Result<Tensor> {
    let m = t.abs()?.to_dtype(DType::F64)?.sum_keepdim(1)?;
    let mx = m
        .flatten_from(1)?
        .max_keepdim(1)?
        .clamp(1e-12, f64::MAX)?
        .unsqueeze(2)?
        .unsqueeze(3)?;
    Ok(m.broadcast_div(&mx)?)
}

/// Spearman, SSIM and (default) HOG similarity; NaN where a measure does not apply.
pub fn similarities(a: &Tensor, b: &Tensor) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let n = a.dim(0)?;
    let nan = || vec![f64::NAN; n];
    let ssim = if a.rank() == 4 { ssim(a, b)? } else { nan() };
    let hog = if a.rank() == 4 {
        hog_similarity(a, b, &Hog::default()).unwrap_or_else(|_| nan())
    } else {
        nan()
    };
    Ok((spearman(a, b)?, ssim, hog))
}
