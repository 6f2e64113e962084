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

/// `a · b` rows (examples × steps, samples, coalitions…), or a clear error on overflow.
pub fn rows(examples: usize, per_example: usize, what: &str) -> Result<usize> {
    examples
        .checked_mul(per_example)
        .ok_or_else(|| Error::TooLarge {
            what: what.to_string(),
            needed: format!("{examples} examples × {per_example} rows each"),
            limit: format!("the largest row count ({})", usize::MAX),
            hint: "use fewer steps / samples".into(),
        })
}

/// Host memory a single allocation may take: what the system reports as available
/// (`MemAvailable` in /proc/meminfo), or 16 GiB where that cannot be read.
pub fn host_memory_limit() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(16 << 30, |kb| kb.saturating_mul(1024))
}

/// Checks that `count` elements of `elem_bytes` each can be allocated on the host before
/// allocating them, so that an absurd count is an error instead of an abort.
pub fn host_alloc(count: usize, elem_bytes: usize, what: &str) -> Result<()> {
    let limit = host_memory_limit();
    match count.checked_mul(elem_bytes) {
        Some(b) if b <= limit => Ok(()),
        b => Err(Error::TooLarge {
            what: what.to_string(),
            needed: b.map_or(format!("{count} × {elem_bytes} bytes (overflows)"), |b| {
                format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
            }),
            limit: format!(
                "the {:.1} GiB of memory available",
                limit as f64 / (1u64 << 30) as f64
            ),
            hint: "use a smaller count".into(),
        }),
    }
}

/// Indices of the rows of `t` (first axis) that hold a NaN or an infinity.
#[allow(clippy::eq_op)]
pub fn non_finite_rows(t: &Tensor) -> Result<Vec<usize>> {
    if t.rank() == 0 {
        return Ok(if non_finite_count(t)? > 0 {
            vec![0]
        } else {
            vec![]
        });
    }
    let d = (t - t)?;
    let d = if d.rank() == 1 {
        d.unsqueeze(1)?
    } else {
        d.flatten_from(1)?
    };
    let bad: Vec<f32> = d
        .ne(&d)?
        .to_dtype(candle_core::DType::F32)?
        .sum(1)?
        .to_vec1()?;
    Ok(bad
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0.0)
        .map(|(i, _)| i)
        .collect())
}
