//! What LIME and KernelSHAP share (Ribeiro et al. 2016; Lundberg & Lee 2017, in Captum's
//! formulation): interpretable binary features over feature groups (1 = the group keeps the
//! input's values, 0 = it takes the baseline's), coalitions scored by the model in chunks
//! (`Groups::coalition_sweep`), and a weighted linear model `y ≈ φ₀ + Σ_g φ_g z_g` fitted to
//! them. The normal equations are summed as the scores stream in, so memory does not grow
//! with the number of samples; each example's `(G + 1) × (G + 1)` system is solved in f64.

use super::common::{chunked_scores, setup};
use super::groups::Groups;
use crate::{Attribution, Baseline, Batching, Error, Explainable, Result, Target};
use candle_core::Tensor;

/// Weighted least-squares accumulators of one example: `AᵀWA` and `AᵀWy` with `A = [1, z]`.
struct Normal {
    ata: Vec<f64>,
    aty: Vec<f64>,
}

impl Normal {
    fn new(g: usize) -> Self {
        Self {
            ata: vec![0.0; (g + 1) * (g + 1)],
            aty: vec![0.0; g + 1],
        }
    }

    fn add(&mut self, bits: u64, y: f64, w: f64) {
        let n = self.aty.len();
        let a = |i: usize| {
            if i == 0 {
                1.0
            } else {
                (bits >> (i - 1) & 1) as f64
            }
        };
        for i in 0..n {
            let ai = a(i);
            if ai == 0.0 {
                continue;
            }
            self.aty[i] += w * ai * y;
            for j in 0..n {
                self.ata[i * n + j] += w * ai * a(j);
            }
        }
    }

    /// `(AᵀWA + ridge·I) φ = AᵀWy` by Gaussian elimination with partial pivoting (the
    /// intercept is not penalised).
    fn solve(mut self, ridge: f64) -> Vec<f64> {
        let n = self.aty.len();
        for i in 1..n {
            self.ata[i * n + i] += ridge;
        }
        let (a, b) = (&mut self.ata, &mut self.aty);
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
                .unwrap_or(c);
            if a[p * n + c].abs() < 1e-300 {
                continue; // a feature no sample varied: its coefficient stays 0
            }
            for k in 0..n {
                a.swap(c * n + k, p * n + k);
            }
            b.swap(c, p);
            for r in 0..n {
                if r != c {
                    let f = a[r * n + c] / a[c * n + c];
                    for k in c..n {
                        a[r * n + k] -= f * a[c * n + k];
                    }
                    b[r] -= f * b[c];
                }
            }
        }
        (0..n)
            .map(|i| {
                if a[i * n + i].abs() < 1e-300 {
                    0.0
                } else {
                    b[i] / a[i * n + i]
                }
            })
            .collect()
    }
}

/// The coalitions of a surrogate fit, for `g` groups: `per_example` of them, the `k`-th
/// being `coalition(k)`, weighted by `weight(example, k, bits)`.
pub(crate) struct Plan<'a> {
    pub per_example: usize,
    pub coalition: Box<dyn Fn(usize) -> u64 + 'a>,
    pub weight: Box<dyn Fn(usize, usize, u64) -> f64 + 'a>,
}

/// Coalitions given by the caller (bit `i` set: group `i` present), checked against the
/// number of groups `g`.
pub(crate) fn given_coalitions(list: &[u64], g: usize) -> Result<()> {
    if list.is_empty() {
        return Err(crate::error::invalid("coalitions", "the list is empty"));
    }
    let bad = list.iter().position(|&b| g < 64 && b >> g != 0);
    if let Some(i) = bad {
        return Err(crate::error::invalid(
            "coalitions",
            format!(
                "coalition {i} ({:#b}) names a group ≥ {g}, and the feature mask has {g} groups",
                list[i]
            ),
        ));
    }
    Ok(())
}

