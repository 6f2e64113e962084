//! One-pass kernels (CPU here; CUDA with the `cuda` feature) for `grad · f'(z)` (the gradient rule) and `relu(grad) · f'(z)`
//! (guided backprop) of the activations other than ReLU.
//!
//! From tensor ops GELU's derivative is about ten passes over the activation (erf, exp, three
//! products, two sums, the multiply by the gradient): on the BERT stack of PERFORMANCE.md
//! (6 layers, 200 × 64 tokens, FFN 1536) that was the largest single cost of the backward.
//! Each activation gets its own loop so that the body inlines; f32 is computed in f32.

use crate::ops::slice;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape};
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// The elementwise functions these kernels know (`crate::Activation` converts into it; the
/// kernels do not depend on the public type).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Function {
    Relu,
    Relu6,
    LeakyRelu(f64),
    Elu(f64),
    Tanh,
    Sigmoid,
    Softplus,
    Gelu,
    GeluTanh,
    Silu,
    Identity,
}

impl Function {
    fn name(&self) -> &'static str {
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
}
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// `(activation, guided)`: op(z, grad) = `grad · f'(z)`, or `max(grad, 0) · f'(z)` if guided.
pub(crate) struct SmoothActGrad {
    pub act: Function,
    pub guided: bool,
}

/// Whether [`SmoothActGrad`] has a kernel for `act`.
pub(crate) fn supports(act: Function) -> bool {
    !matches!(act, Function::Relu)
}

