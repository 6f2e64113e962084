//! The shared batching engine: one chunker with a memory budget, and the gradient pass.
//!
//! Every method stacks all its steps (IG's α points, noise samples, occlusion patches) into
//! rows and hands them to [`Batching::run`], which cuts them into chunks whose estimated
//! memory fits the budget. Rows never interact, so chunking never changes results.

use crate::validate::check_output;
use crate::{Explainable, Result, RuleCtx};
use candle_core::{Tensor, Var};
use std::ops::Range;

/// Rows per chunk for a model whose memory the probe cannot see (its forward routes no
/// operation through the context).
pub const UNMEASURED_ROWS: usize = 32;

/// How rows are cut into chunks.
#[derive(Debug, Clone)]
pub struct Batching {
    /// Memory budget for one chunk's activations and gradients, in bytes.
    pub budget_bytes: usize,
    /// Hard cap on rows per chunk, if any.
    pub max_rows: Option<usize>,
    /// Show a progress bar (indicatif, on stderr) when there is more than one chunk.
    pub progress: bool,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            budget_bytes: 1 << 30,
            max_rows: None,
            progress: false,
        }
    }
}

impl Batching {
    pub fn with_budget(budget_bytes: usize) -> Self {
        Self {
            budget_bytes,
            ..Self::default()
        }
    }

    pub fn with_max_rows(rows: usize) -> Self {
        Self {
            max_rows: Some(rows.max(1)),
            ..Self::default()
        }
    }

    /// Rows per chunk for `model` on rows shaped like `row` (batch of one), measured by one
    /// forward of that row with a probing context. A backward pass keeps the forward values,
    /// the boundary copies and the gradients alive: three times the forward's memory.
    pub fn rows_per_chunk(
        &self,
        model: &dyn Explainable,
        row: &Tensor,
        backward: bool,
    ) -> Result<usize> {
        let probe = RuleCtx::probe();
        let one = row.narrow(0, 0, 1)?;
        let first = view_range(model, &(0..1), row.device())?;
        let out = first.forward_with(&one, &probe)?;
        if probe.routed_ops() == 0 {
            // The forward asked the context for nothing, so nothing was measured: "0 bytes per
            // row" would make one chunk of everything. The model's own figure, or small chunks.
            let rows = match model.row_bytes() {
                Some(b) => (self.budget_bytes / (if backward { 3 } else { 1 } * b).max(1)).max(1),
                None => UNMEASURED_ROWS,
            };
            return Ok(self.max_rows.map_or(rows, |m| m.min(rows)));
        }
        let fwd = probe.probed_bytes()
            + (one.elem_count() + out.elem_count()) * one.dtype().size_in_bytes();
        let per_row = if backward { 3 * fwd } else { fwd }.max(1);
        let rows = (self.budget_bytes / per_row).max(1);
        Ok(self.max_rows.map_or(rows, |m| rows.min(m)))
    }

    /// Calls `f` on consecutive ranges of at most `per_chunk` rows out of `total`, stopping
    /// at the first error.
    pub fn run(
        &self,
        total: usize,
        per_chunk: usize,
        label: &str,
        f: impl FnMut(Range<usize>) -> Result<()>,
    ) -> Result<()> {
        self.try_run(total, per_chunk, label, f)
    }

    /// [`Batching::run`] with the caller's error type (other crates chunk with their own).
    pub fn try_run<E>(
        &self,
        total: usize,
        per_chunk: usize,
        label: &str,
        mut f: impl FnMut(Range<usize>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let per_chunk = per_chunk.max(1);
        let n_chunks = total.div_ceil(per_chunk);
        let bar = (self.progress && n_chunks > 1).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} rows ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(label.to_string());
            bar
        });
        for start in (0..total).step_by(per_chunk) {
            let end = (start + per_chunk).min(total);
            f(start..end)?;
            if let Some(b) = &bar {
                b.inc((end - start) as u64);
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok(())
    }
}

/// A model for some rows of the batch it explains (`Explainable::for_rows`): the model itself
/// when its rows need nothing, a view that selects its inputs per row otherwise.
pub enum View<'a> {
    Same(&'a dyn Explainable),
    Rows(Box<dyn Explainable + 'a>),
}

impl<'a> std::ops::Deref for View<'a> {
    type Target = dyn Explainable + 'a;
    fn deref(&self) -> &Self::Target {
        match self {
            View::Same(m) => *m,
            View::Rows(b) => b.as_ref(),
        }
    }
}

/// `model` for the rows `rows` (u32 indices into its batch).
pub fn view<'a>(model: &'a dyn Explainable, rows: &Tensor) -> Result<View<'a>> {
    Ok(match model.for_rows(rows)? {
        Some(b) => View::Rows(b),
        None => View::Same(model),
    })
}

