//! Scaled dot-product attention on the CPU as one custom op: `y = P v` with
//! `P = softmax(q kᵀ·scale + mask)`, and its closed-form input gradients
//!
//! `dv = Pᵀ g`, `dS = P ⊙ (g vᵀ − rowsum(g vᵀ ⊙ P))`, `dq = dS k·scale`, `dk = dSᵀ q·scale`.
//!
//! One task per (batch, head) computes the scores, the softmax and `P v` (or the four
//! gradient products) while its `Lq × Lk` block is in cache, and reads q, k, v and g through
//! their strides: the heads are transposed views of the projections, so nothing is copied to
//! make them contiguous. Composed from tensor ops, the same pass allocates and walks each
//! `(…, Lq, Lk)` tensor about eight times and, having three inputs reach one output through
//! three boundaries, zero-fills and sums three gradient buffers.

use crate::ops::fast_math;
use crate::ops::gemm::{Parallelism, View};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::Mutex;

/// Which inputs get a gradient.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttentionGrads {
    /// q, k and v: the softmax is differentiated.
    All,
    /// v only: the weights are held constant (a detached factor).
    ValueOnly,
}

/// The batched matrices of a layout `(…, rows, cols)`: one start offset per leading index.
struct Matrices {
    offsets: Vec<usize>,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl Matrices {
    fn new(l: &Layout, what: &str) -> Result<Self> {
        let (dims, strides) = (l.dims(), l.stride());
        let n = dims.len();
        if n < 2 {
            candle_core::bail!("attention: {what} must have at least two dimensions, got {dims:?}")
        }
        let lead = &dims[..n - 2];
        let count: usize = lead.iter().product();
        let offsets = (0..count)
            .map(|t| {
                let (mut rem, mut off) = (t, l.start_offset());
                for i in (0..n - 2).rev() {
                    off += (rem % dims[i]) * strides[i];
                    rem /= dims[i];
                }
                off
            })
            .collect();
        Ok(Self {
            offsets,
            rows: dims[n - 2],
            cols: dims[n - 1],
            row_stride: strides[n - 2] as isize,
            col_stride: strides[n - 1] as isize,
        })
    }

    /// The same matrices read transposed.
    fn t(&self) -> (isize, isize) {
        (self.col_stride, self.row_stride)
    }
}

/// `dst (m × n, row-major) = alpha·dst + beta · lhs (m × k) · rhs (k × n)`; each operand given
/// as (pointer, row stride, column stride).
///
/// SAFETY: the caller guarantees that every addressed element lies in its buffer and that
/// `dst` does not alias the operands.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    lhs: (*const T, isize, isize),
    rhs: (*const T, isize, isize),
    accumulate: bool,
    beta: f64,
) {
    let view = |(ptr, row_stride, col_stride): (*const T, isize, isize)| View {
        ptr,
        row_stride,
        col_stride,
    };
    crate::ops::gemm::matmul(
        (m, n, k),
        View::rows(dst, n),
        view(lhs),
        view(rhs),
        accumulate,
        beta,
        Parallelism::None,
    )
}

/// Row softmax of a row-major `rows × cols` block, in place (PyTorch's convention: a row of
/// −∞ only gives NaN).
fn softmax_rows<T: Element>(p: &mut [T], cols: usize) {
    for row in p.chunks_mut(cols) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64()));
        let max = T::from_f64(max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += v.to_f64();
        }
        let inv = T::from_f64(1.0 / sum);
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

struct Geometry {
    q: Matrices,
    k: Matrices,
    v: Matrices,
}

