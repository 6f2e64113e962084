//! Set-up and passes shared by the methods.

use crate::batch::gradient;
use crate::rules::ActRule;
use crate::target::Prepared;
use crate::validate::{check_input, check_output};
use crate::{Batching, Explainable, Result, RuleCtx, Target};
use candle_core::Tensor;
use rand::{Rng, SeedableRng};

/// A checked, target-expanded batch, its `(rows, classes)` seed, and the model for its rows
/// (several classes repeat every example).
pub(crate) struct Setup<'a> {
    pub p: Prepared,
    pub seed: Tensor,
    pub model: crate::batch::View<'a>,
}

pub(crate) fn setup<'a>(
    model: &'a dyn Explainable,
    input: &Tensor,
    target: &Target,
) -> Result<Setup<'a>> {
    check_input(model, input)?;
    // Views (a permuted HWC → CHW image, a narrowed batch) are laid out once here: the
    // methods gather rows with index_select, which needs contiguous tensors.
    let p = target.prepare(&input.contiguous()?)?;
    let model = match p.classes_per_example {
        Some(k) => {
            let rows: Vec<u32> = (0..p.batch as u32)
                .flat_map(|i| std::iter::repeat_n(i, k))
                .collect();
            crate::batch::view(model, &Tensor::new(rows, p.x.device())?)?
        }
        None => crate::batch::View::Same(model),
    };
    // One row is enough to learn the number of classes (and to catch a wrong input early).
    let first = crate::batch::view_range(&*model, &(0..1), p.x.device())?
        .forward_with(&p.x.narrow(0, 0, 1)?, &RuleCtx::inference())?;
    let num_classes = check_output(&first, 1)?;
    if crate::validate::non_finite_count(&first)? > 0 {
        return Err(crate::Error::NonFiniteResult {
            method: "the model",
            what: "model's output",
            examples: vec![0],
            layer: None,
            hint: "the model itself returns NaN / inf: check its weights for NaN / inf and its config (e.g. a negative layer_norm_eps)".into(),
        });
    }
    let seed = p.rows.seed(num_classes, p.x.device(), p.x.dtype())?;
    Ok(Setup { p, seed, model })
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
    context_gradient(model, x, seed, &|| RuleCtx::rule(rule), batching, per)
}

/// [`rule_gradient_with`] in contexts `context` makes (one per chunk): rules beyond one
/// nonlinearity rule (AttnLRP's).
pub(crate) fn context_gradient(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    context: &dyn Fn() -> Result<RuleCtx>,
    batching: &Batching,
    per: usize,
) -> Result<(Tensor, Tensor)> {
    let n = x.dim(0)?;
    let (mut scores, mut grads) = (Vec::new(), Vec::new());
    batching.run(n, per, "gradient", |r| {
        let ctx = context()?;
        let (s, g) = gradient(
            &*crate::batch::view_range(model, &r, x.device())?,
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
            &*crate::batch::view_range(model, &r, x.device())?,
            &x.narrow(0, r.start, r.len())?,
            &seed.narrow(0, r.start, r.len())?,
        )?);
        Ok(())
    })?;
    Ok(Tensor::cat(&out, 0)?)
}

/// The model's raw outputs `(rows, classes)` for `x`'s rows, chunked.
pub(crate) fn chunked_logits(
    model: &dyn Explainable,
    x: &Tensor,
    batching: &Batching,
) -> Result<Tensor> {
    let per = batching.rows_per_chunk(model, x, false)?;
    let mut out = Vec::new();
    batching.run(x.dim(0)?, per, "forward", |r| {
        out.push(crate::batch::logits(
            model,
            &x.narrow(0, r.start, r.len())?,
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

/// One key per example (first axis of `x`) for its random draws: `seed` mixed with a hash of
/// the example's values (FNV-1a over their f64 bits). An example gets the same draws wherever
/// it sits in a batch and whatever the other examples are, and chunking cannot change them.
pub(crate) fn example_keys(x: &Tensor, seed: u64) -> Result<Vec<u64>> {
    let rows: Vec<Vec<f64>> = x
        .flatten_from(1)?
        .to_dtype(candle_core::DType::F64)?
        .to_vec2()?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
            for v in r {
                // −0 and +0 are the same input.
                let bits = if *v == 0.0 { 0 } else { v.to_bits() };
                for byte in bits.to_le_bytes() {
                    h ^= byte as u64;
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            h
        })
        .collect())
}

/// The RNG of draw `sample` of the example whose key is `key` (see [`example_keys`]).
pub(crate) fn sample_rng(key: u64, sample: usize) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(
        key ^ (sample as u64)
            .wrapping_add(1)
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

/// Rows `r` of an (example, step) batch with `steps` rows per example: each row's example,
/// its point `start + α (start's end − start)` (`diff` = end − start) on the straight path,
/// and its quadrature weight `(rows,)` in `start`'s dtype.
pub(crate) struct PathRows {
    pub ex: Tensor,
    pub points: Tensor,
    pub weights: Tensor,
}

pub(crate) fn path_rows(
    r: &std::ops::Range<usize>,
    steps: usize,
    (alphas, weights): &(Vec<f64>, Vec<f64>),
    start: &Tensor,
    diff: &Tensor,
) -> Result<PathRows> {
    let dev = start.device();
    let ex = crate::batch::example_index(r, steps, dev)?;
    let per_row = |v: &[f64]| -> Result<Tensor> {
        let v: Vec<f32> = r.clone().map(|i| v[i % steps] as f32).collect();
        Ok(Tensor::from_vec(v, r.len(), dev)?.to_dtype(start.dtype())?)
    };
    let a = crate::batch::col(&per_row(alphas)?, start.rank())?;
    let points = (start.index_select(&ex, 0)? + diff.index_select(&ex, 0)?.broadcast_mul(&a)?)?;
    Ok(PathRows {
        ex,
        points,
        weights: per_row(weights)?,
    })
}
