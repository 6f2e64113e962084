//! Feature groups (superpixels, tokens, columns) given as an integer mask.

use crate::{Error, Result};
use candle_core::{DType, Tensor};

/// Group ids `0..G` for every feature, as a `(1 or batch, features)` one-hot `(…, G, F)`.
pub struct Groups {
    /// `(masks, G, F)`: `masks` is 1 (shared) or the batch size.
    pub onehot: Tensor,
    /// `(masks, F)` group id per feature.
    pub ids: Tensor,
    pub count: usize,
}

impl Groups {
    /// `mask` has the per-example shape, the input's shape, or broadcasts to it (like
    /// `(1, 1, H, W)` for `(B, C, H, W)` inputs); values are non-negative integer group ids.
    /// The ids need not be dense: the `G` distinct ids, in increasing order, are groups `0..G`.
    pub fn new(mask: &Tensor, x: &Tensor) -> Result<Self> {
        let bad = || Error::InvalidParameter {
            name: "feature_mask",
            reason: format!(
                "shape {:?} must broadcast to the input {:?} (or its per-example shape)",
                mask.dims(),
                x.dims()
            ),
        };
        let mask = mask.to_device(x.device())?;
        let mask = if mask.rank() == x.rank() - 1 {
            mask.unsqueeze(0)?
        } else {
            mask
        };
        if mask.rank() != x.rank() {
            return Err(bad());
        }
        let masks = mask.dim(0)?;
        if masks != 1 && masks != x.dim(0)? {
            return Err(bad());
        }
        let mut full = vec![masks];
        full.extend_from_slice(&x.dims()[1..]);
        let mask = mask.broadcast_as(full).map_err(|_| bad())?.contiguous()?;
        let ids: Vec<f64> = mask.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
        if let Some(v) = ids
            .iter()
            .find(|v| !(v.fract() == 0.0 && **v >= 0.0 && **v <= u32::MAX as f64))
        {
            return Err(Error::InvalidParameter {
                name: "feature_mask",
                reason: format!("group ids must be integers in 0..2^32, found {v}"),
            });
        }
        // The ids used, in increasing order, become groups 0..G: ids {0, 65535} are two
        // groups (two ablation passes), not 65,536.
        let mut used: Vec<u32> = ids.iter().map(|&v| v as u32).collect();
        used.sort_unstable();
        used.dedup();
        let count = used.len();
        let f = ids.len() / masks;
        let dense: Vec<u32> = ids
            .iter()
            .map(|&v| used.binary_search(&(v as u32)).unwrap_or(0) as u32)
            .collect();
        let ids = Tensor::from_vec(dense, (masks, 1, f), x.device())?;
        let range = Tensor::arange(0u32, count as u32, x.device())?.reshape((1, count, 1))?;
        let onehot = ids.broadcast_eq(&range)?.to_dtype(x.dtype())?;
        Ok(Self {
            onehot,
            ids: ids.squeeze(1)?,
            count,
        })
    }

    /// Scores of `(example, coalition)` rows, example-major: in row `k` the groups whose bit
    /// is set in `coalitions[k % coalitions.len()]` keep the input's values and the others
    /// take the baseline's. All of them, on the host: see [`Groups::coalition_sweep`] to
    /// consume them chunk by chunk instead.
    #[allow(clippy::too_many_arguments)]
    pub fn coalition_scores(
        &self,
        model: &dyn crate::Explainable,
        x: &Tensor,
        baseline: &Tensor,
        seed: &Tensor,
        coalitions: &[u64],
        batching: &crate::Batching,
        label: &str,
    ) -> Result<Vec<f64>> {
        let e = coalitions.len();
        let rows = crate::validate::rows(x.dim(0)?, e, "coalition scores")?;
        crate::validate::host_alloc(rows, 8, "the coalition scores")?;
        let mut v = Vec::with_capacity(rows);
        self.coalition_sweep(
            model,
            x,
            baseline,
            seed,
            e,
            &|k| coalitions[k],
            batching,
            label,
            |_, sc| {
                v.extend_from_slice(sc);
                Ok(())
            },
        )?;
        Ok(v)
    }

    /// Scores `per_example` coalitions per example, example-major, chunk by chunk: the
    /// coalition of an example's `k`-th row is `coalition(k)` (bit `g` set: group `g` keeps
    /// the input's values, the others take the baseline's), and `on_scores(rows, scores)`
    /// receives each chunk's scores in row order. Nothing grows with `per_example`.
    #[allow(clippy::too_many_arguments)]
    pub fn coalition_sweep(
        &self,
        model: &dyn crate::Explainable,
        x: &Tensor,
        baseline: &Tensor,
        seed: &Tensor,
        per_example: usize,
        coalition: &dyn Fn(usize) -> u64,
        batching: &crate::Batching,
        label: &str,
        mut on_scores: impl FnMut(&std::ops::Range<usize>, &[f64]) -> Result<()>,
    ) -> Result<()> {
        let (g, dev) = (self.count, x.device());
        if g > 64 {
            return Err(Error::InvalidParameter {
                name: "feature_mask",
                reason: format!("coalitions are 64-bit masks: at most 64 groups, got {g}"),
            });
        }
        crate::validate::rows(x.dim(0)?, per_example, "coalition scores")?;
        // The chunk's rows, from the mask builder to the score consumer.
        let span = std::cell::Cell::new((0usize, 0usize));
        crate::batch::perturbation_sweep(
            model,
            x,
            baseline,
            seed,
            per_example,
            batching,
            label,
            |r, ex| -> Result<Tensor> {
                span.set((r.start, r.end));
                let bits: Vec<f32> = r
                    .clone()
                    .flat_map(|i| {
                        let c = coalition(i % per_example);
                        (0..g).map(move |j| (c >> j & 1) as f32)
                    })
                    .collect();
                let present = Tensor::from_vec(bits, (r.len(), 1, g), dev)?.to_dtype(x.dtype())?;
                // 1 = replaced by the baseline, for the sweep.
                Ok(present
                    .matmul(&self.for_examples(ex)?.contiguous()?)?
                    .squeeze(1)?
                    .affine(-1.0, 1.0)?)
            },
            |_, _, sc| {
                let v: Vec<f64> = sc.to_dtype(DType::F64)?.to_vec1()?;
                let (start, end) = span.get();
                on_scores(&(start..end), &v)
            },
        )
    }

    /// 0/1 mask `(len, F)` of group `group[k]` for row `k`, whose example is `ex[k]`.
    pub fn member_mask(&self, ex: &Tensor, group: &[u32]) -> Result<Tensor> {
        let len = ex.dim(0)?;
        let ids = if self.ids.dim(0)? == 1 {
            self.ids.clone()
        } else {
            self.ids.index_select(ex, 0)?
        };
        let g = Tensor::new(group, ex.device())?.reshape((len, 1))?;
        Ok(ids.broadcast_eq(&g)?.to_dtype(self.onehot.dtype())?)
    }

    /// One-hot rows for the given examples: `(len, G, F)`.
    pub fn for_examples(&self, ex: &Tensor) -> Result<Tensor> {
        if self.onehot.dim(0)? == 1 {
            let len = ex.dim(0)?;
            let (_, g, f) = self.onehot.dims3()?;
            Ok(self.onehot.broadcast_as((len, g, f))?)
        } else {
            Ok(self.onehot.index_select(ex, 0)?)
        }
    }
}