macro_rules! kernel {
    ($name:ident, $t:ty, $erf:path) => {
        fn $name(act: Function, guided: bool, z: &[$t], g: &[$t]) -> Vec<$t> {
            fn run(z: &[$t], g: &[$t], guided: bool, d: impl Fn($t) -> $t + Sync) -> Vec<$t> {
                let mut out = vec![0.0; z.len()];
                out.par_chunks_mut(CHUNK)
                    .zip(z.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
                    .for_each(|(o, (z, g))| {
                        if guided {
                            for ((v, z), g) in o.iter_mut().zip(z).zip(g) {
                                *v = g.max(0.0) * d(*z);
                            }
                        } else {
                            for ((v, z), g) in o.iter_mut().zip(z).zip(g) {
                                *v = *g * d(*z);
                            }
                        }
                    });
                out
            }
            let sigmoid = |z: $t| 1.0 / (1.0 + (-z).exp());
            match act {
                Function::Relu => run(z, g, guided, |z| if z > 0.0 { 1.0 } else { 0.0 }),
                Function::Relu6 => {
                    run(z, g, guided, |z| if z > 0.0 && z < 6.0 { 1.0 } else { 0.0 })
                }
                Function::LeakyRelu(s) => {
                    let s = s as $t;
                    run(z, g, guided, move |z| if z > 0.0 { 1.0 } else { s })
                }
                Function::Elu(a) => {
                    let a = a as $t;
                    run(
                        z,
                        g,
                        guided,
                        move |z| if z > 0.0 { 1.0 } else { a * z.exp() },
                    )
                }
                Function::Tanh => run(z, g, guided, |z| {
                    let t = z.tanh();
                    1.0 - t * t
                }),
                Function::Sigmoid => run(z, g, guided, |z| {
                    let s = sigmoid(z);
                    s * (1.0 - s)
                }),
                Function::Softplus => run(z, g, guided, sigmoid),
                Function::Gelu => run(z, g, guided, |z| {
                    0.5 * (1.0 + $erf(z * std::f64::consts::FRAC_1_SQRT_2 as $t))
                        + z * (-0.5 * z * z).exp() * INV_SQRT_2PI as $t
                }),
                Function::GeluTanh => run(z, g, guided, |z| {
                    let (c, k) = (SQRT_2_OVER_PI as $t, 0.044715 as $t);
                    let t = (c * (z + k * z * z * z)).tanh();
                    0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * c * (1.0 + 3.0 * k * z * z)
                }),
                Function::Silu => run(z, g, guided, |z| {
                    let s = sigmoid(z);
                    s * (1.0 + z * (1.0 - s))
                }),
                Function::Identity => run(z, g, guided, |_| 1.0),
            }
        }
    };
}

kernel!(grad_f32_scalar, f32, candle_core::cpu::erf::erf_f32);

/// f32: the activations built on `exp` run the vectorised loops of `fast_math`.
fn grad_f32(act: Function, guided: bool, z: &[f32], g: &[f32]) -> Vec<f32> {
    use crate::ops::fast_math as fm;
    fn run(z: &[f32], g: &[f32], guided: bool, d: impl Fn(f32) -> f32 + Copy + Sync) -> Vec<f32> {
        let mut out = vec![0.0; z.len()];
        out.par_chunks_mut(CHUNK)
            .zip(z.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(o, (z, g))| {
                if guided {
                    fm::map2(z, g, o, move |z, g| g.max(0.0) * d(z))
                } else {
                    fm::map2(z, g, o, move |z, g| g * d(z))
                }
            });
        out
    }
    let (c, k) = (SQRT_2_OVER_PI as f32, 0.044715f32);
    match act {
        Function::Gelu => run(z, g, guided, |z| {
            let (cdf, pdf) = fm::normal_cdf_pdf(z);
            cdf + z * pdf
        }),
        Function::GeluTanh => run(z, g, guided, move |z| {
            let t = fm::tanh(c * (z + k * z * z * z));
            0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * c * (1.0 + 3.0 * k * z * z)
        }),
        Function::Tanh => run(z, g, guided, |z| {
            let t = fm::tanh(z);
            1.0 - t * t
        }),
        Function::Sigmoid => run(z, g, guided, |z| {
            let s = fm::sigmoid(z);
            s * (1.0 - s)
        }),
        Function::Softplus => run(z, g, guided, fm::sigmoid),
        Function::Silu => run(z, g, guided, |z| {
            let s = fm::sigmoid(z);
            s * (1.0 + z * (1.0 - s))
        }),
        _ => grad_f32_scalar(act, guided, z, g),
    }
}

/// The forward of GELU (both forms), tanh and the sigmoid on f32 CPU tensors through the
/// vectorised loops (the kernel of `ops::fused1`, whose backward is the activation's rule).
pub(crate) struct SmoothActCpu(pub Function);

impl SmoothActCpu {
    pub(crate) fn applies(act: Function, z: &candle_core::Tensor) -> bool {
        z.device().is_cpu()
            && z.dtype() == candle_core::DType::F32
            && matches!(
                act,
                Function::Gelu | Function::GeluTanh | Function::Tanh | Function::Sigmoid
            )
    }
}

impl crate::ops::CpuKernel for SmoothActCpu {
    fn cpu_fwd(&self, args: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let &[(s, l)] = args else {
            candle_core::bail!("activation kernel: one input")
        };
        use crate::ops::fast_math as fm;
        let CpuStorage::F32(z) = s else {
            candle_core::bail!("activation kernel: f32 only")
        };
        let z = slice(z, l, "activation kernel input")?;
        let mut out = vec![0f32; z.len()];
        let (c, k) = (SQRT_2_OVER_PI as f32, 0.044715f32);
        if !matches!(
            self.0,
            Function::Gelu | Function::GeluTanh | Function::Tanh | Function::Sigmoid
        ) {
            candle_core::bail!(
                "activation kernel: no vectorised forward for {}",
                self.0.name()
            )
        }
        let f = |o: &mut [f32], z: &[f32]| match self.0 {
            Function::Gelu => fm::map1(z, o, |z| z * fm::normal_cdf_pdf(z).0),
            Function::GeluTanh => fm::map1(z, o, move |z| {
                0.5 * z * (1.0 + fm::tanh(c * (z + k * z * z * z)))
            }),
            Function::Tanh => fm::map1(z, o, fm::tanh),
            Function::Sigmoid => fm::map1(z, o, fm::sigmoid),
            _ => {}
        };
        out.par_chunks_mut(CHUNK)
            .zip(z.par_chunks(CHUNK))
            .for_each(|(o, z)| f(o, z));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}
kernel!(grad_f64, f64, candle_core::cpu::erf::erf_f64);

/// The activation's number in `kernels/attribution.cu` and its parameter.
#[cfg(feature = "cuda")]
fn cuda_code(act: Function) -> (i32, f64) {
    match act {
        Function::Gelu => (0, 0.0),
        Function::GeluTanh => (1, 0.0),
        Function::Tanh => (2, 0.0),
        Function::Sigmoid => (3, 0.0),
        Function::Softplus => (4, 0.0),
        Function::Elu(a) => (5, a),
        Function::LeakyRelu(s) => (6, s),
        Function::Relu6 => (7, 0.0),
        Function::Identity => (8, 0.0),
        Function::Relu => (9, 0.0),
        Function::Silu => (10, 0.0),
    }
}

impl CustomOp2 for SmoothActGrad {
    fn name(&self) -> &'static str {
        "candle-explain-activation-grad"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "activation kernel: z {:?} and grad {:?} differ",
                l1.dims(),
                l2.dims()
            )
        }
        crate::ops::cuda::act_grad((s1, l1), (s2, l2), cuda_code(self.act), self.guided)
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "activation kernel: z {:?} and grad {:?} differ",
                l1.dims(),
                l2.dims()
            )
        }
        let shape = l1.shape().clone();
        Ok(match (s1, s2) {
            (CpuStorage::F32(z), CpuStorage::F32(g)) => (
                CpuStorage::F32(grad_f32(
                    self.act,
                    self.guided,
                    slice(z, l1, "activation kernel input")?,
                    slice(g, l2, "activation kernel input")?,
                )),
                shape,
            ),
            (CpuStorage::F64(z), CpuStorage::F64(g)) => (
                CpuStorage::F64(grad_f64(
                    self.act,
                    self.guided,
                    slice(z, l1, "activation kernel input")?,
                    slice(g, l2, "activation kernel input")?,
                )),
                shape,
            ),
            _ => candle_core::bail!("activation kernel: f32 or f64 only"),
        })
    }
}
