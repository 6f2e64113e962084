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

/// Weights of one call above this size (all heads and rows) are not kept for the backward:
/// the op keeps each row's max and normaliser and the backward recomputes the weights a
/// block of query rows at a time. Memory then grows linearly with the context instead of
/// quadratically (heads × L² per layer: 805 MB a layer for 12 heads at 4,096 tokens), for
/// one more `q kᵀ` product and its exponentials in the backward.
pub(crate) const KEEP_WEIGHTS_MAX_BYTES: usize = 64 << 20;

/// Scores of one block of query rows (rows × Lk) are sized to stay in L2.
const BLOCK_BYTES: usize = 256 << 10;

/// Query rows per block of `bytes`: all of them for short contexts (one block).
fn block_rows(bytes: usize, lq: usize, lk: usize, elem: usize) -> usize {
    (bytes / (lk * elem).max(1)).max(8).min(lq).max(1)
}

/// Row softmax of a row-major `rows × cols` block, in place, recording each row's max and
/// `1 / sum` in `stats` (two per row) so the backward can recompute it bit for bit
/// (PyTorch's convention: a row of −∞ only gives NaN).
fn softmax_rows<T: Element>(p: &mut [T], cols: usize, stats: &mut [T]) {
    for (row, st) in p.chunks_mut(cols).zip(stats.chunks_mut(2)) {
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
        st[0] = max;
        st[1] = inv;
    }
}

/// The softmax of scores whose rows' max and `1 / sum` are known: the same operations as
/// [`softmax_rows`], so the same values.
fn softmax_from_stats<T: Element>(p: &mut [T], cols: usize, stats: &[T]) {
    for (row, st) in p.chunks_mut(cols).zip(stats.chunks(2)) {
        let (max, inv) = (st[0], st[1]);
        for v in row.iter_mut() {
            *v = (*v - max).exp() * inv;
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

    /// Matrix `t`'s rows from `r0` on, as (pointer, row stride, column stride).
    ///
    /// SAFETY: `t` and `r0` within the matrices this geometry was made for.
    unsafe fn rows<T>(m: &Matrices, buf: &[T], t: usize, r0: usize) -> (*const T, isize, isize) {
        let p = buf.as_ptr().add(m.offsets[t]).offset(r0 as isize * m.row_stride);
        (p, m.row_stride, m.col_stride)
    }
}

/// The inputs of one call, as the kernels read them.
struct Inputs<'a, T> {
    g: &'a Geometry,
    q: &'a [T],
    k: &'a [T],
    v: &'a [T],
    mask: Option<(&'a [T], &'a Matrices)>,
    scale: f64,
}

impl<T: Element> Inputs<'_, T> {
    /// `s = q[r0..r0 + rows] kᵀ·scale + mask` of matrix `t` into `s` (rows × Lk).
    fn scores(&self, t: usize, r0: usize, rows: usize, s: &mut [T]) {
        let (g, lk, d) = (self.g, self.g.k.rows, self.g.q.cols);
        let kt = g.k.t();
        // SAFETY: offsets and strides come from valid layouts of q and k; `s` holds
        // rows × Lk elements.
        unsafe {
            let k_t = Geometry::rows(&g.k, self.k, t, 0).0;
            matmul(
                (rows, lk, d),
                s.as_mut_ptr(),
                Geometry::rows(&g.q, self.q, t, r0),
                (k_t, kt.0, kt.1),
                false,
                self.scale,
            );
        }
        if let Some((m, ml)) = self.mask {
            let base = ml.offsets[t] as isize + r0 as isize * ml.row_stride;
            for (i, row) in s[..rows * lk].chunks_mut(lk).enumerate() {
                for (j, s) in row.iter_mut().enumerate() {
                    let at = base + i as isize * ml.row_stride + j as isize * ml.col_stride;
                    *s += m[at as usize];
                }
            }
        }
    }
}

