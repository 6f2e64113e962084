//! Attribution rules for elementwise nonlinearities (Ancona et al. 2018, PAPERS.md §1).
//!
//! Each method of the gradient family is an ordinary backward pass in which the derivative
//! `f'(z)` of every nonlinearity is replaced by another function `g(z)`; the rules here
//! compute `grad · g(z)` (or, for guided backprop and deconvnet, a function of `grad`).

use crate::activation::Activation;
use crate::ops::stabilize::stabilize;
use crate::ops::InputGrad;
use candle_core::{Result, Tensor};

/// Default ε of ε-LRP (PAPERS.md §1).
pub const DEFAULT_LRP_EPSILON: f64 = 1e-4;
/// Default threshold under which DeepLIFT's Rescale falls back to the derivative.
pub const DEFAULT_RESCALE_THRESHOLD: f64 = 1e-5;

/// What the backward of a nonlinearity computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActRule {
    /// The true derivative `f'(z)`.
    Gradient,
    /// ε-LRP: `f(z) / (z + ε·sign(z))`, with `sign(0) = +1`.
    Epsilon(f64),
    /// DeepLIFT Rescale: `(f(z) − f(z̄)) / (z − z̄)` against the baseline's pre-activation
    /// `z̄`; where `|z − z̄| ≤ threshold` it uses `f'((z + z̄)/2)` (the limit of the ratio).
    Rescale { threshold: f64 },
    /// Guided backprop (Springenberg et al.): `f'(z) · max(grad, 0)`.
    GuidedBackprop,
    /// Deconvnet (Zeiler & Fergus): `max(grad, 0)`, ignoring the forward activation.
    Deconvnet,
    /// The incoming gradient (relevance) unchanged: LRP's rule for nonlinearities.
    Pass,
}

impl ActRule {
    pub fn name(&self) -> &'static str {
        match self {
            ActRule::Gradient => "gradient",
            ActRule::Epsilon(_) => "epsilon",
            ActRule::Rescale { .. } => "rescale",
            ActRule::GuidedBackprop => "guided_backprop",
            ActRule::Deconvnet => "deconvnet",
            ActRule::Pass => "pass",
        }
    }
}

impl crate::rule::Rule for ActRule {
    fn name(&self) -> String {
        ActRule::name(self).to_string()
    }

    fn activation(&self, op: &crate::rule::ActivationInput, grad: &Tensor) -> Result<Tensor> {
        ActBackward {
            act: op.act,
            rule: *self,
            zref: op.reference.cloned(),
        }
        .input_grad(op.z, op.a, grad)
    }

    fn needs_reference(&self) -> bool {
        matches!(self, ActRule::Rescale { .. })
    }

