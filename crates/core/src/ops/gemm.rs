//! One wrapper around `gemm::gemm` (19 arguments) for every CPU kernel: strided views of the
//! three matrices, whether the product is added to the destination, and a scale.

use candle_core::WithDType;
pub(crate) use gemm::Parallelism;

/// A matrix in memory: element `(i, j)` at `ptr + i·row_stride + j·col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct View<P> {
    pub ptr: P,
    pub row_stride: isize,
    pub col_stride: isize,
}

impl<P> View<P> {
    /// A contiguous row-major matrix with `cols` columns.
    pub fn rows(ptr: P, cols: usize) -> Self {
        Self {
            ptr,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose of a contiguous row-major matrix with `cols` columns.
    pub fn transposed(ptr: P, cols: usize) -> Self {
        Self {
            ptr,
            row_stride: 1,
            col_stride: cols as isize,
        }
    }
}

/// `dst (m × n) = scale · lhs (m × k) · rhs (k × n)`, added to `dst` when `accumulate`.
///
/// # Safety
/// Each view must address its whole matrix inside one live allocation, and `dst` must not
/// overlap `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: View<*mut T>,
    lhs: View<*const T>,
    rhs: View<*const T>,
    accumulate: bool,
    scale: f64,
    parallelism: Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.ptr,
        dst.col_stride,
        dst.row_stride,
        accumulate,
        lhs.ptr,
        lhs.col_stride,
        lhs.row_stride,
        rhs.ptr,
        rhs.col_stride,
        rhs.row_stride,
        T::from_f64(if accumulate { 1.0 } else { 0.0 }),
        T::from_f64(scale),
        false,
        false,
        false,
        parallelism,
    )
}
