//! Layers of sequence models: LayerNorm and LSTM, in PyTorch's layout and parameter names.

use super::init::{path_of, torch_init};
use crate::activation::Activation;
use crate::{Explainable, Result, RuleCtx};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// LayerNorm over the last dimension (PyTorch's `nn.LayerNorm`: `weight`, `bias`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub eps: f64,
    /// What composites select it by: its `VarBuilder` path when loaded through one.
    pub name: Option<String>,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Option<Tensor>, eps: f64) -> Self {
        Self {
            weight,
            bias,
            eps,
            name: None,
        }
    }

    pub fn load(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?;
        let bias = vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?;
        let mut ln = Self::new(weight, Some(bias), eps);
        ln.name = path_of(&vb);
        Ok(ln)
    }
}

impl Explainable for LayerNorm {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        let _name = self.name.as_deref().map(|n| ctx.enter(n));
        ctx.layer_norm(x, &self.weight, self.bias.as_ref(), self.eps)
    }
}

/// One direction of one LSTM layer: PyTorch's `weight_ih (4H, in)`, `weight_hh (4H, H)` and
/// biases, gates in the order input, forget, cell, output.
#[derive(Debug, Clone)]
pub struct LstmDirection {
    pub weight_ih: Tensor,
    pub weight_hh: Tensor,
    pub bias_ih: Option<Tensor>,
    pub bias_hh: Option<Tensor>,
}

impl LstmDirection {
    fn load(vb: &VarBuilder, suffix: &str, input: usize, hidden: usize) -> Result<Self> {
        let init = torch_init(hidden);
        Ok(Self {
            weight_ih: vb.get_with_hints(
                (4 * hidden, input),
                &format!("weight_ih{suffix}"),
                init,
            )?,
            weight_hh: vb.get_with_hints(
                (4 * hidden, hidden),
                &format!("weight_hh{suffix}"),
                init,
            )?,
            bias_ih: Some(vb.get_with_hints(4 * hidden, &format!("bias_ih{suffix}"), init)?),
            bias_hh: Some(vb.get_with_hints(4 * hidden, &format!("bias_hh{suffix}"), init)?),
        })
    }

    fn hidden(&self) -> usize {
        self.weight_hh.dim(1).unwrap_or(0)
    }

    /// Runs over `x (B, T, in)` and returns every hidden state `(B, T, H)`.
    ///
    /// Each step is one linear layer over `[x_t, h_{t−1}]` (so an LRP rule sees the gate's
    /// whole pre-activation, as in Arras et al. 2017), the gates through `ctx.activation`, the
    /// products through `ctx.gate` and the cell update through `ctx.add`. Under a composite
    /// every step's linear layer gets its own index.
    pub fn forward(&self, x: &Tensor, ctx: &RuleCtx, reverse: bool) -> Result<Tensor> {
        self.forward_masked(x, None, ctx, reverse)
    }

    /// [`LstmDirection::forward`] over a padded batch: where `mask (B, T)` is 0 a step keeps
    /// the previous state (`s = m·s_new + (1 − m)·s_prev`), so padding on either side leaves
    /// every real token's state as it is without padding, and padded inputs get no gradient
    /// (exactly 0).
    pub fn forward_masked(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        ctx: &RuleCtx,
        reverse: bool,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let hsz = self.hidden();
        // Concatenated per call: the parts may be `Var`s being trained.
        let w = Tensor::cat(&[&self.weight_ih, &self.weight_hh], 1)?;
        let bias = match (&self.bias_ih, &self.bias_hh) {
            (Some(a), Some(c)) => Some((a + c)?),
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        };
        let mut h = Tensor::zeros((b, hsz), x.dtype(), x.device())?;
        let mut c = h.clone();
        let mut out = vec![None; t];
        let steps: Vec<usize> = if reverse {
            (0..t).rev().collect()
        } else {
            (0..t).collect()
        };
        for step in steps {
            let xt = x.narrow(1, step, 1)?.squeeze(1)?;
            let z = ctx.linear(&Tensor::cat(&[&xt, &h], 1)?, &w, bias.as_ref())?;
            let part = |k: usize| z.narrow(1, k * hsz, hsz);
            let i = ctx.activation(Activation::Sigmoid, &part(0)?)?;
            let f = ctx.activation(Activation::Sigmoid, &part(1)?)?;
            let g = ctx.activation(Activation::Tanh, &part(2)?)?;
            let o = ctx.activation(Activation::Sigmoid, &part(3)?)?;
            let c_new = ctx.add(&ctx.gate(&f, &c)?, &ctx.gate(&i, &g)?)?;
            let h_new = ctx.gate(&o, &ctx.activation(Activation::Tanh, &c_new)?)?;
            match mask {
                None => (c, h) = (c_new, h_new),
                Some(m) => {
                    let keep = m.narrow(1, step, 1)?;
                    let hold = keep.affine(-1.0, 1.0)?;
                    c = (c_new.broadcast_mul(&keep)? + c.broadcast_mul(&hold)?)?;
                    h = (h_new.broadcast_mul(&keep)? + h.broadcast_mul(&hold)?)?;
                }
            }
            out[step] = Some(h.unsqueeze(1)?);
        }
        let out: Vec<Tensor> = out.into_iter().flatten().collect();
        Ok(Tensor::cat(&out, 1)?)
    }
}

/// A multi-layer, optionally bidirectional LSTM (PyTorch's `nn.LSTM(batch_first=True)`,
/// names `weight_ih_l{k}`, `…_reverse`), zero initial state.
#[derive(Debug, Clone)]
pub struct Lstm {
    /// Per layer: forward direction, and the reverse one if bidirectional.
    pub layers: Vec<Vec<LstmDirection>>,
}

impl Lstm {
    pub fn load(
        vb: VarBuilder,
        input: usize,
        hidden: usize,
        num_layers: usize,
        bidirectional: bool,
    ) -> Result<Self> {
        if num_layers == 0 || hidden == 0 {
            return Err(crate::error::invalid(
                "lstm",
                "need at least one layer and one hidden unit",
            ));
        }
        let dirs = if bidirectional { 2 } else { 1 };
        let layers = (0..num_layers)
            .map(|l| {
                let inp = if l == 0 { input } else { hidden * dirs };
                let mut d = vec![LstmDirection::load(&vb, &format!("_l{l}"), inp, hidden)?];
                if bidirectional {
                    d.push(LstmDirection::load(
                        &vb,
                        &format!("_l{l}_reverse"),
                        inp,
                        hidden,
                    )?);
                }
                Ok(d)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// Every hidden state of the last layer, `(B, T, H·directions)`.
    pub fn forward(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        self.forward_masked(x, None, ctx)
    }

    /// [`Lstm::forward`] over a padded batch, `mask (B, T)` 1 for tokens and 0 for padding
    /// (see [`LstmDirection::forward_masked`]).
    pub fn forward_masked(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        ctx: &RuleCtx,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let mask = match mask {
            None => None,
            Some(m) if m.dims() == [b, t] => Some(m.to_dtype(x.dtype())?),
            Some(m) => {
                return Err(crate::Error::InputShape {
                    expected: format!("attention_mask ({b}, {t}), one 0/1 per step"),
                    got: m.dims().to_vec(),
                })
            }
        };
        let mut h = x.clone();
        for layer in &self.layers {
            let outs = layer
                .iter()
                .enumerate()
                .map(|(d, dir)| dir.forward_masked(&h, mask.as_ref(), ctx, d == 1))
                .collect::<Result<Vec<_>>>()?;
            h = Tensor::cat(&outs, 2)?;
        }
        Ok(h)
    }
}