impl Geometry {
    fn new(lq: &Layout, lk: &Layout, lv: &Layout) -> Result<Self> {
        let (q, k, v) = (
            Matrices::new(lq, "q")?,
            Matrices::new(lk, "k")?,
            Matrices::new(lv, "v")?,
        );
        let n = lq.dims().len();
        let lead_fits = lk.dims().len() == n
            && lv.dims().len() == n
            && lq.dims()[..n - 2] == lk.dims()[..n - 2]
            && lq.dims()[..n - 2] == lv.dims()[..n - 2];
        if [q.rows, q.cols, k.rows, v.cols].contains(&0) {
            candle_core::bail!(
                "attention: empty sequence or head dimension: q {:?}, k {:?}, v {:?}",
                lq.dims(),
                lk.dims(),
                lv.dims()
            )
        }
        if !lead_fits || q.cols != k.cols || k.rows != v.rows {
            candle_core::bail!(
                "attention: q (…, Lq, d) {:?}, k (…, Lk, d) {:?} and v (…, Lk, dv) {:?} do not fit",
                lq.dims(),
                lk.dims(),
                lv.dims()
            )
        }
        Ok(Self { q, k, v })
    }

    fn count(&self) -> usize {
        self.q.offsets.len()
    }
}

fn forward<T: Element>(
    g: &Geometry,
    (q, k, v): (&[T], &[T], &[T]),
    mask: Option<(&[T], &Matrices)>,
    scale: f64,
) -> (Vec<T>, Vec<T>) {
    let (lq, lk, d, dv) = (g.q.rows, g.k.rows, g.q.cols, g.v.cols);
    let mut p = vec![T::zero(); g.count() * lq * lk];
    let mut y = vec![T::zero(); g.count() * lq * dv];
    p.par_chunks_mut(lq * lk)
        .zip(y.par_chunks_mut(lq * dv))
        .enumerate()
        .for_each(|(t, (p, y))| {
            let kt = g.k.t();
            // SAFETY: offsets and strides come from valid layouts of q, k, v; p and y are
            // fresh blocks of the sizes written.
            unsafe {
                matmul(
                    (lq, lk, d),
                    p.as_mut_ptr(),
                    (
                        q.as_ptr().add(g.q.offsets[t]),
                        g.q.row_stride,
                        g.q.col_stride,
                    ),
                    (k.as_ptr().add(g.k.offsets[t]), kt.0, kt.1),
                    false,
                    scale,
                );
            }
            if let Some((m, ml)) = mask {
                let base = ml.offsets[t] as isize;
                for (i, row) in p.chunks_mut(lk).enumerate() {
                    for (j, s) in row.iter_mut().enumerate() {
                        let at = base + i as isize * ml.row_stride + j as isize * ml.col_stride;
                        *s += m[at as usize];
                    }
                }
            }
            softmax_rows(p, lk);
            // SAFETY: as above; p is the finished (lq × lk) block.
            unsafe {
                matmul(
                    (lq, dv, lk),
                    y.as_mut_ptr(),
                    (p.as_ptr(), lk as isize, 1),
                    (
                        v.as_ptr().add(g.v.offsets[t]),
                        g.v.row_stride,
                        g.v.col_stride,
                    ),
                    false,
                    1.0,
                );
            }
        });
    (p, y)
}

struct Grads<T> {
    dq: Vec<T>,
    dk: Vec<T>,
    dv: Vec<T>,
}