/// What a plan may know of the batch: per example and group, `x_g·x_g`, `x_g·x̄_g` and
/// `x̄_g·x̄_g` (LIME's cosine similarity needs them).
pub(crate) struct GroupDots {
    pub xx: Vec<Vec<f64>>,
    pub xb: Vec<Vec<f64>>,
    pub bb: Vec<Vec<f64>>,
}

/// A surrogate fit: the plan's coalitions scored and fitted per example; every feature of a
/// group gets the group's coefficient.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit<'p>(
    model: &dyn Explainable,
    input: &Tensor,
    target: &Target,
    feature_mask: &Tensor,
    baseline: &Baseline,
    batching: &Batching,
    method: &'static str,
    ridge: f64,
    plan: &dyn Fn(usize, GroupDots) -> Result<Plan<'p>>,
) -> Result<Attribution> {
    let s = setup(model, input, target)?;
    let model = &*s.model;
    let x = &s.p.x;
    let groups = Groups::new(feature_mask, x)?;
    let g = groups.count;
    if g > 64 {
        return Err(Error::InvalidParameter {
            name: "feature_mask",
            reason: format!("coalitions are 64-bit masks: at most 64 groups, got {g}"),
        });
    }
    let n = x.dim(0)?;
    crate::validate::host_alloc(
        n.saturating_mul((g + 1) * (g + 2)),
        8,
        "the least-squares systems",
    )?;
    let xbar = baseline.resolve(x)?;
    let dots = group_dots(&groups, x, &xbar)?;
    let plan = plan(g, dots)?;
    let per_example = plan.per_example;
    let mut systems: Vec<Normal> = (0..n).map(|_| Normal::new(g)).collect();
    groups.coalition_sweep(
        model,
        x,
        &xbar,
        &s.seed,
        per_example,
        &*plan.coalition,
        batching,
        method,
        |rows, scores| {
            for (row, &y) in rows.clone().zip(scores) {
                let (e, k) = (row / per_example, row % per_example);
                let bits = (plan.coalition)(k);
                systems[e].add(bits, y, (plan.weight)(e, k, bits));
            }
            Ok(())
        },
    )?;
    let coef: Vec<f64> = systems
        .into_iter()
        .flat_map(|sys| sys.solve(ridge).into_iter().skip(1))
        .collect();
    let dev = x.device();
    let phi = Tensor::from_vec(coef, (n, 1, g), dev)?.to_dtype(x.dtype())?;
    let all = Tensor::arange(0u32, n as u32, dev)?;
    let attr = phi
        .matmul(&groups.for_examples(&all)?.contiguous()?)?
        .reshape(x.dims())?;
    let out = chunked_scores(model, x, &s.seed, batching)?;
    Attribution::finish(&s.p, method, attr, out, None, None)
}

/// Per example and group: `Σ x·x`, `Σ x·x̄`, `Σ x̄·x̄` over the group's features.
fn group_dots(groups: &Groups, x: &Tensor, xbar: &Tensor) -> Result<GroupDots> {
    let n = x.dim(0)?;
    let all = Tensor::arange(0u32, n as u32, x.device())?;
    let onehot = groups
        .for_examples(&all)?
        .to_dtype(candle_core::DType::F64)?
        .contiguous()?; // (n, G, F)
    let (xf, bf) = (
        x.flatten_from(1)?.to_dtype(candle_core::DType::F64)?,
        xbar.flatten_from(1)?.to_dtype(candle_core::DType::F64)?,
    );
    let per = |a: &Tensor, b: &Tensor| -> Result<Vec<Vec<f64>>> {
        Ok(onehot
            .matmul(&(a * b)?.unsqueeze(2)?)?
            .squeeze(2)?
            .to_vec2()?)
    };
    Ok(GroupDots {
        xx: per(&xf, &xf)?,
        xb: per(&xf, &bf)?,
        bb: per(&bf, &bf)?,
    })
}

/// `n` choose `k` in f64.
pub(crate) fn choose(n: usize, k: usize) -> f64 {
    (0..k.min(n - k)).fold(1.0, |c, i| c * (n - i) as f64 / (i + 1) as f64)
}
