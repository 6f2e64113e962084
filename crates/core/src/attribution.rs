//! The result of a method, and the trait every method implements.

use crate::target::Prepared;
use crate::{Explainable, Result, Target};
use candle_core::Tensor;

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

impl Attribution {
    /// Reshapes row-level results back to the user's view (adds the classes axis if needed).
    pub(crate) fn finish(
        p: &Prepared,
        attributions: Tensor,
        output: Tensor,
        baseline_output: Option<Tensor>,
        delta: Option<Tensor>,
    ) -> Result<Self> {
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
