//! CPU kernels for 2-D convolution: per image, im2col (or col2im) into a scratch buffer and
//! one gemm straight into the output, images in parallel.
//!
//! Candle's CPU conv builds the im2col matrix of the whole batch and copies the result into
//! NCHW afterwards; measured on the MNIST CNN it costs 4× its own gemm. Here the scratch is
//! one image's columns per thread, the gemm writes NCHW directly, and the batch is the unit
//! of parallelism (so a conv with one input channel still uses every core).

use super::geometry::ConvGeometry;
use crate::ops::gemm::{matmul, Parallelism, View};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, WithDType};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub b: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub g: ConvGeometry,
}

impl Dims {
    pub fn k_per_group(&self) -> usize {
        self.cin / self.g.groups * self.kh * self.kw
    }
    pub fn hw_out(&self) -> usize {
        self.ho * self.wo
    }
    fn parallelism(&self) -> Parallelism {
        // Few images: let gemm split the work instead.
        if self.b < rayon::current_num_threads() {
            Parallelism::Rayon(rayon::current_num_threads())
        } else {
            Parallelism::None
        }
    }
}

/// Input row of output row `o` and kernel row `i`, if inside the image.
#[inline]
fn src(o: usize, i: usize, g: &ConvGeometry, n: usize) -> Option<usize> {
    let v = (o * g.stride + i * g.dilation) as isize - g.padding as isize;
    (v >= 0 && (v as usize) < n).then_some(v as usize)
}

/// The output columns `lo..hi` whose input column `ow·s + j·d − p` lies in `0..n`, and the
/// input column of `lo`.
#[inline]
fn valid_cols(j: usize, g: &ConvGeometry, n: usize, n_out: usize) -> (usize, usize, usize) {
    let off = (j * g.dilation) as isize - g.padding as isize;
    let s = g.stride as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let hi = ((n as isize - 1 - off).div_euclid(s) + 1).clamp(0, n_out as isize);
    let lo = lo.min(hi);
    (lo as usize, hi as usize, (lo * s + off).max(0) as usize)
}