/// `buf` split into `n` blocks of `size`, or `n` empty blocks when `buf` is empty.
fn blocks<T>(buf: &mut [T], size: usize, n: usize) -> Vec<&mut [T]> {
    if buf.is_empty() {
        (0..n).map(|_| <&mut [T]>::default()).collect()
    } else {
        buf.chunks_mut(size).collect()
    }
}

/// What the forward leaves for the backward.
struct Forward<T> {
    y: Vec<T>,
    /// The weights `(…, Lq, Lk)`, when kept.
    p: Option<Vec<T>>,
    /// Each query row's max and `1 / sum`: `(…, Lq, 2)`.
    stats: Vec<T>,
}

fn forward<T: Element>(x: &Inputs<T>, keep: bool, rb: usize) -> Forward<T> {
    let g = x.g;
    let (lq, lk, dv) = (g.q.rows, g.k.rows, g.v.cols);
    let n = g.count();
    let mut p = if keep { vec![T::zero(); n * lq * lk] } else { Vec::new() };
    let mut stats = vec![T::zero(); n * lq * 2];
    let mut y = vec![T::zero(); n * lq * dv];
    blocks(&mut p, lq * lk, n)
        .into_par_iter()
        .zip(stats.par_chunks_mut(lq * 2))
        .zip(y.par_chunks_mut(lq * dv))
        .enumerate()
        .for_each_init(
            || vec![T::zero(); if keep { 0 } else { rb * lk }],
            |scratch, (t, ((p, st), y))| {
                for r0 in (0..lq).step_by(rb) {
                    let rows = rb.min(lq - r0);
                    let s = match keep {
                        true => &mut p[r0 * lk..(r0 + rows) * lk],
                        false => &mut scratch[..rows * lk],
                    };
                    x.scores(t, r0, rows, s);
                    softmax_rows(s, lk, &mut st[r0 * 2..(r0 + rows) * 2]);
                    // SAFETY: as in `scores`; y's block holds Lq × dv elements.
                    unsafe {
                        matmul(
                            (rows, dv, lk),
                            y.as_mut_ptr().add(r0 * dv),
                            (s.as_ptr(), lk as isize, 1),
                            Geometry::rows(&g.v, x.v, t, 0),
                            false,
                            1.0,
                        );
                    }
                }
            },
        );
    Forward {
        y,
        p: keep.then_some(p),
        stats,
    }
}

struct Grads<T> {
    dq: Vec<T>,
    dk: Vec<T>,
    dv: Vec<T>,
}

