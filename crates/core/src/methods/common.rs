//! Set-up and passes shared by the methods.

use crate::batch::gradient;
use crate::rules::ActRule;
use crate::target::Prepared;
use crate::validate::{check_input, check_output};
use crate::{Batching, Explainable, Result, RuleCtx, Target};
use candle_core::Tensor;
use rand::{Rng, SeedableRng};

/// A checked, target-expanded batch and its `(rows, classes)` seed.
pub(crate) struct Setup {
    pub p: Prepared,
    pub seed: Tensor,
}

pub(crate) fn setup(model: &dyn Explainable, input: &Tensor, target: &Target) -> Result<Setup> {
    check_input(model, input)?;
    let p = target.prepare(input)?;
    // One row is enough to learn the number of classes (and to catch a wrong input early).
    let first = model.forward_with(&p.x.narrow(0, 0, 1)?, &RuleCtx::inference())?;
    let num_classes = check_output(&first, 1)?;
    let seed = p.rows.seed(num_classes, p.x.device(), p.x.dtype())?;
    Ok(Setup { p, seed })
}

/// Scores and rule-modified input gradients of `x`'s rows, chunked.
pub(crate) fn rule_gradient(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    rule: ActRule,
    batching: &Batching,
) -> Result<(Tensor, Tensor)> {
    rule_gradient_with(
        model,
        x,
        seed,
        rule,
        batching,
        batching.rows_per_chunk(model, x, true)?,
    )
}

/// [`rule_gradient`] with the chunk size already known (methods that take many gradient
/// steps on rows of one shape probe the memory once, not once per step).
pub(crate) fn rule_gradient_with(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    rule: ActRule,
    batching: &Batching,
    per: usize,
) -> Result<(Tensor, Tensor)> {
    let n = x.dim(0)?;
    let (mut scores, mut grads) = (Vec::new(), Vec::new());
    batching.run(n, per, "gradient", |r| {
        let ctx = RuleCtx::rule(rule)?;
        let (s, g) = gradient(
            model,
            &x.narrow(0, r.start, r.len())?,
            &seed.narrow(0, r.start, r.len())?,
            &ctx,
        )?;
        scores.push(s);
        grads.push(g);
        Ok(())
    })?;
    Ok((Tensor::cat(&scores, 0)?, Tensor::cat(&grads, 0)?))
}

/// Forward-only scores of `x`'s rows, chunked.
pub(crate) fn chunked_scores(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    batching: &Batching,
) -> Result<Tensor> {
    let n = x.dim(0)?;
    let per = batching.rows_per_chunk(model, x, false)?;
    let mut out = Vec::new();
    batching.run(n, per, "forward", |r| {
        out.push(crate::batch::scores(
            model,
            &x.narrow(0, r.start, r.len())?,
            &seed.narrow(0, r.start, r.len())?,
        )?);
        Ok(())
    })?;
    Ok(Tensor::cat(&out, 0)?)
}

/// `Σ_i R_i − (S(x) − S(x̄))` per row.
pub(crate) fn completeness_delta(
    attr: &Tensor,
    out: &Tensor,
    base_out: Option<&Tensor>,
) -> Result<Tensor> {
    let total = crate::attribution::sum_per_row(attr)?;
    Ok(match base_out {
        Some(b) => (total - (out - b)?)?,
        None => (total - out)?,
    })
}

/// An RNG for row `row` of a seeded method: results do not depend on chunking or order.
pub(crate) fn row_rng(seed: u64, row: usize) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(
        seed ^ (row as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(17),
    )
}

/// Standard normal samples (Box–Muller), `n` of them.
pub(crate) fn normals(rng: &mut impl Rng, n: usize, out: &mut Vec<f32>) {
    let mut i = 0;
    while i < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        out.push((r * (std::f64::consts::TAU * u2).cos()) as f32);
        if i + 1 < n {
            out.push((r * (std::f64::consts::TAU * u2).sin()) as f32);
        }
        i += 2;
    }
}

/// The ablation pass shared by Occlusion and FeatureAblation: for `rows` perturbations whose
/// masks `mask_of(range, example index)` (1 = replace by the baseline) are built per chunk,
/// every masked feature of an example gets the output drop `S(x) − S(x_masked)`, summed over
/// that example's masks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ablation_sums(
    model: &dyn Explainable,
    s: &Setup,
    xbar: &Tensor,
    out: &Tensor,
    per_example: usize,
    batching: &Batching,
    label: &str,
    mut mask_of: impl FnMut(&std::ops::Range<usize>, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let mut acc = s.p.x.zeros_like()?;
    crate::batch::perturbation_sweep(
        model,
        &s.p.x,
        xbar,
        &s.seed,
        per_example,
        batching,
        label,
        |r, ex| mask_of(r, ex),
        |ex, m, sc| {
            let drop = (out.index_select(ex, 0)? - sc)?;
            acc = acc.index_add(
                ex,
                &m.broadcast_mul(&crate::batch::col(&drop, m.rank())?)?,
                0,
            )?;
            Ok(())
        },
    )?;
    Ok(acc)
}
