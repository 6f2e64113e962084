//! Input checks shared by every method: bad input gets a clear error, never a panic.

use crate::{Error, Explainable, Result};
use candle_core::Tensor;

/// Number of NaN / ±inf elements: `x − x` is NaN exactly there.
#[allow(clippy::eq_op)]
pub fn non_finite_count(t: &Tensor) -> Result<usize> {
    let d = (t - t)?;
    Ok(d.ne(&d)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()? as usize)
}

pub fn check_finite(t: &Tensor, what: &'static str) -> Result<()> {
    match non_finite_count(t)? {
        0 => Ok(()),
        count => Err(Error::NonFinite { what, count }),
    }
}

/// A batch of at least one example, of the model's input shape when it declares one, finite.
pub fn check_input(model: &dyn Explainable, x: &Tensor) -> Result<()> {
    if !x.dtype().is_float() {
        return Err(Error::InputShape {
            expected: format!("a float tensor, got dtype {:?}", x.dtype()),
            got: x.dims().to_vec(),
        });
    }
    if x.rank() < 2 || x.dim(0)? == 0 {
        return Err(Error::InputShape {
            expected: "(batch ≥ 1, features…)".into(),
            got: x.dims().to_vec(),
        });
    }
    if let Some(shape) = model.input_shape() {
        if x.dims()[1..] != shape[..] {
            let mut expected = vec!["batch".to_string()];
            expected.extend(shape.iter().map(|d| d.to_string()));
            return Err(Error::InputShape {
                expected: format!("({})", expected.join(", ")),
                got: x.dims().to_vec(),
            });
        }
    }
    check_finite(x, "input")
}

/// Model outputs must be `(rows, classes)`.
pub fn check_output(out: &Tensor, rows: usize) -> Result<usize> {
    if out.rank() != 2 || out.dim(0)? != rows {
        return Err(Error::OutputShape {
            got: out.dims().to_vec(),
        });
    }
    Ok(out.dim(1)?)
}

pub fn positive(name: &'static str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(crate::error::invalid(name, "must be at least 1"));
    }
    Ok(())
}

pub fn finite_param(name: &'static str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(crate::error::invalid(
            name,
            format!("must be finite, got {v}"),
        ));
    }
    Ok(())
}