/// `model` for the consecutive rows `r` of its batch.
pub fn view_range<'a>(
    model: &'a dyn Explainable,
    r: &Range<usize>,
    device: &candle_core::Device,
) -> Result<View<'a>> {
    view(
        model,
        &Tensor::arange(r.start as u32, r.end as u32, device)?,
    )
}

/// Scores `Σ_c seed_c · S_c(x)` per row and their gradient w.r.t. `x`, under `ctx`'s rules.
pub fn gradient(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    ctx: &RuleCtx,
) -> Result<(Tensor, Tensor)> {
    let var = Var::from_tensor(&x.detach())?;
    let out = model.forward_with(var.as_tensor(), ctx)?;
    check_output(&out, x.dim(0)?)?;
    ctx.check_rules_applied()?;
    let scores = (&out * seed)?.sum(1)?;
    let grads = scores.sum_all()?.backward()?;
    let grad = match grads.get(var.as_tensor()) {
        Some(g) => g.clone(),
        // The output does not depend on the input at all.
        None => x.zeros_like()?,
    };
    Ok((scores.detach(), grad))
}

/// LRP's pass: the output relevance is `seed ⊙ output` (for a one-hot seed, the target
/// logit), and the "gradient" that reaches the input under a composite is the relevance.
pub fn relevance(
    model: &dyn Explainable,
    x: &Tensor,
    seed: &Tensor,
    ctx: &RuleCtx,
) -> Result<(Tensor, Tensor)> {
    let var = Var::from_tensor(&x.detach())?;
    let out = model.forward_with(var.as_tensor(), ctx)?;
    check_output(&out, x.dim(0)?)?;
    ctx.check_rules_applied()?;
    let r_out = (seed * out.detach())?;
    let grads = (&out * &r_out)?.sum_all()?.backward()?;
    let rel = match grads.get(var.as_tensor()) {
        Some(g) => g.clone(),
        None => x.zeros_like()?,
    };
    Ok(((out.detach() * seed)?.sum(1)?, rel))
}

/// Forward-only scores `Σ_c seed_c · S_c(x)` per row.
pub fn scores(model: &dyn Explainable, x: &Tensor, seed: &Tensor) -> Result<Tensor> {
    let out = model.forward_with(&x.detach(), &RuleCtx::inference())?;
    check_output(&out, x.dim(0)?)?;
    Ok((&out * seed)?.sum(1)?)
}

/// The model's raw outputs `(rows, classes)`, checked.
pub fn logits(model: &dyn Explainable, x: &Tensor) -> Result<Tensor> {
    let out = model.forward_with(&x.detach(), &RuleCtx::inference())?;
    check_output(&out, x.dim(0)?)?;
    Ok(out)
}

/// The perturbation engine shared by the perturbation methods and the metrics crate.
///
/// Rows are (example, perturbation) pairs, `per_example` per example, example-major. For each
/// chunk, `mask_of(rows, example_index)` builds the `(len, features…)` masks (1 = take the
/// baseline's value), the perturbed inputs are scored (`Σ_c seed_c · S_c`, forward only, on the
/// fastest kernels), and `on_chunk(example_index, masks, scores)` receives the result.
#[allow(clippy::too_many_arguments)]
pub fn perturbation_sweep<E: From<crate::Error> + From<candle_core::Error>>(
    model: &dyn Explainable,
    x: &Tensor,
    baseline: &Tensor,
    seed: &Tensor,
    per_example: usize,
    batching: &Batching,
    label: &str,
    mut mask_of: impl FnMut(&Range<usize>, &Tensor) -> std::result::Result<Tensor, E>,
    mut on_chunk: impl FnMut(&Tensor, &Tensor, Tensor) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let per = batching.rows_per_chunk(model, x, false)?;
    let total = crate::validate::rows(x.dim(0)?, per_example, label)?;
    batching.try_run(total, per, label, |r| {
        let ex = example_index(&r, per_example, x.device())?;
        let xi = x.index_select(&ex, 0)?;
        let m = mask_of(&r, &ex)?.reshape(xi.dims())?.to_dtype(x.dtype())?;
        let pert = (&xi + ((baseline.index_select(&ex, 0)? - &xi)? * &m)?)?;
        let sc = scores(&*view(model, &ex)?, &pert, &seed.index_select(&ex, 0)?)?;
        on_chunk(&ex, &m, sc)
    })
}

/// Row indices of the example each expanded row belongs to, for `reps` rows per example.
pub fn example_index(
    r: &Range<usize>,
    reps: usize,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let v: Vec<u32> = r.clone().map(|i| (i / reps) as u32).collect();
    Ok(Tensor::new(v, device)?)
}

/// Reshapes a per-row column `(n,)` to broadcast over `(n, features…)`.
pub(crate) fn col(v: &Tensor, rank: usize) -> Result<Tensor> {
    let mut dims = vec![v.dim(0)?];
    dims.resize(rank, 1);
    Ok(v.reshape(dims)?)
}
