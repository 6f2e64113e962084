//! Launchers for the fused CUDA kernels of `kernels/attribution.cu` (PTX built by build.rs
//! with the `cuda` feature). Each is the `cuda_fwd` of a custom op whose `cpu_fwd` is the
//! CPU kernel of the same computation, so the CPU-vs-CUDA tests compare the two directly.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{kernel_name, Map2, Map3, WrapErr};
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result, Shape, WithDType};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/attribution.ptx"));
const MODULE: &str = "candle_explain_attribution";

fn contiguous<'a, T>(s: &'a CudaSlice<T>, l: &Layout, what: &str) -> Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.slice(a..b)),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

fn floating<T: WithDType>(what: &str) -> Result<()> {
    match T::DTYPE {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Ok(()),
        d => candle_core::bail!("{what}: f32, f64, f16 or bf16 only, got {d:?}"),
    }
}

struct LayerNormInputGrad {
    eps: f64,
    exact: bool,
}

impl Map3 for LayerNormInputGrad {
    fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
        &self,
        x: &CudaSlice<T>,
        lx: &Layout,
        gamma: &CudaSlice<T>,
        lg: &Layout,
        dy: &CudaSlice<T>,
        ld: &Layout,
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        floating::<T>("layer norm backward")?;
        let (x, gamma, dy) = (
            contiguous(x, lx, "x")?,
            contiguous(gamma, lg, "γ")?,
            contiguous(dy, ld, "dy")?,
        );
        let h = lg.shape().elem_count();
        let n = lx.shape().elem_count();
        // One block per row, a multiple of 32 threads.
        let block = h.div_ceil(32).clamp(1, 32) as u32 * 32;
        let cfg = LaunchConfig {
            grid_dim: ((n / h.max(1)) as u32, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        let func =
            dev.get_or_load_custom_func(&kernel_name::<T>("layer_norm_input_grad"), MODULE, PTX)?;
        // SAFETY: every element is written by the kernel.
        let dx = unsafe { dev.alloc::<T>(n)? };
        let mut b = func.builder();
        b.arg(&x);
        b.arg(&gamma);
        b.arg(&dy);
        b.arg(&dx);
        candle_core::builder_arg!(b, h as i32, self.eps, self.exact as i32);
        // SAFETY: the arguments match the kernel's signature.
        unsafe { b.launch(cfg) }.w()?;
        Ok(dx)
    }
}

/// dx of LayerNorm from (x, γ, dy), as `ops::cpu_layer_norm`'s kernel computes it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_input_grad(
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
    (s3, l3): (&CudaStorage, &Layout),
    eps: f64,
    exact: bool,
) -> Result<(CudaStorage, Shape)> {
    let dev = s1.device();
    let slice =
        LayerNormInputGrad { eps, exact }.map(&s1.slice, l1, &s2.slice, l2, &s3.slice, l3, dev)?;
    Ok((
        CudaStorage {
            slice,
            device: dev.clone(),
        },
        l1.shape().clone(),
    ))
}

struct SoftmaxGrad;

impl Map2 for SoftmaxGrad {
    fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
        &self,
        p: &CudaSlice<T>,
        lp: &Layout,
        dp: &CudaSlice<T>,
        ld: &Layout,
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        floating::<T>("softmax backward")?;
        let (p, dp) = (contiguous(p, lp, "P")?, contiguous(dp, ld, "dP")?);
        let cols = lp.dims().last().copied().unwrap_or(1);
        let n = lp.shape().elem_count();
        let rows = n / cols.max(1);
        // 8 warps per block, one row per warp.
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(8) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("softmax_grad"), MODULE, PTX)?;
        // SAFETY: every element is written by the kernel.
        let ds = unsafe { dev.alloc::<T>(n)? };
        let mut b = func.builder();
        b.arg(&p);
        b.arg(&dp);
        b.arg(&ds);
        candle_core::builder_arg!(b, rows, cols as i32);
        // SAFETY: the arguments match the kernel's signature.
        unsafe { b.launch(cfg) }.w()?;
        Ok(ds)
    }
}

/// `P ⊙ (dP − rowsum(dP ⊙ P))` over the last dimension.
pub(crate) fn softmax_grad(
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dev = s1.device();
    let slice = SoftmaxGrad.map(&s1.slice, l1, &s2.slice, l2, dev)?;
    Ok((
        CudaStorage {
            slice,
            device: dev.clone(),
        },
        l1.shape().clone(),
    ))
}

struct ActGrad {
    code: i32,
    param: f64,
    guided: bool,
}

impl Map2 for ActGrad {
    fn f<T: DeviceRepr + WithDType + ValidAsZeroBits>(
        &self,
        z: &CudaSlice<T>,
        lz: &Layout,
        g: &CudaSlice<T>,
        lg: &Layout,
        dev: &CudaDevice,
    ) -> Result<CudaSlice<T>> {
        floating::<T>("activation backward")?;
        let (z, g) = (contiguous(z, lz, "z")?, contiguous(g, lg, "grad")?);
        let n = lz.shape().elem_count();
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(256).clamp(1, 1 << 16) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let func = dev.get_or_load_custom_func(&kernel_name::<T>("act_grad"), MODULE, PTX)?;
        // SAFETY: every element is written by the kernel (grid-stride loop).
        let out = unsafe { dev.alloc::<T>(n)? };
        let mut b = func.builder();
        b.arg(&z);
        b.arg(&g);
        b.arg(&out);
        candle_core::builder_arg!(b, n, self.code, self.guided as i32, self.param);
        // SAFETY: the arguments match the kernel's signature.
        unsafe { b.launch(cfg) }.w()?;
        Ok(out)
    }
}

