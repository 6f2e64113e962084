//! A multivariate normal fitted to data, and its conditional distributions (Prediction
//! Difference's conditional sampling): dense f64 linear algebra on small matrices (a patch's
//! dimensions, a few hundred at most).

use crate::{Error, Result};

/// Lower Cholesky factor of the `n × n` symmetric positive definite `a` (row-major), in place
/// of a copy; an error if `a` is not positive definite.
pub(crate) fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if !(d > 0.0) {
                    return Err(Error::Unsupported(format!(
                        "the fitted covariance is not positive definite (pivot {i}: {d:e}); give more or more varied data"
                    )));
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// Solves `a x = b` for the `m` columns of `b` (`n × m`, row-major) given `a`'s Cholesky
/// factor `l`.
pub(crate) fn cholesky_solve(l: &[f64], n: usize, b: &[f64], m: usize) -> Vec<f64> {
    let mut x = b.to_vec();
    for c in 0..m {
        // L y = b, then Lᵀ x = y.
        for i in 0..n {
            let s: f64 = (0..i).map(|k| l[i * n + k] * x[k * m + c]).sum();
            x[i * m + c] = (x[i * m + c] - s) / l[i * n + i];
        }
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k * m + c]).sum();
            x[i * m + c] = (x[i * m + c] - s) / l[i * n + i];
        }
    }
    x
}

/// Mean and covariance (with a small ridge, `1e-6 ×` the mean variance, so that constant
/// dimensions stay invertible) of `rows` vectors of `d` values.
pub(crate) struct Normal {
    pub d: usize,
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
}

impl Normal {
    pub fn fit(rows: &[Vec<f64>], d: usize) -> Result<Self> {
        if rows.len() < 2 {
            return Err(Error::Unsupported(format!("a normal fit needs at least 2 patches, got {}", rows.len())));
        }
        let n = rows.len() as f64;
        let mut mean = vec![0.0; d];
        for r in rows {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n;
            }
        }
        let mut cov = vec![0.0; d * d];
        for r in rows {
            for i in 0..d {
                let a = r[i] - mean[i];
                for j in 0..=i {
                    cov[i * d + j] += a * (r[j] - mean[j]) / (n - 1.0);
                }
            }
        }
        for i in 0..d {
            for j in 0..i {
                cov[j * d + i] = cov[i * d + j];
            }
        }
        let ridge = 1e-6 * (0..d).map(|i| cov[i * d + i]).sum::<f64>() / d as f64 + 1e-12;
        for i in 0..d {
            cov[i * d + i] += ridge;
        }
        Ok(Self { d, mean, cov })
    }

    /// The distribution of dimensions `w` given the values of dimensions `f`:
    /// `x_w | x_f ~ N(μ_w + A (x_f − μ_f), Σ_ww − A Σ_fw)` with `A = Σ_wf Σ_ff⁻¹`.
    pub fn condition(&self, w: &[usize], f: &[usize]) -> Result<Conditional> {
        let d = self.d;
        let sub = |r: &[usize], c: &[usize]| -> Vec<f64> {
            r.iter().flat_map(|&i| c.iter().map(move |&j| (i, j))).map(|(i, j)| self.cov[i * d + j]).collect()
        };
        let (nw, nf) = (w.len(), f.len());
        // A = (Σ_ff⁻¹ Σ_fw)ᵀ: `nw × nf`.
        let a = if nf == 0 {
            vec![]
        } else {
            let x = cholesky_solve(&cholesky(&sub(f, f), nf)?, nf, &sub(f, w), nw);
            (0..nw).flat_map(|i| (0..nf).map(move |j| (i, j))).map(|(i, j)| x[j * nw + i]).collect()
        };
        let mut cov = sub(w, w);
        let s_fw = sub(f, w);
        for i in 0..nw {
            for j in 0..nw {
                cov[i * nw + j] -= (0..nf).map(|k| a[i * nf + k] * s_fw[k * nw + j]).sum::<f64>();
            }
        }
        Ok(Conditional {
            a,
            mean_w: w.iter().map(|&i| self.mean[i]).collect(),
            mean_f: f.iter().map(|&i| self.mean[i]).collect(),
            chol: cholesky(&cov, nw)?,
        })
    }
}