/// One image `(cin, h, w)` → columns `(cin·kh·kw, ho·wo)` of a matrix whose rows are `ld`
/// apart (`ld = ho·wo` for one image; wider when several images share a gemm).
pub(crate) fn im2col<T: WithDType>(x: &[T], cols: &mut [T], d: &Dims, ld: usize) {
    let (hw, g) = (d.hw_out(), &d.g);
    for c in 0..d.cin {
        let xc = &x[c * d.h * d.w..(c + 1) * d.h * d.w];
        for i in 0..d.kh {
            for j in 0..d.kw {
                let row = &mut cols[((c * d.kh + i) * d.kw + j) * ld..][..hw];
                for oh in 0..d.ho {
                    let out = &mut row[oh * d.wo..(oh + 1) * d.wo];
                    match src(oh, i, g, d.h) {
                        None => out.fill(T::from_f64(0.0)),
                        Some(ih) => {
                            let xr = &xc[ih * d.w..(ih + 1) * d.w];
                            let (lo, hi, iw0) = valid_cols(j, g, d.w, d.wo);
                            out[..lo].fill(T::from_f64(0.0));
                            out[hi..].fill(T::from_f64(0.0));
                            if g.stride == 1 {
                                out[lo..hi].copy_from_slice(&xr[iw0..iw0 + hi - lo]);
                            } else {
                                for (k, o) in out[lo..hi].iter_mut().enumerate() {
                                    *o = xr[iw0 + k * g.stride];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Columns `(cin·kh·kw, ho·wo)` → one image `(cin, h, w)`, summing overlaps.
fn col2im<T: WithDType>(cols: &[T], x: &mut [T], d: &Dims) {
    let (hw, g) = (d.hw_out(), &d.g);
    x.fill(T::from_f64(0.0));
    for c in 0..d.cin {
        let xc = &mut x[c * d.h * d.w..(c + 1) * d.h * d.w];
        for i in 0..d.kh {
            for j in 0..d.kw {
                let row = &cols[((c * d.kh + i) * d.kw + j) * hw..][..hw];
                for oh in 0..d.ho {
                    let Some(ih) = src(oh, i, g, d.h) else {
                        continue;
                    };
                    let xr = &mut xc[ih * d.w..(ih + 1) * d.w];
                    let (lo, hi, iw0) = valid_cols(j, g, d.w, d.wo);
                    let r = &row[oh * d.wo + lo..oh * d.wo + hi];
                    if g.stride == 1 {
                        for (a, v) in xr[iw0..iw0 + r.len()].iter_mut().zip(r) {
                            *a += *v;
                        }
                    } else {
                        for (k, v) in r.iter().enumerate() {
                            xr[iw0 + k * g.stride] += *v;
                        }
                    }
                }
            }
        }
    }
}

/// `y (b, cout, ho, wo) = conv(x (b, cin, h, w), w (cout, cin/groups, kh, kw)) + bias`.
///
/// Late layers have small images (7×7 = 49 output columns), where a gemm per image is
/// inefficient: a few images share one gemm, their columns side by side (`ld = n·ho·wo`), and
/// the result is copied out to NCHW. The bias is written into the gemm's output before it
/// accumulates, so it costs no extra pass.
///
/// With `parts > 1` the kernel holds `parts` stacked kernels of `cout / parts` channels each
/// (one im2col serves all of them) and the output is `(parts, b, cout / parts, ho, wo)`: each
/// part a contiguous NCHW tensor of its own.
fn forward<T: WithDType>(x: &[T], wt: &[T], bias: Option<&[T]>, d: Dims, parts: usize) -> Vec<T> {
    let (hw, k, cout_g) = (d.hw_out(), d.k_per_group(), d.cout / d.g.groups);
    let mut y = vec![T::from_f64(0.0); d.b * d.cout * hw];
    let threads = rayon::current_num_threads();
    // Aim for ~512 gemm columns, keeping at least one group of images per thread.
    let per = 512usize.div_ceil(hw).min(d.b.div_ceil(threads)).max(1);
    let par = if d.b.div_ceil(per) < threads {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let (xs, cp) = (d.cin * d.h * d.w, d.cout / parts);
    let ys = cp * hw;
    // Chunk `i` owns images `i·per ..` of every part.
    let mut chunks: Vec<Vec<&mut [T]>> = (0..d.b.div_ceil(per))
        .map(|_| Vec::with_capacity(parts))
        .collect();
    for part in y.chunks_mut(d.b * ys) {
        for (i, c) in part.chunks_mut(ys * per).enumerate() {
            chunks[i].push(c);
        }
    }
    chunks.into_par_iter().enumerate().for_each_init(
        || {
            (
                vec![T::from_f64(0.0); d.cin * d.kh * d.kw * hw * per],
                vec![T::from_f64(0.0); d.cout * hw * per],
            )
        },
        |(cols, out), (chunk, mut yc)| {
            let n = yc[0].len() / ys;
            let ld = n * hw;
            for i in 0..n {
                let b = chunk * per + i;
                im2col(&x[b * xs..(b + 1) * xs], &mut cols[i * hw..], &d, ld);
            }
            for (c, row) in out.chunks_mut(ld).take(d.cout).enumerate() {
                row.fill(bias.map_or(T::from_f64(0.0), |b| b[c]));
            }
            for grp in 0..d.g.groups {
                // SAFETY: the pointers cover (cout_g × ld), (cout_g × k) and (k × ld) row-major
                // blocks inside their buffers, which do not overlap.
                unsafe {
                    matmul(
                        (cout_g, ld, k),
                        View::rows(out.as_mut_ptr().add(grp * cout_g * ld), ld),
                        View::rows(wt.as_ptr().add(grp * cout_g * k), k),
                        View::rows(cols.as_ptr().add(grp * k * ld), ld),
                        true,
                        1.0,
                        par,
                    );
                }
            }
            for i in 0..n {
                for c in 0..d.cout {
                    yc[c / cp][i * ys + (c % cp) * hw..][..hw]
                        .copy_from_slice(&out[c * ld + i * hw..][..hw]);
                }
            }
        },
    );
    y
}

/// `dx (b, cin, h, w)` from `dy (b, cout, ho, wo)`: `cols = Wᵀ dy` per image, then col2im.
/// With `times`, the result is multiplied by it elementwise while each image is still in
/// cache (LRP's `x ⊙ Wᵀ s`).
fn input_grad<T: WithDType>(dy: &[T], wt: &[T], times: Option<&[T]>, d: Dims) -> Vec<T> {
    let (hw, k, cout_g) = (d.hw_out(), d.k_per_group(), d.cout / d.g.groups);
    let mut dx = vec![T::from_f64(0.0); d.b * d.cin * d.h * d.w];
    let par = d.parallelism();
    dx.par_chunks_mut(d.cin * d.h * d.w)
        .enumerate()
        .for_each_init(
            || vec![T::from_f64(0.0); d.cin * d.kh * d.kw * hw],
            |cols, (b, dxb)| {
                let dyb = &dy[b * d.cout * hw..(b + 1) * d.cout * hw];
                for grp in 0..d.g.groups {
                    // SAFETY: as in `forward`; the kernel block is read transposed through its strides.
                    unsafe {
                        matmul(
                            (k, hw, cout_g),
                            View::rows(cols.as_mut_ptr().add(grp * k * hw), hw),
                            View::transposed(wt.as_ptr().add(grp * cout_g * k), k),
                            View::rows(dyb.as_ptr().add(grp * cout_g * hw), hw),
                            false,
                            1.0,
                            par,
                        );
                    }
                }
                col2im(cols, dxb, &d);
                if let Some(x) = times {
                    let n = dxb.len();
                    for (v, m) in dxb.iter_mut().zip(&x[b * n..(b + 1) * n]) {
                        *v *= *m;
                    }
                }
            },
        );
    dx
}

pub(crate) fn dims(
    x_shape: &[usize],
    w_shape: &[usize],
    g: ConvGeometry,
    out_hw: Option<(usize, usize)>,
) -> Result<Dims> {
    let (&[b, c1, a1, a2], &[cout, cin_g, kh, kw]) = (x_shape, w_shape) else {
        candle_core::bail!("conv kernels need 4-D tensors, got {x_shape:?} and {w_shape:?}")
    };
    let ext = |n: usize, k: usize| {
        (n + 2 * g.padding)
            .checked_sub(g.dilation * (k - 1) + 1)
            .map(|v| v / g.stride + 1)
    };
    Ok(match out_hw {
        // Forward: x is the input.
        None => {
            let (Some(ho), Some(wo)) = (ext(a1, kh), ext(a2, kw)) else {
                candle_core::bail!("conv: kernel larger than the padded input")
            };
            Dims {
                b,
                cin: c1,
                h: a1,
                w: a2,
                cout,
                kh,
                kw,
                ho,
                wo,
                g,
            }
        }
        // Input gradient: x is dy, `out_hw` the input's size.
        Some((h, w)) => Dims {
            b,
            cin: cin_g * g.groups,
            h,
            w,
            cout: c1,
            kh,
            kw,
            ho: a1,
            wo: a2,
            g,
        },
    })
}

/// `conv(x, w)` without bias (forward only; our boundary op provides the backward).
pub(crate) struct Conv2dCpu(pub ConvGeometry);

impl CustomOp2 for Conv2dCpu {
    fn name(&self) -> &'static str {
        "candle-explain-conv2d-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1.dims(), l2.dims(), self.0, None)?;
        let shape = Shape::from((d.b, d.cout, d.ho, d.wo));
        Ok((
            float_kernel!("conv2d cpu kernel", [(s1, l1) => x, (s2, l2) => w], forward(x, w, None, d, 1)),
            shape,
        ))
    }
}

/// `conv(x, w) + b` in one pass (forward only).
pub(crate) struct Conv2dBiasCpu(pub ConvGeometry);

impl CustomOp3 for Conv2dBiasCpu {
    fn name(&self) -> &'static str {
        "candle-explain-conv2d-bias-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Conv2dStackedCpu {
            g: self.0,
            parts: 1,
        }
        .cpu_fwd(s1, l1, s2, l2, s3, l3)
    }
}

/// `parts` convolutions of one input in one pass: the kernel `(parts·cout, cin, kh, kw)` and
/// bias `(parts·cout,)` stack the parts' kernels and biases, and the output is
/// `(parts, b, cout, ho, wo)` (no groups). LRP's z⁺ rule uses it for `[Wx + b, W⁺x + b⁺]`.
pub(crate) struct Conv2dStackedCpu {
    pub g: ConvGeometry,
    pub parts: usize,
}

impl CustomOp3 for Conv2dStackedCpu {
    fn name(&self) -> &'static str {
        "candle-explain-conv2d-stacked-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1.dims(), l2.dims(), self.g, None)?;
        if l3.dims() != [d.cout] {
            candle_core::bail!("conv2d bias: expected ({},), got {:?}", d.cout, l3.dims())
        }
        let parts = self.parts;
        if parts == 0 || d.cout % parts != 0 || (parts > 1 && d.g.groups != 1) {
            candle_core::bail!(
                "stacked conv2d: {} output channels cannot be {parts} parts ({} groups)",
                d.cout,
                d.g.groups
            )
        }
        let shape = if parts == 1 {
            Shape::from((d.b, d.cout, d.ho, d.wo))
        } else {
            Shape::from((parts, d.b, d.cout / parts, d.ho, d.wo))
        };
        Ok((
            float_kernel!("conv2d cpu kernel", [(s1, l1) => x, (s2, l2) => w, (s3, l3) => b], forward(
                x,
                w,
                Some(b),
                d,
                parts,
            )),
            shape,
        ))
    }
}

/// Gradient w.r.t. the input of a conv, from the output gradient and the kernel.
pub(crate) struct Conv2dInputGradCpu {
    pub g: ConvGeometry,
    pub in_hw: (usize, usize),
}

impl CustomOp2 for Conv2dInputGradCpu {
    fn name(&self) -> &'static str {
        "candle-explain-conv2d-input-grad-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1.dims(), l2.dims(), self.g, Some(self.in_hw))?;
        let shape = Shape::from((d.b, d.cin, d.h, d.w));
        Ok((
            float_kernel!("conv2d input-grad cpu kernel", [(s1, l1) => dy, (s2, l2) => w], input_grad(
                dy,
                w,
                None,
                d,
            )),
            shape,
        ))
    }
}

/// `x ⊙ convᵀ(dy)`: the input gradient times the layer input, in one kernel.
pub(crate) struct Conv2dInputGradTimesCpu {
    pub g: ConvGeometry,
}

impl CustomOp3 for Conv2dInputGradTimesCpu {
    fn name(&self) -> &'static str {
        "candle-explain-conv2d-input-grad-times-cpu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let &[_, _, h, w] = l3.dims() else {
            candle_core::bail!("conv input grad: x must be 4-D, got {:?}", l3.dims())
        };
        let d = dims(l1.dims(), l2.dims(), self.g, Some((h, w)))?;
        if l3.dims() != [d.b, d.cin, d.h, d.w] {
            candle_core::bail!(
                "conv input grad: x {:?} does not match the gradient's input {:?}",
                l3.dims(),
                [d.b, d.cin, d.h, d.w]
            )
        }
        let shape = Shape::from((d.b, d.cin, d.h, d.w));
        Ok((
            float_kernel!("conv2d input-grad cpu kernel", [(s1, l1) => dy, (s2, l2) => w, (s3, l3) => x], input_grad(
                dy,
                w,
                Some(x),
                d,
            )),
            shape,
        ))
    }
}

/// Whether the CPU kernels apply (CPU tensor of f32 / f64).
pub(crate) fn applies(t: &candle_core::Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// The stacked kernel's parts equal Candle's conv of each part's kernel, for batches that
    /// fill a gemm chunk, leave a partial one, or are smaller than the thread count.
    #[test]
    fn stacked_parts_equal_separate_convs() -> Result<()> {
        let dev = Device::Cpu;
        for (b, cin, cout, hw, k, g) in [
            (1, 3, 4, 9, 3, ConvGeometry::default()),
            (
                5,
                2,
                6,
                7,
                3,
                ConvGeometry {
                    padding: 1,
                    stride: 2,
                    ..Default::default()
                },
            ),
            (
                33,
                4,
                3,
                6,
                2,
                ConvGeometry {
                    padding: 1,
                    dilation: 2,
                    ..Default::default()
                },
            ),
        ] {
            let x = Tensor::randn(0f32, 1., (b, cin, hw, hw), &dev)?;
            let (w1, w2) = (
                Tensor::randn(0f32, 1., (cout, cin, k, k), &dev)?,
                Tensor::randn(0f32, 1., (cout, cin, k, k), &dev)?,
            );
            let (b1, b2) = (
                Tensor::randn(0f32, 1., cout, &dev)?,
                Tensor::randn(0f32, 1., cout, &dev)?,
            );
            let op = Conv2dStackedCpu { g, parts: 2 };
            let both = x.apply_op3_no_bwd(
                &Tensor::cat(&[&w1, &w2], 0)?,
                &Tensor::cat(&[&b1, &b2], 0)?,
                &op,
            )?;
            for (i, (w, bias)) in [(&w1, &b1), (&w2, &b2)].into_iter().enumerate() {
                let want = x
                    .conv2d(w, g.padding, g.stride, g.dilation, 1)?
                    .broadcast_add(&bias.reshape((1, cout, 1, 1))?)?;
                let diff = (both.get(i)? - want)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert!(diff < 1e-4, "batch {b}, part {i}: max difference {diff}");
            }
        }
        let bad = Tensor::zeros((1, 1, 4, 4), candle_core::DType::F32, &dev)?;
        let r = bad.apply_op3_no_bwd(
            &Tensor::zeros((3, 1, 2, 2), candle_core::DType::F32, &dev)?,
            &Tensor::zeros(3, candle_core::DType::F32, &dev)?,
            &op_of(2),
        );
        assert!(r.is_err(), "3 channels cannot be 2 parts");
        Ok(())
    }

    fn op_of(parts: usize) -> Conv2dStackedCpu {
        Conv2dStackedCpu {
            g: ConvGeometry::default(),
            parts,
        }
    }
}
