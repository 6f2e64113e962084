//! Canonizers: rewrite a model into an equivalent one on which rules apply cleanly
//! (Zennit's term). A BatchNorm right after a conv or linear layer folds into it, so that
//! LRP rules see one affine layer (rules applied to BatchNorm on its own break
//! conservation). Residual sums and average pools need no rewrite: models route them through
//! `RuleCtx::add` and `RuleCtx::avg_pool2d`, where composites attach Zennit's Norm rule.

use crate::nn::{BatchNorm, Conv2d, Linear};
use crate::{Error, Result};

fn check(out: usize, bn: &BatchNorm, what: &str) -> Result<()> {
    if bn.weight.elem_count() != out {
        return Err(Error::InvalidParameter {
            name: "batch_norm",
            reason: format!(
                "{what} has {out} outputs but the BatchNorm has {} channels",
                bn.weight.elem_count()
            ),
        });
    }
    Ok(())
}

/// `bn(conv(x))` as one conv: `W' = W·scale` per output channel, `b' = b·scale + shift`.
pub fn fold_conv_batch_norm(conv: &Conv2d, bn: &BatchNorm) -> Result<Conv2d> {
    let out = conv.weight.dim(0)?;
    check(out, bn, "the conv")?;
    let (scale, shift) = bn.scale_shift()?;
    let weight = conv.weight.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
    let bias = match &conv.bias {
        Some(b) => ((b * &scale)? + &shift)?,
        None => shift,
    };
    let mut folded = Conv2d::new(weight, Some(bias), conv.geometry);
    // Composites select the folded layer by the conv's name.
    folded.name = conv.name.clone();
    Ok(folded)
}

/// `bn(linear(x))` as one linear layer.
pub fn fold_linear_batch_norm(lin: &Linear, bn: &BatchNorm) -> Result<Linear> {
    let out = lin.weight.dim(0)?;
    check(out, bn, "the linear layer")?;
    let (scale, shift) = bn.scale_shift()?;
    let weight = lin.weight.broadcast_mul(&scale.reshape((out, 1))?)?;
    let bias = match &lin.bias {
        Some(b) => ((b * &scale)? + &shift)?,
        None => shift,
    };
    let mut folded = Linear::new(weight, Some(bias));
    folded.name = lin.name.clone();
    Ok(folded)
}