/// One conditional distribution of a window given its frame.
pub(crate) struct Conditional {
    a: Vec<f64>,
    mean_w: Vec<f64>,
    mean_f: Vec<f64>,
    /// Cholesky factor of the conditional covariance.
    chol: Vec<f64>,
}

impl Conditional {
    /// `μ_w + A (x_f − μ_f)`.
    pub fn mean(&self, frame: &[f64]) -> Vec<f64> {
        let nf = self.mean_f.len();
        self.mean_w
            .iter()
            .enumerate()
            .map(|(i, m)| m + (0..nf).map(|k| self.a[i * nf + k] * (frame[k] - self.mean_f[k])).sum::<f64>())
            .collect()
    }

    /// A draw: `mean + L z` for standard normal `z`.
    pub fn sample(&self, mean: &[f64], z: &[f32]) -> Vec<f64> {
        let n = mean.len();
        (0..n).map(|i| mean[i] + (0..=i).map(|k| self.chol[i * n + k] * z[k] as f64).sum::<f64>()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conditional covariance from the Schur complement equals the inverse of the joint
    /// precision matrix's `w` block, and the conditional mean `μ_w − Λ_ww⁻¹ Λ_wf (x_f − μ_f)`:
    /// two independent routes to the same distribution.
    #[test]
    fn conditioning_agrees_with_the_precision_matrix() -> Result<()> {
        // A random SPD matrix: M Mᵀ + I.
        let d = 5;
        let m: Vec<f64> = (0..d * d).map(|i| ((i * 37 % 11) as f64 - 5.0) / 4.0).collect();
        let mut cov = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] = (0..d).map(|k| m[i * d + k] * m[j * d + k]).sum::<f64>() + if i == j { 1.0 } else { 0.0 };
            }
        }
        let normal = Normal { d, mean: vec![0.5, -1.0, 2.0, 0.0, 1.5], cov: cov.clone() };
        let (w, f) = (vec![1, 3], vec![0, 2, 4]);
        let c = normal.condition(&w, &f)?;
        // The precision matrix, column by column.
        let eye: Vec<f64> = (0..d * d).map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
        let prec = cholesky_solve(&cholesky(&cov, d)?, d, &eye, d);
        let p = |i: usize, j: usize| prec[i * d + j];
        let lww = [p(1, 1), p(1, 3), p(3, 1), p(3, 3)];
        let det = lww[0] * lww[3] - lww[1] * lww[2];
        let inv = [lww[3] / det, -lww[1] / det, -lww[2] / det, lww[0] / det];
        // Conditional covariance = L Lᵀ from the factor.
        let l = &c.chol;
        let got = [l[0] * l[0], l[0] * l[2], l[2] * l[0], l[2] * l[2] + l[3] * l[3]];
        for (g, e) in got.iter().zip(inv) {
            assert!((g - e).abs() < 1e-10, "covariance {got:?} vs {inv:?}");
        }
        let frame = [1.0, -2.0, 0.25];
        let dev: Vec<f64> = f.iter().zip(frame).map(|(&i, v)| v - normal.mean[i]).collect();
        let lwf = |r: usize| -> f64 { f.iter().zip(&dev).map(|(&j, v)| p(r, j) * v).sum() };
        let (t1, t3) = (lwf(1), lwf(3));
        let want = [normal.mean[1] - (inv[0] * t1 + inv[1] * t3), normal.mean[3] - (inv[2] * t1 + inv[3] * t3)];
        let mean = c.mean(&frame);
        for (g, e) in mean.iter().zip(want) {
            assert!((g - e).abs() < 1e-10, "mean {mean:?} vs {want:?}");
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_err(), "not positive definite");
        Ok(())
    }
}
