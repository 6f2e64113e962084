//! Quadrature rules for path integrals over α ∈ [0, 1] (Integrated Gradients and friends).
//!
//! The Riemann rules place their points as Captum does, so results are comparable. One
//! difference: Captum's `riemann_trapezoid` weights every point by 1/n (ends halved), which
//! sums to (n − 1)/n; here the trapezoid weights are 1/(n − 1) (ends halved) and sum to 1,
//! so Captum's trapezoid IG is (n − 1)/n of ours (and misses completeness by that factor).

use crate::Result;

/// Most Gauss–Legendre nodes [`Quadrature::nodes`] computes (about 0.3 s of set-up).
pub const MAX_GAUSS_LEGENDRE: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quadrature {
    RiemannLeft,
    RiemannRight,
    RiemannMiddle,
    RiemannTrapezoid,
    /// Gauss–Legendre on [0, 1]: exact for polynomials of degree ≤ 2n − 1 along the path.
    #[default]
    GaussLegendre,
}

impl Quadrature {
    /// Points α_k and weights w_k with `∫₀¹ g ≈ Σ w_k g(α_k)`.
    pub fn nodes(&self, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        crate::validate::positive("steps", n)?;
        if *self == Quadrature::GaussLegendre && n > MAX_GAUSS_LEGENDRE {
            return Err(crate::error::invalid(
                "steps",
                format!(
                    "Gauss–Legendre with {n} nodes: computing them costs O(n²) (20,000 take half \
                     a minute) and {MAX_GAUSS_LEGENDRE} nodes already integrate polynomials of \
                     degree {} exactly; use at most {MAX_GAUSS_LEGENDRE} steps, or a Riemann rule",
                    2 * MAX_GAUSS_LEGENDRE - 1
                ),
            ));
        }
        crate::validate::host_alloc(n, 16, "the quadrature nodes and weights")?;
        let nf = n as f64;
        Ok(match self {
            Quadrature::RiemannLeft => ((0..n).map(|k| k as f64 / nf).collect(), vec![1.0 / nf; n]),
            Quadrature::RiemannRight => {
                ((1..=n).map(|k| k as f64 / nf).collect(), vec![1.0 / nf; n])
            }
            Quadrature::RiemannMiddle => (
                (0..n).map(|k| (k as f64 + 0.5) / nf).collect(),
                vec![1.0 / nf; n],
            ),
            Quadrature::RiemannTrapezoid => {
                if n < 2 {
                    return Err(crate::error::invalid(
                        "steps",
                        "the trapezoid rule needs at least 2 steps",
                    ));
                }
                let h = 1.0 / (nf - 1.0);
                let mut w = vec![h; n];
                w[0] = h / 2.0;
                w[n - 1] = h / 2.0;
                ((0..n).map(|k| k as f64 * h).collect(), w)
            }
            Quadrature::GaussLegendre => {
                let (x, w) = gauss_legendre(n);
                (
                    x.iter().map(|v| 0.5 * (v + 1.0)).collect(),
                    w.iter().map(|v| 0.5 * v).collect(),
                )
            }
        })
    }
}

/// Nodes and weights on [−1, 1] by Newton's iteration on the Legendre polynomial P_n.
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut xs = vec![0.0; n];
    let mut ws = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        // Tricomi's initial guess for the i-th root, then Newton.
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            let p = if n == 1 { x } else { p1 };
            let pm1 = if n == 1 { 1.0 } else { p0 };
            dp = n as f64 * (x * p - pm1) / (x * x - 1.0);
            let dx = p / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        xs[i] = -x;
        xs[n - 1 - i] = x;
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        ws[i] = w;
        ws[n - 1 - i] = w;
    }
    (xs, ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        for n in 1..=12 {
            let (a, w) = Quadrature::GaussLegendre.nodes(n).unwrap();
            for deg in 0..(2 * n) {
                let approx: f64 = a.iter().zip(&w).map(|(a, w)| w * a.powi(deg as i32)).sum();
                assert!(
                    (approx - 1.0 / (deg as f64 + 1.0)).abs() < 1e-12,
                    "n={n} deg={deg}"
                );
            }
        }
    }

    #[test]
    fn riemann_weights_sum_to_one() {
        for q in [
            Quadrature::RiemannLeft,
            Quadrature::RiemannRight,
            Quadrature::RiemannMiddle,
            Quadrature::RiemannTrapezoid,
        ] {
            let (_, w) = q.nodes(7).unwrap();
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!(Quadrature::RiemannTrapezoid.nodes(1).is_err());
        assert!(Quadrature::GaussLegendre.nodes(0).is_err());
        // Beyond the cap, and absurd counts for any rule, are errors (not hours, not aborts).
        assert!(Quadrature::GaussLegendre
            .nodes(MAX_GAUSS_LEGENDRE + 1)
            .unwrap_err()
            .to_string()
            .contains("O(n²)"));
        assert!(Quadrature::GaussLegendre.nodes(MAX_GAUSS_LEGENDRE).is_ok());
        assert!(Quadrature::RiemannLeft
            .nodes(usize::MAX)
            .unwrap_err()
            .to_string()
            .contains("available"));
    }
}
