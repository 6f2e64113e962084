//! The result of a method, and the trait every method implements.

use crate::target::Prepared;
use crate::{Explainable, Result, Target};
use candle_core::{DType, Tensor};

/// What a method returns.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// One value per input feature: the input's shape, or `(batch, classes, features…)` for
    /// [`Target::Classes`].
    pub attributions: Tensor,
    /// The explained score `S_c(x)` per example: `(batch,)`, or `(batch, classes)`.
    pub output: Tensor,
    /// `S_c(x̄)` for methods with a baseline.
    pub baseline_output: Option<Tensor>,
    /// Completeness delta `Σ_i R_i − (S_c(x) − S_c(x̄))` (with `S_c(x̄) = 0` for LRP) for the
    /// methods that promise completeness.
    pub delta: Option<Tensor>,
    /// Steps used per example by adaptive methods (adaptive Integrated Gradients).
    pub steps: Option<Vec<usize>>,
}

/// An attribution method.
pub trait Attributor {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution>;
}

/// A boxed method is a method (a CLI builds them by name, and wraps them in ensembles).
impl<A: Attributor + ?Sized> Attributor for Box<A> {
    fn attribute(&self, model: &dyn Explainable, input: &Tensor, target: &Target) -> Result<Attribution> {
        (**self).attribute(model, input, target)
    }
}

impl Attribution {
    /// The largest |completeness delta| over every example (and class), for methods that
    /// report one.
    pub fn largest_delta(&self) -> Result<Option<f32>> {
        match &self.delta {
            None => Ok(None),
            Some(d) => Ok(Some(
                d.abs()?
                    .flatten_all()?
                    .max(0)?
                    .to_dtype(candle_core::DType::F32)?
                    .to_scalar::<f32>()?,
            )),
        }
    }

    /// Reshapes row-level results back to the user's view (adds the classes axis if needed).
    ///
    /// Every returned number is checked: a NaN or infinity in the output, the baseline's
    /// output, the attributions or the delta is an error naming `method`, the examples and
    /// what to try, never a result.
    pub(crate) fn finish(
        p: &Prepared,
        method: &'static str,
        attributions: Tensor,
        output: Tensor,
        baseline_output: Option<Tensor>,
        delta: Option<Tensor>,
    ) -> Result<Self> {
        check_finite_result(p, method, "model's output", &output)?;
        if let Some(b) = &baseline_output {
            check_finite_result(p, method, "model's output on the baseline", b)?;
        }
        check_finite_result(p, method, "attribution", &attributions)?;
        if let Some(d) = &delta {
            check_finite_result(p, method, "completeness delta", d)?;
        }
        let fold = |t: Tensor| -> Result<Tensor> {
            match p.classes_per_example {
                None => Ok(t),
                Some(k) => {
                    let mut dims = vec![p.batch, k];
                    dims.extend_from_slice(&t.dims()[1..]);
                    Ok(t.reshape(dims)?)
                }
            }
        };
        Ok(Self {
            attributions: fold(attributions)?,
            output: fold(output)?,
            baseline_output: baseline_output.map(fold).transpose()?,
            delta: delta.map(fold).transpose()?,
            steps: None,
        })
    }
}

/// Sum of every example's attributions: `(rows, features…) → (rows,)`.
pub(crate) fn sum_per_row(t: &Tensor) -> Result<Tensor> {
    Ok(t.flatten_from(1)?.sum(1)?)
}

/// The error for a non-finite `what` (rows of the expanded batch), with a hint for its cause.
fn check_finite_result(
    p: &Prepared,
    method: &'static str,
    what: &'static str,
    t: &Tensor,
) -> Result<()> {
    let rows = crate::validate::non_finite_rows(t)?;
    if rows.is_empty() {
        return Ok(());
    }
    let k = p.classes_per_example.unwrap_or(1);
    let mut examples: Vec<usize> = rows.iter().map(|r| r / k).collect();
    examples.dedup();
    let half = matches!(t.dtype(), DType::F16 | DType::BF16);
    let hint = match what {
        "model's output" => "the model itself returns NaN / inf for these inputs: check its weights for NaN / inf and its config (e.g. a negative layer_norm_eps)".to_string(),
        "model's output on the baseline" => "the model returns NaN / inf on the baseline: use a baseline within the input's range".to_string(),
        _ if half => format!("{:?} overflows above {}: run in f32", t.dtype(), if t.dtype() == DType::F16 { "65504" } else { "3.4e38 or loses the precision this needs" }),
        _ => "an intermediate value is NaN / inf: check the model's weights for NaN / inf, then the method's parameters (a baseline far outside the input's range, a tiny ε), or run in f64".to_string(),
    };
    Err(crate::Error::NonFiniteResult {
        method,
        what,
        examples,
        layer: None,
        hint,
    })
}
