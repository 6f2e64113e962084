//! Elementwise nonlinearities with their value and derivative as ordinary tensor ops.

use crate::ops::activation::smooth::{Function, SmoothActCpu, SmoothActGrad};
use crate::ops::InputGrad;
use candle_core::{Result, Tensor};

/// An elementwise nonlinearity `a = f(z)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Relu,
    /// `min(max(z, 0), 6)` (MobileNet / EfficientNet-Lite).
    Relu6,
    /// `max(z, 0) + slope · min(z, 0)`.
    LeakyRelu(f64),
    /// `z` for `z > 0`, `alpha · (exp(z) − 1)` otherwise.
    Elu(f64),
    Tanh,
    Sigmoid,
    /// `log(1 + exp(z))` (beta = 1, as PyTorch's default).
    Softplus,
    /// GELU with the exact erf form (PyTorch's `gelu`, BERT's `gelu`).
    Gelu,
    /// GELU with the tanh approximation (`gelu_new`, PyTorch's `approximate="tanh"`).
    GeluTanh,
    /// SiLU / swish, `z · sigmoid(z)` (Llama's, Mistral's and Qwen's MLP gate).
    Silu,
    /// Identity; useful for composites and tests.
    Identity,
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

fn sigmoid(z: &Tensor) -> Result<Tensor> {
    // 1 / (1 + exp(-z)); exp overflow gives inf, and 1/inf = 0: the right limit.
    (z.neg()?.exp()? + 1.0)?.recip()
}

impl Activation {
    /// Name as used in configs (`hidden_act`) and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Relu6 => "relu6",
            Self::LeakyRelu(_) => "leaky_relu",
            Self::Elu(_) => "elu",
            Self::Tanh => "tanh",
            Self::Sigmoid => "sigmoid",
            Self::Softplus => "softplus",
            Self::Gelu => "gelu",
            Self::GeluTanh => "gelu_new",
            Self::Silu => "silu",
            Self::Identity => "identity",
        }
    }

    /// `f(z)`, differentiable by Candle's autograd (used by the plain context); GELU, tanh
    /// and the sigmoid on f32 CPU tensors run the vectorised kernel.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        match *self {
            Self::Relu => z.relu(),
            Self::Relu6 => z.relu()?.minimum(6.0),
            Self::LeakyRelu(s) => z.relu()? + (z.neg()?.relu()? * (-s))?,
            Self::Elu(alpha) => {
                // Written with where_cond so that autograd works (Candle's `elu` has no backward).
                let neg = ((z.clamp(f64::MIN, 0.0)?.exp()? - 1.0)? * alpha)?;
                z.gt(0.0)?.where_cond(z, &neg)
            }
            _ if SmoothActCpu::applies(self.into(), z) => {
                // The vectorised kernel, with the exact derivative as its backward.
                crate::ops::fused1(
                    &z.contiguous()?,
                    SmoothActCpu(self.into()),
                    Derivative(*self),
                )
            }
            Self::Tanh => z.tanh(),
            Self::Sigmoid => sigmoid(z),
            Self::Softplus => {
                // relu(z) + log(1 + exp(-|z|)): no overflow for large |z|.
                z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?
            }
            Self::Gelu => z.gelu_erf(),
            Self::GeluTanh => z.gelu(),
            Self::Silu => z * sigmoid(z)?,
            Self::Identity => Ok(z.clone()),
        }
    }

    /// `f'(z)`. At ReLU's kink the derivative is 0, as in PyTorch.
    pub fn derivative(&self, z: &Tensor) -> Result<Tensor> {
        let dt = z.dtype();
        match *self {
            Self::Relu => z.gt(0.0)?.to_dtype(dt),
            // 0 at both kinks, as PyTorch's hardtanh backward.
            Self::Relu6 => z.gt(0.0)?.to_dtype(dt)?.mul(&z.lt(6.0)?.to_dtype(dt)?),
            Self::LeakyRelu(s) => {
                let pos = z.gt(0.0)?.to_dtype(dt)?;
                pos.affine(1.0 - s, s)
            }
            Self::Elu(alpha) => {
                let neg = (z.clamp(f64::MIN, 0.0)?.exp()? * alpha)?;
                z.gt(0.0)?.where_cond(&z.ones_like()?, &neg)
            }
            Self::Tanh => z.tanh()?.sqr()?.affine(-1.0, 1.0),
            Self::Sigmoid => {
                let s = sigmoid(z)?;
                &s * s.affine(-1.0, 1.0)?
            }
            Self::Softplus => sigmoid(z),
            Self::Gelu => {
                let cdf = ((z * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)? * 0.5;
                let pdf = (z.sqr()? * -0.5)?.exp()? * INV_SQRT_2PI;
                cdf? + (z * pdf?)?
            }
            Self::GeluTanh => {
                let z2 = z.sqr()?;
                let inner = ((z * &z2)? * 0.044715 + z)? * SQRT_2_OVER_PI;
                let t = inner?.tanh()?;
                let dinner = (z2 * (3.0 * 0.044715))?.affine(SQRT_2_OVER_PI, SQRT_2_OVER_PI)?;
                let sech2 = t.sqr()?.affine(-1.0, 1.0)?;
                let left = t.affine(0.5, 0.5)?;
                left + ((z * 0.5)? * sech2)?.mul(&dinner)?
            }
            Self::Silu => {
                let s = sigmoid(z)?;
                &s * (z * s.affine(-1.0, 1.0)?)?.affine(1.0, 1.0)?
            }
            Self::Identity => z.ones_like(),
        }
    }
}

impl From<&Activation> for Function {
    fn from(a: &Activation) -> Self {
        match *a {
            Activation::Relu => Function::Relu,
            Activation::Relu6 => Function::Relu6,
            Activation::LeakyRelu(s) => Function::LeakyRelu(s),
            Activation::Elu(a) => Function::Elu(a),
            Activation::Tanh => Function::Tanh,
            Activation::Sigmoid => Function::Sigmoid,
            Activation::Softplus => Function::Softplus,
            Activation::Gelu => Function::Gelu,
            Activation::GeluTanh => Function::GeluTanh,
            Activation::Silu => Function::Silu,
            Activation::Identity => Function::Identity,
        }
    }
}

impl From<Activation> for Function {
    fn from(a: Activation) -> Self {
        Function::from(&a)
    }
}

/// `grad · f'(z)` as a backward: one pass on the kernel where it applies.
pub(crate) struct Derivative(pub Activation);

impl InputGrad for Derivative {
    fn name(&self) -> &'static str {
        "candle-explain-activation"
    }
    fn input_grad(&self, z: &Tensor, _a: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let kernel = match z.device() {
            candle_core::Device::Cpu => {
                crate::ops::activation::smooth::supports(self.0.into())
                    && matches!(z.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
            }
            candle_core::Device::Cuda(_) => cfg!(feature = "cuda") && z.dtype().is_float(),
            _ => false,
        };
        if kernel && grad.dtype() == z.dtype() && z.dims() == grad.dims() {
            let op = SmoothActGrad {
                act: self.0.into(),
                guided: false,
            };
            return z.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &op);
        }
        grad * self.0.derivative(z)?
    }
}
