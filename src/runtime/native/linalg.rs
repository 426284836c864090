//! The one matrix product the engine uses, over strided views of slices.

/// A matrix view into a slice: element `(i, j)` is at
/// `offset + i * row_stride + j * col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Strides {
    pub offset: usize,
    pub row: usize,
    pub col: usize,
}

impl Strides {
    /// A row-major `rows x cols` matrix with rows `row` apart.
    pub fn rows(offset: usize, row: usize) -> Strides {
        Strides { offset, row, col: 1 }
    }

    /// The transpose of a row-major matrix with rows `row` apart.
    pub fn transposed(offset: usize, row: usize) -> Strides {
        Strides { offset, row: 1, col: row }
    }

    fn check(&self, len: usize, rows: usize, cols: usize, what: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = self.offset + (rows - 1) * self.row + (cols - 1) * self.col;
        assert!(last < len, "matmul: {what} ({rows}x{cols}, {self:?}) reaches index {last} of a slice of {len}");
    }
}

/// `c = a · b` for an `m x k` matrix `a` and a `k x n` matrix `b`, or
/// `c += a · b` when `accumulate`. Single-threaded: callers split the rows.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    c: &mut [f32],
    cs: Strides,
    accumulate: bool,
    a: &[f32],
    as_: Strides,
    b: &[f32],
    bs: Strides,
) {
    if m == 0 || n == 0 {
        return;
    }
    cs.check(c.len(), m, n, "result");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c[cs.offset + i * cs.row + j * cs.col] = 0.0;
                }
            }
        }
        return;
    }
    as_.check(a.len(), m, k, "left factor");
    bs.check(b.len(), k, n, "right factor");
    // SAFETY: the checks above keep every index of the three views inside
    // its slice, and `c` is borrowed mutably, so it aliases neither factor.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().add(cs.offset),
            cs.col as isize,
            cs.row as isize,
            accumulate,
            a.as_ptr().add(as_.offset),
            as_.col as isize,
            as_.row as isize,
            b.as_ptr().add(bs.offset),
            bs.col as isize,
            bs.row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
