//! What only training needs, kept apart from the attribution path: a convolution whose
//! backward also gives its kernel's gradient, and BatchNorm with batch statistics. The rule
//! contexts never reach this module, so attribution never computes a weight gradient.

pub(crate) mod batch_norm_cpu;

/// PyTorch's default momentum of BatchNorm's running averages.
pub(crate) const BATCH_NORM_MOMENTUM: f64 = 0.1;
mod conv_cpu;

use crate::ops::conv::ConvGeometry;
use crate::Result;
use candle_core::Tensor;

/// A convolution differentiable w.r.t. its input and its kernel, on our CPU kernels where they
/// apply (Candle's stock conv backward is a direct loop).
pub(crate) fn conv_forward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: ConvGeometry,
) -> candle_core::Result<Tensor> {
    if !crate::ops::conv::cpu::applies(x) || x.dtype() != w.dtype() {
        return crate::ops::conv::forward(x, w, b, g);
    }
    let y = x
        .contiguous()?
        .apply_op2(&w.contiguous()?, conv_cpu::Conv2dTrainCpu(g))?;
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?,
        None => y,
    })
}

/// Training-mode normalisation: the batch's mean and biased variance over every axis but
/// the channels (axis 1); the running averages move towards the batch's mean and
/// *unbiased* variance by [`BATCH_NORM_MOMENTUM`], as in PyTorch.
pub(crate) fn batch_norm_forward(
    x: &Tensor,
    (weight, bias): (&Tensor, &Tensor),
    (running_mean, running_var): (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    let c = weight.elem_count();
    if x.rank() < 2 || x.dim(1)? != c {
        return Err(crate::error::invalid(
            "batch_norm",
            format!("input {:?}: need (batch, {c}, …)", x.dims()),
        ));
    }
    let m = BATCH_NORM_MOMENTUM;
    let update = |run: &Tensor, batch: Tensor| -> Result<()> {
        let new =
            ((run * (1.0 - m))? + (batch.detach().flatten_all()?.to_dtype(run.dtype())? * m)?)?;
        Ok(run.slice_set(&new, 0, 0)?)
    };
    let n = x.elem_count() / c;
    if n < 2 {
        return Err(crate::error::invalid(
            "batch_norm",
            "training needs more than one value per channel",
        ));
    }
    let unbias = n as f64 / (n - 1) as f64;
    let fits = |t: &Tensor| crate::ops::conv::cpu::applies(t) && t.dtype() == x.dtype();
    if fits(x) && fits(weight) && fits(bias) {
        use batch_norm_cpu::{BatchNormTrainCpu, BatchStats};
        let stats = std::sync::Arc::new(std::sync::Mutex::new(BatchStats::default()));
        let op = BatchNormTrainCpu {
            eps,
            stats: stats.clone(),
        };
        let y = x.contiguous()?.apply_op3(weight, bias, op)?;
        let st = stats
            .lock()
            .map_err(|_| crate::error::invalid("batch_norm", "statistics lock poisoned"))?
            .clone();
        let dev = x.device();
        update(running_mean, Tensor::new(st.mean.as_slice(), dev)?)?;
        update(
            running_var,
            (Tensor::new(st.var.as_slice(), dev)? * unbias)?,
        )?;
        return Ok(y);
    }
    // Elsewhere, Candle ops: (C, rest) so that the statistics are row reductions.
    let rows = x.transpose(0, 1)?.contiguous()?.reshape((c, ()))?;
    let mean = rows.mean_keepdim(1)?;
    let centred = rows.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(1)?;
    update(running_mean, mean)?;
    update(running_var, (&var * unbias)?)?;
    let y = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    let y = y
        .broadcast_mul(&weight.reshape((c, 1))?)?
        .broadcast_add(&bias.reshape((c, 1))?)?;
    let mut dims = x.dims().to_vec();
    dims.swap(0, 1);
    Ok(y.reshape(dims)?.transpose(0, 1)?)
}