fn backward<T: Element>(
    g: &Geometry,
    (q, k, v): (&[T], &[T], &[T]),
    p: &[T],
    (dy, dyl): (&[T], &Matrices),
    scale: f64,
    which: AttentionGrads,
) -> Grads<T> {
    let (lq, lk, d, dvn) = (g.q.rows, g.k.rows, g.q.cols, g.v.cols);
    let all = which == AttentionGrads::All;
    let n = g.count();
    let (mut dq, mut dk) = if all {
        (vec![T::zero(); n * lq * d], vec![T::zero(); n * lk * d])
    } else {
        (Vec::new(), Vec::new())
    };
    let mut dv = vec![T::zero(); n * lk * dvn];
    fn blocks<T>(buf: &mut [T], size: usize, n: usize) -> Vec<&mut [T]> {
        if buf.is_empty() {
            (0..n).map(|_| <&mut [T]>::default()).collect()
        } else {
            buf.chunks_mut(size).collect()
        }
    }
    let (dq_b, dk_b) = (blocks(&mut dq, lq * d, n), blocks(&mut dk, lk * d, n));
    dq_b.into_par_iter()
        .zip(dk_b)
        .zip(dv.par_chunks_mut(lk * dvn))
        .enumerate()
        .for_each_init(
            || vec![T::zero(); lq * lk],
            |ds, (t, ((dq, dk), dv))| {
                let p = &p[t * lq * lk..(t + 1) * lq * lk];
                let dy_t = unsafe { dy.as_ptr().add(dyl.offsets[t]) };
                let dy_m = (dy_t, dyl.row_stride, dyl.col_stride);
                let vt = g.v.t();
                // SAFETY (all four products): offsets and strides come from valid layouts;
                // the destinations are fresh blocks (or the scratch) of the sizes written.
                unsafe {
                    // dv = Pᵀ dy
                    matmul(
                        (lk, dvn, lq),
                        dv.as_mut_ptr(),
                        (p.as_ptr(), 1, lk as isize),
                        dy_m,
                        false,
                        1.0,
                    );
                }
                if !all {
                    return;
                }
                unsafe {
                    // dP = dy vᵀ
                    let v_t = v.as_ptr().add(g.v.offsets[t]);
                    matmul(
                        (lq, lk, dvn),
                        ds.as_mut_ptr(),
                        dy_m,
                        (v_t, vt.0, vt.1),
                        false,
                        1.0,
                    );
                }
                for (ds, p) in ds.chunks_mut(lk).zip(p.chunks(lk)) {
                    let s = ds
                        .iter()
                        .zip(p)
                        .map(|(a, b)| a.to_f64() * b.to_f64())
                        .sum::<f64>();
                    let s = T::from_f64(s);
                    for (a, b) in ds.iter_mut().zip(p) {
                        *a = *b * (*a - s);
                    }
                }
                unsafe {
                    let k_t = k.as_ptr().add(g.k.offsets[t]);
                    let q_t = q.as_ptr().add(g.q.offsets[t]);
                    // dq = dS k·scale, dk = dSᵀ q·scale
                    matmul(
                        (lq, d, lk),
                        dq.as_mut_ptr(),
                        (ds.as_ptr(), lk as isize, 1),
                        (k_t, g.k.row_stride, g.k.col_stride),
                        false,
                        scale,
                    );
                    matmul(
                        (lk, d, lq),
                        dk.as_mut_ptr(),
                        (ds.as_ptr(), 1, lk as isize),
                        (q_t, g.q.row_stride, g.q.col_stride),
                        false,
                        scale,
                    );
                }
            },
        );
    Grads { dq, dk, dv }
}

/// The kernels' element types: their storage, and `exp` (the vectorisable one for f32).
pub(crate) trait Element: WithDType {
    fn exp(self) -> Self;
    fn of(s: &CpuStorage) -> Option<&[Self]>;
    fn storage(v: Vec<Self>) -> CpuStorage;
}

