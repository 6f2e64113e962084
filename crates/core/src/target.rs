//! What to explain: which output (or combination of outputs) of the model.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// The output an attribution explains.
#[derive(Debug, Clone)]
pub enum Target {
    /// The same class for every example.
    Class(usize),
    /// One class per example.
    PerExample(Vec<usize>),
    /// Several classes for every example, explained in one batched pass: attributions get an
    /// extra axis, `(batch, classes.len(), features…)`.
    Classes(Vec<usize>),
    /// An arbitrary seed on the output `(batch, num_classes)`: explains `Σ_c seed_c · S_c(x)`.
    Seed(Tensor),
}

/// Per-row targets of a (possibly expanded) batch.
#[derive(Debug, Clone)]
pub(crate) enum RowTargets {
    Classes(Vec<usize>),
    Seed(Tensor),
}

/// A batch ready for a method: the rows to explain and their targets.
pub(crate) struct Prepared {
    pub x: Tensor,
    pub rows: RowTargets,
    /// `Some(k)` when every example was repeated for `k` classes.
    pub classes_per_example: Option<usize>,
    pub batch: usize,
}

impl Target {
    pub(crate) fn prepare(&self, x: &Tensor) -> Result<Prepared> {
        let b = x.dim(0)?;
        let (x, rows, k) = match self {
            Target::Class(c) => (x.clone(), RowTargets::Classes(vec![*c; b]), None),
            Target::PerExample(v) => {
                if v.len() != b {
                    return Err(Error::Target(format!(
                        "PerExample has {} classes for a batch of {b} examples",
                        v.len()
                    )));
                }
                (x.clone(), RowTargets::Classes(v.clone()), None)
            }
            Target::Classes(cs) => {
                if cs.is_empty() {
                    return Err(Error::Target("Classes needs at least one class".into()));
                }
                let k = cs.len();
                let rows: Vec<usize> = (0..b).flat_map(|_| cs.iter().copied()).collect();
                (repeat_rows(x, k)?, RowTargets::Classes(rows), Some(k))
            }
            Target::Seed(s) => {
                if s.rank() != 2 || s.dim(0)? != b {
                    return Err(Error::Target(format!(
                        "Seed must be (batch = {b}, num_classes), got {:?}",
                        s.dims()
                    )));
                }
                crate::validate::check_finite(s, "target seed")?;
                (x.clone(), RowTargets::Seed(s.clone()), None)
            }
        };
        Ok(Prepared {
            x,
            rows,
            classes_per_example: k,
            batch: b,
        })
    }

    /// The `(batch, num_classes)` seed of a target with one explained output per example
    /// (every target but `Classes`, which expands the batch), with every class checked.
    pub fn seed(
        &self,
        batch: usize,
        num_classes: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<Tensor> {
        let rows = match self {
            Target::Class(c) => RowTargets::Classes(vec![*c; batch]),
            Target::PerExample(v) if v.len() == batch => RowTargets::Classes(v.clone()),
            Target::PerExample(v) => {
                return Err(Error::Target(format!(
                    "PerExample has {} classes for a batch of {batch} examples",
                    v.len()
                )))
            }
            Target::Seed(s) if s.rank() == 2 && s.dim(0)? == batch => RowTargets::Seed(s.clone()),
            Target::Seed(s) => {
                return Err(Error::Target(format!(
                    "Seed must be (batch = {batch}, num_classes), got {:?}",
                    s.dims()
                )))
            }
            Target::Classes(_) => {
                return Err(Error::Target(
                    "Classes explains several outputs per example; this needs one".into(),
                ))
            }
        };
        rows.seed(num_classes, device, dtype)
    }

    /// The target of a batch made of the examples `ex` (indices into this target's batch,
    /// repeats allowed), in that order.
    pub(crate) fn select_examples(&self, ex: &[u32]) -> Result<Target> {
        Ok(match self {
            Target::PerExample(v) => Target::PerExample(
                ex.iter()
                    .map(|&i| {
                        v.get(i as usize).copied().ok_or_else(|| {
                            Error::Target(format!(
                                "PerExample has {} classes, example {i} asked for",
                                v.len()
                            ))
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            Target::Seed(s) => Target::Seed(s.index_select(&Tensor::new(ex, s.device())?, 0)?),
            t => t.clone(),
        })
    }
}

impl From<usize> for Target {
    fn from(c: usize) -> Self {
        Target::Class(c)
    }
}

impl RowTargets {
    /// The `(rows, num_classes)` seed, checking every class index against `num_classes`.
    pub fn seed(&self, num_classes: usize, device: &Device, dtype: DType) -> Result<Tensor> {
        match self {
            RowTargets::Classes(cs) => {
                if let Some(&c) = cs.iter().find(|&&c| c >= num_classes) {
                    return Err(Error::TargetOutOfRange {
                        class: c,
                        num_classes,
                    });
                }
                let mut v = vec![0f32; cs.len() * num_classes];
                for (r, &c) in cs.iter().enumerate() {
                    v[r * num_classes + c] = 1.0;
                }
                Ok(Tensor::from_vec(v, (cs.len(), num_classes), device)?.to_dtype(dtype)?)
            }
            RowTargets::Seed(s) => {
                if s.dim(1)? != num_classes {
                    return Err(Error::Target(format!(
                        "Seed has {} columns but the model has {num_classes} outputs",
                        s.dim(1)?
                    )));
                }
                Ok(s.to_device(device)?.to_dtype(dtype)?)
            }
        }
    }
}

/// Repeats every row `reps` times in a row: `[a, b] → [a, a, b, b]` for `reps = 2`.
pub(crate) fn repeat_rows(x: &Tensor, reps: usize) -> Result<Tensor> {
    let n = x.dim(0)?;
    let idx: Vec<u32> = (0..n as u32)
        .flat_map(|i| std::iter::repeat_n(i, reps))
        .collect();
    Ok(x.index_select(&Tensor::new(idx, x.device())?, 0)?)
}