/// The weights as the backward gets them: kept, or recomputed from the row statistics.
enum Saved<'a, T> {
    Weights(&'a [T]),
    Stats(&'a [T]),
}

fn backward<T: Element>(
    x: &Inputs<T>,
    saved: Saved<T>,
    (dy, dyl): (&[T], &Matrices),
    which: AttentionGrads,
    rb: usize,
) -> Grads<T> {
    let g = x.g;
    let (lq, lk, d, dvn) = (g.q.rows, g.k.rows, g.q.cols, g.v.cols);
    let all = which == AttentionGrads::All;
    let n = g.count();
    let recompute = matches!(saved, Saved::Stats(_));
    let (mut dq, mut dk) = if all {
        (vec![T::zero(); n * lq * d], vec![T::zero(); n * lk * d])
    } else {
        (Vec::new(), Vec::new())
    };
    let mut dv = vec![T::zero(); n * lk * dvn];
    let (dq_b, dk_b) = (blocks(&mut dq, lq * d, n), blocks(&mut dk, lk * d, n));
    dq_b.into_par_iter()
        .zip(dk_b)
        .zip(dv.par_chunks_mut(lk * dvn))
        .enumerate()
        .for_each_init(
            || {
                let block = rb * lk;
                (vec![T::zero(); if recompute { block } else { 0 }], vec![T::zero(); if all { block } else { 0 }])
            },
            |(pbuf, ds), (t, ((dq, dk), dv))| {
                for r0 in (0..lq).step_by(rb) {
                    let rows = rb.min(lq - r0);
                    let p: &[T] = match saved {
                        Saved::Weights(w) => &w[(t * lq + r0) * lk..(t * lq + r0 + rows) * lk],
                        Saved::Stats(st) => {
                            let s = &mut pbuf[..rows * lk];
                            x.scores(t, r0, rows, s);
                            softmax_from_stats(s, lk, &st[(t * lq + r0) * 2..(t * lq + r0 + rows) * 2]);
                            s
                        }
                    };
                    // Later blocks add to dv and dk: they sum over the query rows.
                    let more = r0 > 0;
                    // SAFETY (all products): offsets and strides come from valid layouts; the
                    // destinations are fresh blocks (or the scratch) of the sizes written.
                    let dy_m = unsafe { Geometry::rows(dyl, dy, t, r0) };
                    unsafe {
                        // dv = Pᵀ dy
                        matmul((lk, dvn, rows), dv.as_mut_ptr(), (p.as_ptr(), 1, lk as isize), dy_m, more, 1.0);
                    }
                    if !all {
                        continue;
                    }
                    let ds = &mut ds[..rows * lk];
                    unsafe {
                        // dP = dy vᵀ
                        let (v_t, _, _) = Geometry::rows(&g.v, x.v, t, 0);
                        let vt = g.v.t();
                        matmul((rows, lk, dvn), ds.as_mut_ptr(), dy_m, (v_t, vt.0, vt.1), false, 1.0);
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
                        // dq = dS k·scale, dk = dSᵀ q·scale
                        matmul(
                            (rows, d, lk),
                            dq.as_mut_ptr().add(r0 * d),
                            (ds.as_ptr(), lk as isize, 1),
                            Geometry::rows(&g.k, x.k, t, 0),
                            false,
                            x.scale,
                        );
                        matmul(
                            (lk, d, rows),
                            dk.as_mut_ptr(),
                            (ds.as_ptr(), 1, lk as isize),
                            Geometry::rows(&g.q, x.q, t, r0),
                            more,
                            x.scale,
                        );
                    }
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

/// The attention op: q, k, v in, `y (…, Lq, dv)` out; keeps P (or, past
/// [`KEEP_WEIGHTS_MAX_BYTES`], its rows' statistics) for its backward.
pub(crate) struct AttentionCpu {
    scale: f64,
    /// Additive, broadcast to `(…, Lq, Lk)`; q's dtype.
    mask: Option<Tensor>,
    grads: AttentionGrads,
    keep_max_bytes: usize,
    block_bytes: usize,
    saved: Mutex<Option<SavedTensor>>,
}

enum SavedTensor {
    Weights(Tensor),
    Stats(Tensor),
}

/// Whether a call with `weights` elements of `elem` bytes keeps them for the backward.
pub(crate) fn keeps_weights(weights: usize, elem: usize) -> bool {
    weights.saturating_mul(elem) <= KEEP_WEIGHTS_MAX_BYTES
}

fn typed<T: Element>(s: &CpuStorage) -> Result<&[T]> {
    T::of(s).ok_or_else(|| candle_core::Error::Msg(DTYPES.into()))
}

impl AttentionCpu {
    pub fn new(scale: f64, mask: Option<Tensor>, grads: AttentionGrads) -> Self {
        Self {
            scale,
            mask,
            grads,
            keep_max_bytes: KEEP_WEIGHTS_MAX_BYTES,
            block_bytes: BLOCK_BYTES,
            saved: Mutex::new(None),
        }
    }

    /// The same op keeping the weights only up to `bytes` (0 for a forward without backward;
    /// tests force both paths).
    pub fn keeping_weights_up_to(mut self, bytes: usize) -> Self {
        self.keep_max_bytes = bytes;
        self
    }

    /// The same op with blocks of query rows of about `bytes` of scores.
    #[cfg(test)]
    pub fn in_blocks_of(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes;
        self
    }

    fn block_rows<T>(&self, g: &Geometry) -> usize {
        block_rows(self.block_bytes, g.q.rows, g.k.rows, std::mem::size_of::<T>())
    }

    /// The mask's elements and matrices, checked against the weights' shape.
    fn with_mask<T: Element, R>(
        &self,
        p_dims: &[usize],
        f: impl FnOnce(Option<(&[T], &Matrices)>) -> Result<R>,
    ) -> Result<R> {
        let Some(m) = &self.mask else { return f(None) };
        if m.dims() != p_dims {
            candle_core::bail!("attention: mask {:?} must be broadcast to {p_dims:?}", m.dims())
        }
        let (ms, ml) = m.storage_and_layout();
        let ml = Matrices::new(ml, "mask")?;
        f(Some((elements::<T>(&ms)?, &ml)))
    }

    fn forward_typed<T: Element>(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        (s3, l3): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1, l2, l3)?;
        let mut y_dims = l1.dims().to_vec();
        let mut p_dims = y_dims.clone();
        *y_dims.last_mut().expect("rank ≥ 2") = g.v.cols;
        *p_dims.last_mut().expect("rank ≥ 2") = g.k.rows;
        let weights: usize = p_dims.iter().product();
        let keep = weights.saturating_mul(std::mem::size_of::<T>()) <= self.keep_max_bytes;
        let out = self.with_mask::<T, _>(&p_dims, |mask| {
            let x = Inputs {
                g: &g,
                q: typed::<T>(s1)?,
                k: typed::<T>(s2)?,
                v: typed::<T>(s3)?,
                mask,
                scale: self.scale,
            };
            Ok(forward(&x, keep, self.block_rows::<T>(&g)))
        })?;
        let cpu = candle_core::Device::Cpu;
        let saved = match out.p {
            Some(p) => SavedTensor::Weights(Tensor::from_vec(p, p_dims, &cpu)?),
            None => {
                let mut s_dims = p_dims;
                *s_dims.last_mut().expect("rank ≥ 2") = 2;
                SavedTensor::Stats(Tensor::from_vec(out.stats, s_dims, &cpu)?)
            }
        };
        *self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("attention: poisoned weights".into()))? = Some(saved);
        Ok((T::storage(out.y), Shape::from(y_dims)))
    }

    fn backward_typed<T: Element>(
        &self,
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        saved: &SavedTensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let ((sq, lq), (sk, lk), (sv, lv)) = (
            q.storage_and_layout(),
            k.storage_and_layout(),
            v.storage_and_layout(),
        );
        let g = Geometry::new(lq, lk, lv)?;
        let (s_t, recompute) = match saved {
            SavedTensor::Weights(p) => (p, false),
            SavedTensor::Stats(s) => (s, true),
        };
        // Made contiguous by the forward.
        let (ss, ls) = s_t.storage_and_layout();
        let s_el = &elements::<T>(&ss)?[ls.start_offset()..];
        let (sd, ld) = dy.storage_and_layout();
        let dyl = Matrices::new(ld, "gradient")?;
        if dyl.offsets.len() != g.count() || dyl.rows != g.q.rows || dyl.cols != g.v.cols {
            candle_core::bail!(
                "attention backward: gradient {:?} does not match the output",
                ld.dims()
            )
        }
        let mut p_dims = q.dims().to_vec();
        *p_dims.last_mut().expect("rank ≥ 2") = g.k.rows;
        let grads = self.with_mask::<T, _>(&p_dims, |mask| {
            let x = Inputs {
                g: &g,
                q: elements::<T>(&sq)?,
                k: elements::<T>(&sk)?,
                v: elements::<T>(&sv)?,
                mask,
                scale: self.scale,
            };
            let saved = match recompute {
                true => Saved::Stats(s_el),
                false => Saved::Weights(s_el),
            };
            Ok(backward(&x, saved, (elements::<T>(&sd)?, &dyl), self.grads, self.block_rows::<T>(&g)))
        })?;
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
        let guard = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("attention: poisoned weights".into()))?;
        let saved = guard
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("attention: backward before forward".into()))?;
        // The gradient is read through its strides; q, k and v too (no copies).
        let qkv = (&q.detach(), &k.detach(), &v.detach());
        match q.dtype() {
            candle_core::DType::F32 => self.backward_typed::<f32>(qkv, saved, dy),
            candle_core::DType::F64 => self.backward_typed::<f64>(qkv, saved, dy),
            _ => candle_core::bail!("{DTYPES}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var, D};

    /// Kept or recomputed weights, in one block of query rows or several (the last one
    /// short): the forward and the three gradients equal Candle's autograd through the
    /// composed ops, in f64, on strided heads with a mask that varies by row; and the
    /// recomputed path's values equal the kept path's bit for bit.
    #[test]
    fn recomputed_weights_in_blocks_give_the_kept_weights_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let r = |s: &[usize]| Tensor::randn(0f64, 1.0, s, &dev);
        let (lq, lk) = (37, 41);
        let q = Var::from_tensor(&r(&[2, lq, 3, 4])?.transpose(1, 2)?)?;
        let k = Var::from_tensor(&r(&[2, lk, 3, 4])?.transpose(1, 2)?)?;
        let v = Var::from_tensor(&r(&[2, lk, 3, 6])?.transpose(1, 2)?)?;
        // Causal-like: query i sees keys ≤ i + 4.
        let m: Vec<f64> = (0..lq * lk)
            .map(|at| if at % lk > at / lk + 4 { -1e4 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(m, (1, 1, lq, lk), &dev)?.broadcast_as((2, 3, lq, lk))?;
        let readout = r(&[2, 3, lq, 6])?;
        let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
        let grads = |y: &Tensor| -> Result<Vec<Tensor>> {
            let g = (y * &readout)?.sum_all()?.backward()?;
            [qt, kt, vt]
                .iter()
                .map(|t| {
                    g.get(t)
                        .cloned()
                        .ok_or_else(|| candle_core::Error::Msg("no gradient".into()))
                })
                .collect()
        };
        let s = (qt.matmul(&kt.t()?)? * 0.6)?.broadcast_add(&mask)?;
        let y_ref = candle_nn::ops::softmax(&s, D::Minus1)?.matmul(vt)?;
        let g_ref = grads(&y_ref)?;
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()
        };
        let mut first: Option<Vec<Tensor>> = None;
        // 8 rows × 41 keys × 8 bytes: five blocks; the default: one.
        for (keep, block) in [(usize::MAX, BLOCK_BYTES), (usize::MAX, 8 * lk * 8), (0, 8 * lk * 8), (0, BLOCK_BYTES)] {
            let op = AttentionCpu::new(0.6, Some(mask.clone()), AttentionGrads::All)
                .keeping_weights_up_to(keep)
                .in_blocks_of(block);
            let y = qt.apply_op3_arc(kt, vt, std::sync::Arc::new(Box::new(op)))?;
            assert!(diff(&y, &y_ref)? < 1e-12, "forward, keep {keep}, block {block}");
            let g = grads(&y)?;
            for (i, (a, b)) in g.iter().zip(&g_ref).enumerate() {
                assert!(diff(a, b)? < 1e-12, "gradient {i}, keep {keep}, block {block}");
            }
            let mut all = vec![y];
            all.extend(g);
            match &first {
                None => first = Some(all),
                Some(f) if block == BLOCK_BYTES => {
                    for (a, b) in all.iter().zip(f) {
                        assert_eq!(diff(a, b)?, 0.0, "recomputed ≠ kept in one block");
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