impl Element for f32 {
    fn exp(self) -> Self {
        fast_math::exp(self)
    }
    fn of(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Element for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn of(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

const DTYPES: &str = "attention kernel: q, k, v (and mask, gradient) must all be f32 or all f64";

/// The elements of a CPU tensor (the whole buffer: layouts address it with their offsets).
fn elements<T: Element>(s: &Storage) -> Result<&[T]> {
    match s {
        Storage::Cpu(c) => T::of(c).ok_or_else(|| candle_core::Error::Msg(DTYPES.into())),
        _ => candle_core::bail!("attention kernel: CPU tensors only"),
    }
}

/// The attention op: q, k, v in, `y (…, Lq, dv)` out; keeps P for its backward.
pub(crate) struct AttentionCpu {
    scale: f64,
    /// Additive, broadcast to `(…, Lq, Lk)`; q's dtype.
    mask: Option<Tensor>,
    grads: AttentionGrads,
    weights: Mutex<Option<Tensor>>,
}

impl AttentionCpu {
    pub fn new(scale: f64, mask: Option<Tensor>, grads: AttentionGrads) -> Self {
        Self {
            scale,
            mask,
            grads,
            weights: Mutex::new(None),
        }
    }

    fn forward_typed<T: Element>(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        (s3, l3): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1, l2, l3)?;
        fn typed<T: Element>(s: &CpuStorage) -> Result<&[T]> {
            T::of(s).ok_or_else(|| candle_core::Error::Msg(DTYPES.into()))
        }
        let (q, k, v) = (typed::<T>(s1)?, typed::<T>(s2)?, typed::<T>(s3)?);
        let mut y_dims = l1.dims().to_vec();
        let mut p_dims = y_dims.clone();
        *y_dims.last_mut().expect("rank ≥ 2") = g.v.cols;
        *p_dims.last_mut().expect("rank ≥ 2") = g.k.rows;
        let (p, y) = match &self.mask {
            Some(m) => {
                if m.dims() != p_dims.as_slice() {
                    candle_core::bail!(
                        "attention: mask {:?} must be broadcast to {p_dims:?}",
                        m.dims()
                    )
                }
                let (ms, ml) = m.storage_and_layout();
                let ml = Matrices::new(ml, "mask")?;
                forward(&g, (q, k, v), Some((elements::<T>(&ms)?, &ml)), self.scale)
            }
            None => forward(&g, (q, k, v), None, self.scale),
        };
        let p = Tensor::from_vec(p, p_dims, &candle_core::Device::Cpu)?;
        *self
            .weights
            .lock()
            .map_err(|_| candle_core::Error::Msg("attention: poisoned weights".into()))? = Some(p);
        Ok((T::storage(y), Shape::from(y_dims)))
    }

    fn backward_typed<T: Element>(
        &self,
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        p: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let ((sq, lq), (sk, lk), (sv, lv)) = (
            q.storage_and_layout(),
            k.storage_and_layout(),
            v.storage_and_layout(),
        );
        let g = Geometry::new(lq, lk, lv)?;
        let (sp, lp) = p.storage_and_layout();
        let (sd, ld) = dy.storage_and_layout();
        let p_el = elements::<T>(&sp)?;
        let p_el = &p_el[lp.start_offset()..];
        let dyl = Matrices::new(ld, "gradient")?;
        if dyl.offsets.len() != g.count() || dyl.rows != g.q.rows || dyl.cols != g.v.cols {
            candle_core::bail!(
                "attention backward: gradient {:?} does not match the output",
                ld.dims()
            )
        }
        let grads = backward(
            &g,
            (
                elements::<T>(&sq)?,
                elements::<T>(&sk)?,
                elements::<T>(&sv)?,
            ),
            p_el,
            (elements::<T>(&sd)?, &dyl),
            self.scale,
            self.grads,
        );
        let cpu = candle_core::Device::Cpu;
        let dv = Tensor::from_vec(grads.dv, v.dims(), &cpu)?;
        if self.grads == AttentionGrads::ValueOnly {
            return Ok((None, None, Some(dv)));
        }
        let dq = Tensor::from_vec(grads.dq, q.dims(), &cpu)?;
        let dk = Tensor::from_vec(grads.dk, k.dims(), &cpu)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

impl CustomOp3 for AttentionCpu {
    fn name(&self) -> &'static str {
        "candle-explain-attention-cpu"
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
        let args = ((s1, l1), (s2, l2), (s3, l3));
        match s1 {
            CpuStorage::F32(_) => self.forward_typed::<f32>(args.0, args.1, args.2),
            CpuStorage::F64(_) => self.forward_typed::<f64>(args.0, args.1, args.2),
            _ => candle_core::bail!("{DTYPES}"),
        }
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let p = self
            .weights
            .lock()
            .map_err(|_| candle_core::Error::Msg("attention: poisoned weights".into()))?
            .clone()
            .ok_or_else(|| candle_core::Error::Msg("attention: backward before forward".into()))?;
        // P is contiguous (made by the forward); the gradient is read through its strides.
        let qkv = (&q.detach(), &k.detach(), &v.detach());
        match q.dtype() {
            candle_core::DType::F32 => self.backward_typed::<f32>(qkv, &p, dy),
            candle_core::DType::F64 => self.backward_typed::<f64>(qkv, &p, dy),
            _ => candle_core::bail!("{DTYPES}"),
        }
    }
}
