//! The operations of transformers and LSTMs: LayerNorm, scaled dot-product attention and
//! multiplicative gates. Each has a *factor* that is not a linear function of its input —
//! LayerNorm's standard deviation, attention's softmax weights, an LSTM gate — and the rules
//! differ only in what they do with it:
//!
//! - exact (`LayerRule::Gradient`, and every gradient context whose nonlinearity rule is the
//!   gradient or DeepLIFT's Rescale): the factor is differentiated like everything else;
//! - conservative (`LayerRule::Epsilon(ε)`, the default under LRP composites and for
//!   ε / pass / guided nonlinearity rules): the factor is held constant in the backward, so
//!   the op is linear in its input and relevance is conserved through it — Ali et al. 2022
//!   ("XAI for Transformers: better explanations through conservative propagation": the LN
//!   and AH rules) for LayerNorm and attention, Arras et al. 2017 ("signal-take-all") for
//!   gates: the gate gets no relevance, the signal all of it.
//!
//! Under a composite the backward carries relevance, so the conservative ops apply the ε-rule
//! to the linearised op: `R_x = x ⊙ Aᵀ (R_y / stab(y, ε))`; in gradient contexts they detach
//! the factor and let the gradient through.

use super::{Mode, RuleCtx};
use crate::composite::LayerKind;
use crate::ops::attention::cpu::{AttentionCpu, AttentionGrads};
use crate::ops::layer_norm::cpu::LayerNormCpu;
use crate::ops::stabilize::stabilized_div;
use crate::ops::{boundary, fused3, InputGrad};
use crate::rule::Treatment;
use crate::Result;
use candle_core::{DType, Tensor, D};

/// How the backward treats an op's factor.
enum Factor {
    Exact,
    /// Gradient context: detach the factor.
    Detached,
    /// Relevance context (a composite): ε-rule on the linearised op.
    Relevance(f64),
    /// AttnLRP's uniform rule (gradient form): exact, with each product's operands given
    /// an equal share of the gradient.
    Uniform,
}

impl RuleCtx {
    /// How this context treats the factor of a LayerNorm, attention or gate: the rule the
    /// composite selects (`composite::defaults` when none), or the nonlinearity rule's default.
    fn factor(&self, kind: LayerKind) -> Result<Factor> {
        let Mode::Rule(act) = self.mode else {
            return Ok(Factor::Exact);
        };
        if self.uniform_products && matches!(kind, LayerKind::Attention | LayerKind::Gate) {
            return Ok(Factor::Uniform);
        }
        let relevance = self.select.composite.is_some();
        Ok(match (self.select.factor(kind, act)?, relevance) {
            (Treatment::Exact, _) => Factor::Exact,
            (Treatment::Conservative { epsilon }, true) => Factor::Relevance(epsilon),
            (Treatment::Conservative { .. }, false) => Factor::Detached,
        })
    }