/// `grad · f'(z)` (or `relu(grad) · f'(z)`) for the activation numbered `code` in the kernel
/// file (`param`: ELU's α, leaky ReLU's slope).
pub(crate) fn act_grad(
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
    (code, param): (i32, f64),
    guided: bool,
) -> Result<(CudaStorage, Shape)> {
    let dev = s1.device();
    let slice = ActGrad {
        code,
        param,
        guided,
    }
    .map(&s1.slice, l1, &s2.slice, l2, dev)?;
    Ok((
        CudaStorage {
            slice,
            device: dev.clone(),
        },
        l1.shape().clone(),
    ))
}

/// The CUDA kernels against the CPU ops of the same computation (run with the `cuda`
/// feature, on a GPU): f64 to 1e-10, f32 to 1e-5, bf16 to 3e-2 of the largest |value|
/// (half-precision's documented tolerance, `tests/half_precision.rs`).
#[cfg(test)]
mod tests {
    use crate::activation::Activation;
    use crate::ops::activation::smooth::SmoothActGrad;
    use crate::ops::attention::softmax_grad::SoftmaxGrad;
    use crate::ops::layer_norm::cpu::LayerNormInputGrad;
    use candle_core::{DType, Device, Tensor, D};

    fn rel(got: &Tensor, want: &Tensor) -> candle_core::Result<f64> {
        let got = got.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
        let want = want.to_dtype(DType::F64)?;
        let err = (got - &want)?.abs()?.max_all()?.to_scalar::<f64>()?;
        Ok(err / want.abs()?.max_all()?.to_scalar::<f64>()?.max(1e-12))
    }

    fn tolerance(dt: DType) -> f64 {
        match dt {
            DType::F64 => 1e-10,
            DType::F32 => 1e-5,
            _ => 3e-2,
        }
    }

    /// `t` rounded to `dt` and back to f64 on the CPU: the reference sees the GPU's inputs.
    fn rounded(t: &Tensor, dt: DType) -> candle_core::Result<Tensor> {
        t.to_dtype(dt)?.to_dtype(DType::F64)
    }

    #[test]
    fn cuda_kernels_match_the_cpu_ops() -> candle_core::Result<()> {
        let gpu = Device::new_cuda(0)?;
        let cpu = Device::Cpu;
        let dtypes = [DType::F64, DType::F32, DType::BF16];
        // Odd sizes: a row shorter than a warp, one longer than a block.
        for (rows, h) in [(7usize, 5usize), (33, 384), (3, 1500)] {
            let x = (Tensor::randn(0f64, 1.5, (rows, h), &cpu)? + 0.3)?;
            let gamma = Tensor::randn(1f64, 0.2, h, &cpu)?;
            let dy = Tensor::randn(0f64, 1.0, (rows, h), &cpu)?;
            let p =
                candle_nn::ops::softmax(&Tensor::randn(0f64, 2.0, (rows, h), &cpu)?, D::Minus1)?;
            for dt in dtypes {
                let on = |t: &Tensor| t.to_dtype(dt)?.to_device(&gpu);
                let (xr, gr, dr, pr) = (
                    rounded(&x, dt)?,
                    rounded(&gamma, dt)?,
                    rounded(&dy, dt)?,
                    rounded(&p, dt)?,
                );
                for exact in [true, false] {
                    let op = LayerNormInputGrad { eps: 1e-5, exact };
                    let want = xr.apply_op3_no_bwd(&gr, &dr, &op)?;
                    let got = on(&x)?.apply_op3_no_bwd(&on(&gamma)?, &on(&dy)?, &op)?;
                    let e = rel(&got, &want)?;
                    assert!(
                        e < tolerance(dt),
                        "layer norm {rows}×{h} exact={exact} {dt:?}: {e}"
                    );
                }
                let want = pr.apply_op2_no_bwd(&dr, &SoftmaxGrad)?;
                let e = rel(&on(&p)?.apply_op2_no_bwd(&on(&dy)?, &SoftmaxGrad)?, &want)?;
                assert!(e < tolerance(dt), "softmax backward {rows}×{h} {dt:?}: {e}");
            }
        }
        let z = ((Tensor::arange(0u32, 4001, &cpu)?.to_dtype(DType::F64)? * 0.003)? - 6.0)?;
        let g = (z.sin()? * 1.3)?;
        for act in [
            Activation::Relu,
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
        ] {
            for guided in [false, true] {
                for dt in dtypes {
                    let (zr, gr) = (rounded(&z, dt)?, rounded(&g, dt)?);
                    let upstream = if guided { gr.relu()? } else { gr };
                    let want = (&upstream * act.derivative(&zr)?)?;
                    let on = |t: &Tensor| t.to_dtype(dt)?.to_device(&gpu);
                    let got = on(&z)?.apply_op2_no_bwd(
                        &on(&g)?,
                        &SmoothActGrad {
                            act: act.into(),
                            guided,
                        },
                    )?;
                    let e = rel(&got, &want)?;
                    assert!(
                        e < tolerance(dt),
                        "{} guided={guided} {dt:?}: {e}",
                        act.name()
                    );
                }
            }
        }
        Ok(())
    }
}