    fn validate(&self) -> crate::Result<()> {
        match *self {
            ActRule::Epsilon(e) if !(e >= 0.0 && e.is_finite()) => Err(crate::error::invalid(
                "rule",
                format!("epsilon: ε must be finite and ≥ 0, got {e}"),
            )),
            ActRule::Rescale { threshold } if !(threshold >= 0.0 && threshold.is_finite()) => {
                Err(crate::error::invalid(
                    "rule",
                    format!("rescale: the threshold must be finite and ≥ 0, got {threshold}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl PartialEq<ActRule> for crate::rule::RuleRef {
    fn eq(&self, other: &ActRule) -> bool {
        self.downcast::<ActRule>() == Some(other)
    }
}

/// The backward of one nonlinearity under any [`crate::rule::Rule`] (rules of users'
/// own; the built-in [`ActRule`]s take [`ActBackward`] and its kernels).
pub(crate) struct RuleActBackward {
    pub act: Activation,
    pub rule: crate::rule::RuleRef,
    pub zref: Option<Tensor>,
}

impl InputGrad for RuleActBackward {
    fn name(&self) -> &'static str {
        "candle-explain-activation-rule"
    }
    fn input_grad(&self, z: &Tensor, a: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let op = crate::rule::ActivationInput {
            act: self.act,
            z,
            a,
            reference: self.zref.as_ref(),
        };
        self.rule.activation(&op, grad)
    }
}

/// The backward of one nonlinearity under a rule. `zref` is the baseline's
/// pre-activation, needed by Rescale only.
pub(crate) struct ActBackward {
    pub act: Activation,
    pub rule: ActRule,
    pub zref: Option<Tensor>,
}

impl InputGrad for ActBackward {
    fn name(&self) -> &'static str {
        "candle-explain-activation"
    }

    fn input_grad(&self, z: &Tensor, a: &Tensor, grad: &Tensor) -> Result<Tensor> {
        if let Some(g) = self.relu_cpu(z, grad)? {
            return Ok(g);
        }
        if let Some(g) = self.smooth_cpu(z, grad)? {
            return Ok(g);
        }
        match self.rule {
            ActRule::Gradient => grad * self.act.derivative(z)?,
            ActRule::Epsilon(eps) => grad * (a / stabilize(z, eps)?)?,
            ActRule::GuidedBackprop => grad.relu()? * self.act.derivative(z)?,
            ActRule::Deconvnet => grad.relu(),
            ActRule::Pass => Ok(grad.clone()),
            ActRule::Rescale { threshold } => {
                let zref = self.zref.as_ref().ok_or_else(|| {
                    candle_core::Error::Msg(
                        "Rescale rule without the baseline's activations".into(),
                    )
                })?;
                grad * rescale_multiplier(self.act, z, a, zref, threshold)?
            }
        }
    }
}

impl ActBackward {
    /// ReLU on the CPU in f32 / f64: the one-pass kernels of `ops::cpu_act`.
    fn relu_cpu(&self, z: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        use crate::ops::activation::relu_cpu::{ReluBackwardCpu, ReluRescaleCpu, ReluRule};
        let fast = self.act == Activation::Relu
            && z.device().is_cpu()
            && matches!(z.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
            && grad.dtype() == z.dtype();
        if !fast {
            return Ok(None);
        }
        let (z, g) = (z.contiguous()?, grad.contiguous()?);
        Ok(Some(match (self.rule, &self.zref) {
            (ActRule::Rescale { threshold }, Some(r)) if r.dtype() == z.dtype() => {
                z.apply_op3_no_bwd(&r.contiguous()?, &g, &ReluRescaleCpu(threshold))?
            }
            (ActRule::Rescale { .. }, _) => return Ok(None),
            (rule, _) => {
                let kernel_rule = match rule {
                    ActRule::Gradient => ReluRule::Gradient,
                    ActRule::GuidedBackprop => ReluRule::Guided,
                    ActRule::Epsilon(e) => ReluRule::Epsilon(e),
                    ActRule::Deconvnet => ReluRule::Deconvnet,
                    _ => ReluRule::Pass,
                };
                z.apply_op2_no_bwd(&g, &ReluBackwardCpu(kernel_rule))?
            }
        }))
    }
}

impl ActBackward {
    /// The gradient and guided-backprop rules of the other activations on the CPU in f32 /
    /// f64, and of every activation on CUDA: one pass (`ops::cpu_act_smooth`).
    fn smooth_cpu(&self, z: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        use crate::ops::activation::smooth::{supports, SmoothActGrad};
        let guided = match self.rule {
            ActRule::Gradient => false,
            ActRule::GuidedBackprop => true,
            _ => return Ok(None),
        };
        let kernel = match z.device() {
            candle_core::Device::Cpu => {
                supports(self.act.into())
                    && matches!(z.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
            }
            // Every activation, in every float dtype.
            candle_core::Device::Cuda(_) => cfg!(feature = "cuda") && z.dtype().is_float(),
            _ => false,
        };
        if !kernel || grad.dtype() != z.dtype() || z.dims() != grad.dims() {
            return Ok(None);
        }
        Ok(Some(z.contiguous()?.apply_op2_no_bwd(
            &grad.contiguous()?,
            &SmoothActGrad {
                act: self.act.into(),
                guided,
            },
        )?))
    }
}

/// DeepLIFT's multiplier `Δf / Δz`, with the midpoint derivative where `|Δz|` is tiny.
pub(crate) fn rescale_multiplier(
    act: Activation,
    z: &Tensor,
    a: &Tensor,
    zref: &Tensor,
    threshold: f64,
) -> Result<Tensor> {
    let dz = (z - zref)?;
    let da = (a - act.forward(zref)?)?;
    let small = dz.abs()?.le(threshold)?;
    let safe_dz = small.where_cond(&dz.ones_like()?, &dz)?;
    let mid = ((z + zref)? * 0.5)?;
    small.where_cond(&act.derivative(&mid)?, &(da / safe_dz)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The one-pass kernels of the smooth activations equal `grad · f'(z)` from tensor ops
    /// (and the guided form), in f32 and f64.
    #[test]
    fn smooth_kernels_match_the_tensor_op_derivatives() -> Result<()> {
        use crate::ops::activation::smooth::SmoothActGrad;
        let dev = Device::Cpu;
        let z = ((Tensor::arange(0u32, 401, &dev)?.to_dtype(DType::F64)? * 0.03)? - 5.0)?;
        let g = (z.sin()? * 1.3)?;
        let acts = [
            Activation::Relu6,
            Activation::LeakyRelu(0.1),
            Activation::Elu(0.7),
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Softplus,
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Silu,
            Activation::Identity,
        ];
        for act in acts {
            for guided in [false, true] {
                let upstream = if guided { g.relu()? } else { g.clone() };
                let want = (&upstream * act.derivative(&z)?)?;
                for dt in [DType::F64, DType::F32] {
                    let (zt, gt) = (z.to_dtype(dt)?, g.to_dtype(dt)?);
                    let got = zt
                        .apply_op2_no_bwd(
                            &gt,
                            &SmoothActGrad {
                                act: act.into(),
                                guided,
                            },
                        )?
                        .to_dtype(DType::F64)?;
                    let err = (&got - &want)?.abs()?.max_all()?.to_scalar::<f64>()?;
                    let tol = if dt == DType::F64 { 1e-12 } else { 1e-5 };
                    assert!(
                        err < tol,
                        "{} guided={guided} {dt:?}: max error {err}",
                        act.name()
                    );
                }
            }
        }
        Ok(())
    }

    /// The one-pass ReLU kernels equal the tensor-op formulas for every rule (the kernel runs
    /// through `input_grad`, the reference through the generic arm).
    #[test]
    fn relu_kernels_match_the_tensor_op_rules() -> Result<()> {
        let dev = Device::Cpu;
        // Exact zeros and near-equal pairs exercise the kinks and Rescale's threshold.
        let z = Tensor::new(
            &[-2.0f32, -0.5, 0.0, 0.0, 1e-7, 0.3, 1.2, 2.5, -1.0, 0.8],
            &dev,
        )?;
        let r = Tensor::new(
            &[
                -1.0f32,
                0.5,
                0.0,
                0.3,
                0.0,
                0.3 + 1e-6,
                -0.4,
                2.5,
                -1.0,
                0.1,
            ],
            &dev,
        )?;
        let g = Tensor::new(
            &[0.7f32, -1.1, 0.4, -0.3, 2.0, 1.5, -0.9, 0.6, 1.0, -2.0],
            &dev,
        )?;
        for rule in [
            ActRule::Gradient,
            ActRule::Epsilon(0.01),
            ActRule::GuidedBackprop,
            ActRule::Deconvnet,
            ActRule::Pass,
            ActRule::Rescale { threshold: 1e-5 },
        ] {
            for dt in [DType::F32, DType::F64] {
                let (z, r, g) = (z.to_dtype(dt)?, r.to_dtype(dt)?, g.to_dtype(dt)?);
                let b = ActBackward {
                    act: Activation::Relu,
                    rule,
                    zref: Some(r.clone()),
                };
                let a = Activation::Relu.forward(&z)?;
                let fast = b.input_grad(&z, &a, &g)?;
                let reference = match rule {
                    ActRule::Gradient => (&g * Activation::Relu.derivative(&z)?)?,
                    ActRule::Epsilon(e) => (&g * (&a / stabilize(&z, e)?)?)?,
                    ActRule::GuidedBackprop => (g.relu()? * Activation::Relu.derivative(&z)?)?,
                    ActRule::Deconvnet => g.relu()?,
                    ActRule::Pass => g.clone(),
                    ActRule::Rescale { threshold } => {
                        (&g * rescale_multiplier(Activation::Relu, &z, &a, &r, threshold)?)?
                    }
                };
                let d = (fast - reference)?
                    .abs()?
                    .max_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
                assert!(d < 1e-6, "{rule:?} {dt:?}: {d}");
            }
        }
        Ok(())
    }
}