    /// LayerNorm over the last dimension (PyTorch's `nn.LayerNorm`): `γ ⊙ (x − μ) / σ + β` with
    /// `σ = √(var(x) + eps)`.
    pub fn layer_norm(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        self.routed();
        // The fused kernels take β always.
        let zero;
        let beta_or_zero = match beta {
            Some(b) => b,
            None => {
                zero = gamma.zeros_like()?;
                &zero
            }
        };
        // Candle's fused kernel (f32 / f16 / bf16) where nothing needs a gradient.
        if matches!(self.mode, Mode::Inference | Mode::Probe | Mode::Record)
            && x.dtype() != candle_core::DType::F64
        {
            let y = candle_nn::ops::layer_norm(&x.contiguous()?, gamma, beta_or_zero, eps as f32)?;
            self.count(&y);
            return Ok(y);
        }
        let factor = self.factor(LayerKind::LayerNorm)?;
        let norm = |x: &Tensor, detach_sd: bool| -> Result<(Tensor, Tensor)> {
            let xc = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
            let sd = (xc.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
            let sd = if detach_sd { sd.detach() } else { sd };
            let mut y = xc.broadcast_div(&sd)?.broadcast_mul(gamma)?;
            if let Some(b) = beta {
                y = y.broadcast_add(b)?;
            }
            Ok((y, sd))
        };
        // Gradient contexts on the CPU and CUDA: our one-pass input gradient (weights need no
        // gradient here); on the CPU our one-pass forward as well, on CUDA Candle's.
        let same = gamma.dtype() == x.dtype() && beta_or_zero.dtype() == x.dtype();
        let cpu = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64);
        let cuda = cfg!(feature = "cuda") && x.device().is_cuda() && x.dtype().is_float();
        if let (Mode::Rule(_), true, Factor::Exact | Factor::Detached) =
            (&self.mode, same && (cpu || cuda), &factor)
        {
            let grad = LayerNormGrad {
                gamma: gamma.clone(),
                eps,
                exact: matches!(factor, Factor::Exact),
            };
            let y = if cpu {
                let (g, b) = (gamma.contiguous()?, beta_or_zero.contiguous()?);
                fused3(&x.contiguous()?, &g, &b, LayerNormCpu { eps }, grad)?
            } else {
                let y = match x.dtype() {
                    DType::F64 => norm(&x.detach(), true)?.0,
                    _ => {
                        let xd = x.detach().contiguous()?;
                        candle_nn::ops::layer_norm(&xd, gamma, beta_or_zero, eps as f32)?
                    }
                };
                boundary(x, &y, grad)?
            };
            self.count(&y);
            return Ok(y);
        }
        match factor {
            Factor::Exact | Factor::Uniform => Ok(norm(x, false)?.0),
            Factor::Detached => Ok(norm(x, true)?.0),
            Factor::Relevance(eps_rule) => {
                let (y, sd) = norm(&x.detach(), true)?;
                Ok(boundary(
                    x,
                    &y,
                    LayerNormRelevance {
                        sd,
                        gamma: gamma.clone(),
                        eps: eps_rule,
                    },
                )?)
            }
        }
    }

