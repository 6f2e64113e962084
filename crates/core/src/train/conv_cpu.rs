//! CPU kernels of training: the gradient of a convolution w.r.t. its kernel, and the
//! convolution whose backward gives it.

use crate::ops::conv::cpu::{im2col, Conv2dCpu, Conv2dInputGradCpu, Dims};
use crate::ops::conv::ConvGeometry;
use crate::ops::float_kernel;
use crate::ops::gemm::{matmul, Parallelism, View};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, WithDType};
use rayon::prelude::*;

/// `dw (cout, cin/groups, kh, kw) = Σ_b dy_b · im2col(x_b)ᵀ` (training). The batch is cut
/// into one fixed run of images per thread, each summing into its own buffer, and the
/// buffers are added in order: the result does not depend on scheduling.
fn weight_grad<T: WithDType>(x: &[T], dy: &[T], d: Dims) -> Vec<T> {
    let (hw, k, cout_g) = (d.hw_out(), d.k_per_group(), d.cout / d.g.groups);
    let (xs, ys, n_w) = (d.cin * d.h * d.w, d.cout * hw, d.cout * k);
    let runs = rayon::current_num_threads().min(d.b).max(1);
    let per = d.b.div_ceil(runs);
    let partial: Vec<Vec<T>> = (0..d.b.div_ceil(per))
        .into_par_iter()
        .map(|r| {
            let mut dw = vec![T::from_f64(0.0); n_w];
            let mut cols = vec![T::from_f64(0.0); d.cin * d.kh * d.kw * hw];
            for b in r * per..((r + 1) * per).min(d.b) {
                im2col(&x[b * xs..(b + 1) * xs], &mut cols, &d, hw);
                for grp in 0..d.g.groups {
                    // SAFETY: dw's (cout_g × k) block, dy's (cout_g × hw) block and the (hw × k)
                    // transpose of the columns' (k × hw) block lie inside their buffers.
                    unsafe {
                        matmul(
                            (cout_g, k, hw),
                            View::rows(dw.as_mut_ptr().add(grp * cout_g * k), k),
                            View::rows(dy.as_ptr().add(b * ys + grp * cout_g * hw), hw),
                            View::transposed(cols.as_ptr().add(grp * k * hw), hw),
                            true,
                            1.0,
                            Parallelism::None,
                        );
                    }
                }
            }
            dw
        })
        .collect();
    let mut out = vec![T::from_f64(0.0); n_w];
    for p in partial {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// Gradient w.r.t. a conv's kernel, from its input `x` and output gradient `dy` (training).
pub(crate) struct Conv2dWeightGradCpu {
    pub g: ConvGeometry,
    pub kernel_hw: (usize, usize),
}

impl CustomOp2 for Conv2dWeightGradCpu {
    fn name(&self) -> &'static str {
        "candle-explain-conv2d-weight-grad-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (&[b, cin, h, w], &[b2, cout, ho, wo]) = (l1.dims(), l2.dims()) else {
            candle_core::bail!(
                "conv weight grad: x and dy must be 4-D, got {:?} and {:?}",
                l1.dims(),
                l2.dims()
            )
        };
        let (kh, kw) = self.kernel_hw;
        let g = self.g;
        if b != b2 || cin % g.groups != 0 || cout % g.groups != 0 {
            candle_core::bail!(
                "conv weight grad: x {:?} and dy {:?} do not match ({} groups)",
                l1.dims(),
                l2.dims(),
                g.groups
            )
        }
        let d = Dims {
            b,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            ho,
            wo,
            g,
        };
        let shape = Shape::from((cout, cin / g.groups, kh, kw));
        Ok((
            float_kernel!("conv2d weight-grad cpu kernel", [(s1, l1) => x, (s2, l2) => dy], weight_grad(x, dy, d)),
            shape,
        ))
    }
}

/// `conv(x, w)` whose backward gives both the input's and the kernel's gradient on our
/// kernels (training; Candle's stock conv backward is a direct loop).
pub(crate) struct Conv2dTrainCpu(pub ConvGeometry);

impl CustomOp2 for Conv2dTrainCpu {
    fn name(&self) -> &'static str {
        "candle-explain-conv2d-train-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Conv2dCpu(self.0).cpu_fwd(s1, l1, s2, l2)
    }
    fn bwd(
        &self,
        x: &candle_core::Tensor,
        w: &candle_core::Tensor,
        _y: &candle_core::Tensor,
        dy: &candle_core::Tensor,
    ) -> Result<(Option<candle_core::Tensor>, Option<candle_core::Tensor>)> {
        let (_, _, h, wd) = x.dims4()?;
        let (_, _, kh, kw) = w.dims4()?;
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(
            w,
            &Conv2dInputGradCpu {
                g: self.0,
                in_hw: (h, wd),
            },
        )?;
        let dw = x.apply_op2_no_bwd(
            &dy,
            &Conv2dWeightGradCpu {
                g: self.0,
                kernel_hw: (kh, kw),
            },
        )?;
        Ok((Some(dx), Some(dw)))
    }
}
