//! Pixel flipping (Bach et al. 2015; Samek et al. 2017): remove (deletion) or reveal
//! (insertion) features in the order of their attribution and record the score after each
//! step; AOPC, the area over the perturbation curve, is the mean drop `S(x) − S(x_k)` over
//! the steps k = 0..=steps. Every (example, step) is a row of one chunked sweep; the ranks
//! are computed on the device by sorting.

use crate::perturb::{masked_scores, prepare};
use crate::{invalid, Result};
use candle_core::{DType, Tensor};
use candle_explain_core::{Baseline, Batching, Explainable, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlipOrder {
    /// Most relevant first (MoRF): a faithful map makes the score fall fast.
    MostRelevantFirst,
    /// Least relevant first (LeRF): a faithful map makes the score stay up.
    LeastRelevantFirst,
}

#[derive(Debug, Clone)]
pub struct PixelFlipping {
    pub order: FlipOrder,
    /// Number of equal steps from none to all features.
    pub steps: usize,
    /// Insertion: start from the baseline and reveal features instead of removing them.
    pub insertion: bool,
    pub baseline: Baseline,
    pub batching: Batching,
}

#[derive(Debug, Clone)]
pub struct Curve {
    /// Fraction of features removed (deletion) or revealed (insertion) at each point.
    pub fractions: Vec<f64>,
    /// `[example][step]` scores.
    pub scores: Vec<Vec<f64>>,
    /// Per example: mean over the points of `S(x) − score` (deletion) or of `score − S(x̄)`
    /// (insertion).
    pub aopc: Vec<f64>,
}

impl PixelFlipping {
    pub fn deletion(steps: usize) -> Self {
        Self {
            order: FlipOrder::MostRelevantFirst,
            steps,
            insertion: false,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }

    pub fn insertion(steps: usize) -> Self {
        Self {
            insertion: true,
            ..Self::deletion(steps)
        }
    }

    pub fn evaluate(
        &self,
        model: &dyn Explainable,
        x: &Tensor,
        attributions: &Tensor,
        target: &Target,
    ) -> Result<Curve> {
        let p = prepare(model, x, target)?;
        if attributions.dims() != x.dims() {
            return Err(invalid(
                "attributions",
                format!(
                    "shape {:?} must equal the input's {:?}",
                    attributions.dims(),
                    x.dims()
                ),
            ));
        }
        if self.steps == 0 {
            return Err(invalid("steps", "must be at least 1"));
        }
        crate::perturb::check_attributions(attributions)?;
        let (b, f) = (x.dim(0)?, x.elem_count() / x.dim(0)?);
        if self.steps > f {
            return Err(invalid(
                "steps",
                format!("{} curve steps for {f} features: a step flips at least one feature, so use at most {f}", self.steps),
            ));
        }
        let pts = self.steps + 1;
        let counts: Vec<usize> = (0..pts).map(|k| (k * f).div_ceil(self.steps)).collect();
        // Rank of every feature in flipping order (0 = first), exact under ties (by index).
        let a = attributions
            .to_dtype(DType::F32)?
            .flatten_from(1)?
            .contiguous()?;
        let keys = match self.order {
            FlipOrder::MostRelevantFirst => a.neg()?,
            FlipOrder::LeastRelevantFirst => a,
        };
        let order = keys.arg_sort_last_dim(true)?;
        let ranks = order
            .to_dtype(DType::F32)?
            .arg_sort_last_dim(true)?
            .to_dtype(DType::F32)?;
        let xbar = self.baseline.resolve(x)?;
        let scores = masked_scores(
            model,
            &p,
            &xbar,
            pts,
            &self.batching,
            "pixel flipping",
            |r, ex| {
                let k: Vec<f32> = r.clone().map(|i| counts[i % pts] as f32).collect();
                let k = Tensor::from_vec(k, (r.len(), 1), x.device())?;
                let first_k = ranks
                    .index_select(ex, 0)?
                    .broadcast_lt(&k)?
                    .to_dtype(DType::F32)?;
                // Deletion replaces the first k; insertion keeps only them.
                Ok(if self.insertion {
                    first_k.affine(-1.0, 1.0)?
                } else {
                    first_k
                })
            },
        )?;
        let sc: Vec<f64> = scores.to_dtype(DType::F64)?.to_vec1()?;
        let full: Vec<f64> = p.score.to_dtype(DType::F64)?.to_vec1()?;
        let mut out = Curve {
            fractions: counts.iter().map(|&c| c as f64 / f as f64).collect(),
            scores: vec![],
            aopc: vec![],
        };
        for e in 0..b {
            let s = sc[e * pts..(e + 1) * pts].to_vec();
            let aopc = if self.insertion {
                s.iter().map(|v| v - s[0]).sum::<f64>()
            } else {
                s.iter().map(|v| full[e] - v).sum::<f64>()
            } / pts as f64;
            out.scores.push(s);
            out.aopc.push(aopc);
        }
        Ok(out)
    }
}