    /// RMSNorm over the last dimension (Llama's, Qwen's q/k norms): `γ ⊙ x / ρ` with
    /// `ρ = √(mean(x²) + eps)`, computed in f32 and cast back before `γ`, as transformers
    /// does. Its factor `1/ρ` is treated like LayerNorm's σ (the same rules select it): held
    /// constant by the conservative rules, so the op is linear and passes relevance on
    /// unchanged (up to the ε of the rule).
    pub fn rms_norm(&self, x: &Tensor, gamma: &Tensor, eps: f64) -> Result<Tensor> {
        self.routed();
        let factor = self.factor(LayerKind::LayerNorm)?;
        let dt = x.dtype();
        let normed = |x: &Tensor, detach: bool| -> Result<Tensor> {
            let xf = x.to_dtype(DType::F32)?;
            let inv = (xf.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
            let inv = if detach { inv.detach() } else { inv };
            Ok(xf.broadcast_mul(&inv)?.to_dtype(dt)?.broadcast_mul(gamma)?)
        };
        let y = match factor {
            Factor::Exact | Factor::Uniform => normed(x, false)?,
            Factor::Detached => normed(x, true)?,
            Factor::Relevance(eps_rule) => {
                let y = normed(&x.detach(), true)?;
                boundary(x, &y, DiagonalRelevance { eps: eps_rule })?
            }
        };
        self.count(&y);
        Ok(y)
    }

    /// Scaled dot-product attention `softmax(q kᵀ · scale + mask) v` over the last two
    /// dimensions of `q (…, Lq, d)`, `k (…, Lk, d)`, `v (…, Lk, dv)`; `mask` is additive and
    /// broadcasts to `(…, Lq, Lk)` (0 to keep, a large negative number to drop).
    pub fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        scale: f64,
    ) -> Result<Tensor> {
        self.routed();
        let mut factor = self.factor(LayerKind::Attention)?;
        // AttnLRP: `q kᵀ` then `P v`, each product halving its operands' shares.
        let scaled;
        let (q, k, v) = if matches!(factor, Factor::Uniform) {
            factor = Factor::Exact;
            scaled = (
                scale_gradient(q, 0.25)?,
                scale_gradient(k, 0.25)?,
                scale_gradient(v, 0.5)?,
            );
            (&scaled.0, &scaled.1, &scaled.2)
        } else {
            (q, k, v)
        };
        let weights = |q: &Tensor, k: &Tensor, differentiable: bool| -> Result<Tensor> {
            Ok(crate::ops::attention::weights(
                q,
                k,
                mask,
                scale,
                differentiable,
            )?)
        };
        let kernel = q.device().is_cpu()
            && matches!(q.dtype(), DType::F32 | DType::F64)
            && [k.dtype(), v.dtype()].iter().all(|d| *d == q.dtype())
            && mask.is_none_or(|m| m.dtype() == q.dtype() && m.device().is_cpu());
        let y = match factor {
            // On the CPU: one op, with the closed-form backward of the kernel.
            Factor::Exact | Factor::Detached if kernel && !matches!(self.mode, Mode::Plain) => {
                let mut p_dims = q.dims().to_vec();
                if let (Some(last), Ok(lk)) = (p_dims.last_mut(), k.dim(D::Minus2)) {
                    *last = lk;
                }
                let mask = mask.map(|m| m.broadcast_as(p_dims.as_slice())).transpose()?;
                let grads = match factor {
                    Factor::Exact => AttentionGrads::All,
                    _ => AttentionGrads::ValueOnly,
                };
                if let Mode::Probe = self.mode {
                    // The weights the backward will find kept, for the one row probed.
                    let weights: usize = p_dims.iter().product();
                    let elem = q.dtype().size_in_bytes();
                    if crate::ops::attention::cpu::keeps_weights(weights, elem) {
                        self.probe.add(weights * elem);
                    }
                }
                let op = AttentionCpu::new(scale, mask, grads);
                let (q, k) = match grads {
                    AttentionGrads::All => (q.clone(), k.clone()),
                    AttentionGrads::ValueOnly => (q.detach(), k.detach()),
                };
                if [&q, &k, v].iter().any(|t| t.track_op()) {
                    q.apply_op3_arc(&k, v, std::sync::Arc::new(Box::new(op)))?
                } else {
                    // No backward will read the weights.
                    q.apply_op3_no_bwd(&k, v, &op.keeping_weights_up_to(0))?
                }
            }
            // Gradient contexts elsewhere (CUDA, Metal, half precision): one boundary for
            // the three inputs with the closed-form backward (`ops::attention`).
            Factor::Exact if matches!(self.mode, Mode::Rule(_)) => {
                crate::ops::attention::attention(q, k, v, mask, scale)?
            }
            Factor::Exact if matches!(self.mode, Mode::Plain) => {
                weights(q, k, true)?.matmul(&v.contiguous()?)?
            }
            Factor::Exact | Factor::Detached => {
                weights(&q.detach(), &k.detach(), false)?.matmul(&v.contiguous()?)?
            }
            Factor::Uniform => unreachable!("replaced by Exact above"),
            Factor::Relevance(eps) => {
                let p = weights(&q.detach(), &k.detach(), false)?;
                let y = p.matmul(&v.detach().contiguous()?)?;
                boundary(v, &y, AttentionRelevance { p, eps })?
            }
        };
        self.count(&y);
        Ok(y)
    }

    /// `gate ⊙ signal` (an LSTM's gates): the conservative rules give the signal all the
    /// relevance and the gate none.
    pub fn gate(&self, gate: &Tensor, signal: &Tensor) -> Result<Tensor> {
        self.routed();
        let y = match self.factor(LayerKind::Gate)? {
            Factor::Exact => (gate * signal)?,
            Factor::Uniform => (scale_gradient(gate, 0.5)? * scale_gradient(signal, 0.5)?)?,
            Factor::Detached => (gate.detach() * signal)?,
            Factor::Relevance(_) => {
                boundary(signal, &(gate.detach() * signal.detach())?, SignalTakesAll)?
            }
        };
        self.count(&y);
        Ok(y)
    }
}

/// `R_x = x ⊙ (γ/σ) ⊙ center(R / stab(y))`: the ε-rule through `y = γ ⊙ (x − μ)/σ + β` with σ
/// held constant (the centring matrix is symmetric).
struct LayerNormRelevance {
    sd: Tensor,
    gamma: Tensor,
    eps: f64,
}

impl InputGrad for LayerNormRelevance {
    fn name(&self) -> &'static str {
        "candle-explain-layer-norm-relevance"
    }
    fn input_grad(&self, x: &Tensor, y: &Tensor, r: &Tensor) -> candle_core::Result<Tensor> {
        let s = stabilized_div(r, y, self.eps)?.broadcast_mul(&self.gamma)?;
        let centred = s.broadcast_sub(&s.mean_keepdim(D::Minus1)?)?;
        x * centred.broadcast_div(&self.sd)?
    }
}

/// `x` in the forward, `c · grad` in the backward.
fn scale_gradient(x: &Tensor, c: f64) -> Result<Tensor> {
    Ok(boundary(x, &x.detach(), GradientScale(c))?)
}

struct GradientScale(f64);

impl InputGrad for GradientScale {
    fn name(&self) -> &'static str {
        "candle-explain-gradient-scale"
    }
    fn input_grad(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        g * self.0
    }
}

/// The ε-rule through a diagonal linear map `y = a ⊙ x` (RMSNorm with ρ constant):
/// `R_x = x ⊙ a ⊙ R / stab(y) = y ⊙ R / stab(y)`.
struct DiagonalRelevance {
    eps: f64,
}

impl InputGrad for DiagonalRelevance {
    fn name(&self) -> &'static str {
        "candle-explain-diagonal-relevance"
    }
    fn input_grad(&self, _x: &Tensor, y: &Tensor, r: &Tensor) -> candle_core::Result<Tensor> {
        y * stabilized_div(r, y, self.eps)?
    }
}

/// LayerNorm's input gradient, exact or with σ constant (`ops::cpu_layer_norm`).
struct LayerNormGrad {
    gamma: Tensor,
    eps: f64,
    exact: bool,
}

impl InputGrad for LayerNormGrad {
    fn name(&self) -> &'static str {
        "candle-explain-layer-norm-grad"
    }
    fn input_grad(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let op = crate::ops::layer_norm::cpu::LayerNormInputGrad {
            eps: self.eps,
            exact: self.exact,
        };
        x.contiguous()?
            .apply_op3_no_bwd(&self.gamma.contiguous()?, &g.contiguous()?, &op)
    }
}

/// `R_v = v ⊙ Pᵀ (R / stab(y))`: the ε-rule through `y = P v` with the weights P constant.
struct AttentionRelevance {
    p: Tensor,
    eps: f64,
}

impl InputGrad for AttentionRelevance {
    fn name(&self) -> &'static str {
        "candle-explain-attention-relevance"
    }
    fn input_grad(&self, v: &Tensor, y: &Tensor, r: &Tensor) -> candle_core::Result<Tensor> {
        let s = stabilized_div(r, y, self.eps)?;
        v * self.p.t()?.contiguous()?.matmul(&s.contiguous()?)?
    }
}

/// Relevance of `gate ⊙ signal` goes to the signal unchanged.
struct SignalTakesAll;

impl InputGrad for SignalTakesAll {
    fn name(&self) -> &'static str {
        "candle-explain-signal-take-all"
    }
    fn input_grad(&self, _x: &Tensor, _y: &Tensor, r: &Tensor) -> candle_core::Result<Tensor> {
        Ok(r.clone())
    }
}
