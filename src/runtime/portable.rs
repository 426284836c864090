//! The graph's ops as compositions of candle's own tensor ops, for any device.
//!
//! netc's kernels in `ops/` run on the CPU only. Everything here is made of
//! candle ops that have a CUDA kernel and a backward in candle itself
//! (`conv2d`, `index_select`, `gather`, `argmax`, `matmul`, `cat`,
//! reductions), so a model built from them trains on a GPU through candle's
//! autograd, and the very same code runs on the CPU, where the tests hold it
//! to the native engine (docs/gpu.md). netc adds no CUDA kernel of its own.
//!
//! The geometry (which input rows a pooling window covers, its divisor, the
//! resizing indices and weights) comes from the CPU kernels' functions, so
//! both follow PyTorch the same way.

use candle_core::{D, DType, Result, Tensor};

use super::ops::pool::Pool;
use super::ops::upsample::{Lerp, linear_weights, nearest_indices};

/// PyTorch's `conv2d`: candle's own, whose backward is a transposed
/// convolution (input) and a convolution (weight).
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize, dilation: usize, groups: usize) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    let span = dilation * (w.dim(2)? - 1) + 1;
    // The trailing padded rows (columns) that no window reads.
    let unread = |size: usize| (size + 2 * padding).saturating_sub(span) % stride;
    if unread(h) == unread(wd) {
        return x.conv2d(w, padding, stride, dilation, groups);
    }
    // candle's backward sizes the input's gradient by the rows' count of
    // unread elements alone, so where columns differ, pad explicitly and
    // drop what no window reads: then both counts are zero.
    let x = x.pad_with_zeros(2, padding, padding)?.pad_with_zeros(3, padding, padding)?;
    let x = x.narrow(2, 0, h + 2 * padding - unread(h))?.narrow(3, 0, wd + 2 * padding - unread(wd))?;
    x.conv2d(w, 0, stride, dilation, groups)
}

/// PyTorch's `max_pool2d`. The index of each window's first maximum is
/// found without gradient (the windows gathered into a last axis,
/// `argmax`, all freed at once), and the output is one `gather` of the
/// padded input at those indices: the graph keeps one index per output,
/// not every window, and the gradient goes to that one element, as
/// PyTorch's does (a plain `max` would share it among ties, which are
/// common after a ReLU). Padding is negative infinity, which no window
/// takes while padding is at most half the kernel.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Tensor> {
    let pool = Pool { kernel, stride, padding, ceil_mode };
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (pool.windows("max_pool2d", h)?.len(), pool.windows("max_pool2d", w)?.len());
    let padded = pad_for_max(x, pool, oh, ow)?;
    let (hp, wp) = (padded.dim(2)?, padded.dim(3)?);
    let first = windows(&padded.detach(), pool, oh, ow)?.argmax(D::Minus1)?;
    // Window-local index a -> offset in the padded plane: (a / k) rows and
    // (a % k) columns from the window's corner at (o_h * stride, o_w * stride).
    let k = kernel;
    let offsets: Vec<u32> = (0..k * k).map(|a| ((a / k) * wp + a % k) as u32).collect();
    let corners: Vec<u32> = (0..oh).flat_map(|i| (0..ow).map(move |j| (i * stride * wp + j * stride) as u32)).collect();
    let offsets = Tensor::from_vec(offsets, k * k, x.device())?;
    let corners = Tensor::from_vec(corners, (oh, ow), x.device())?;
    let at = offsets.index_select(&first.flatten_all()?, 0)?.reshape((n, c, oh, ow))?.broadcast_add(&corners)?;
    padded.reshape((n, c, hp * wp))?.gather(&at.reshape((n, c, oh * ow))?, 2)?.reshape((n, c, oh, ow))
}

/// PyTorch's `avg_pool2d` with `count_include_pad=True`. Its divisor (each
/// window's extent within the padded input) is a product of a row's and a
/// column's, so the pool is two matrix products, `P_h · x · P_wᵀ`, like
/// bilinear resizing: no window is materialised, and the work is cuBLAS's.
pub fn avg_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Tensor> {
    let pool = Pool { kernel, stride, padding, ceil_mode };
    let (_, _, h, w) = x.dims4()?;
    let matrix = |size: usize| -> Result<(Vec<f64>, usize)> {
        let windows = pool.windows("avg_pool2d", size)?;
        let mut m = vec![0.0f64; size * windows.len()];
        for (o, win) in windows.iter().enumerate() {
            for i in win.lo..win.hi {
                m[i * windows.len() + o] = 1.0 / win.span as f64;
            }
        }
        Ok((m, windows.len()))
    };
    separable(x, matrix(h)?, matrix(w)?)
}

/// The pooling windows of a padded NCHW tensor as `[N, C, OH, OW, k * k]`:
/// rows and columns picked by `index_select`.
fn windows(padded: &Tensor, pool: Pool, oh: usize, ow: usize) -> Result<Tensor> {
    let (n, c, _, wp) = padded.dims4()?;
    let Pool { kernel: k, stride, .. } = pool;
    let positions = |out: usize| -> Result<Tensor> {
        let ids: Vec<u32> = (0..out).flat_map(|o| (0..k).map(move |i| (o * stride + i) as u32)).collect();
        Tensor::from_vec(ids, out * k, padded.device())
    };
    let x = padded.index_select(&positions(oh)?, 2)?.reshape((n, c, oh, k, wp))?;
    let x = x.index_select(&positions(ow)?, 4)?.reshape((n, c, oh, k, ow, k))?;
    x.permute((0, 1, 2, 4, 3, 5))?.contiguous()?.reshape((n, c, oh, ow, k * k))
}

/// `x` padded with negative infinity (which no maximum takes) by the
/// pool's padding before, and after as far as the last window reaches:
/// (out - 1) * stride + k in padded coordinates, which in ceil mode may be
/// past the padding.
fn pad_for_max(x: &Tensor, pool: Pool, oh: usize, ow: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let Pool { kernel: k, stride, padding, .. } = pool;
    let after = |out: usize, size: usize| ((out - 1) * stride + k).saturating_sub(size + padding);
    let x = pad(x, 2, padding, after(oh, h))?;
    pad(&x, 3, padding, after(ow, w))
}

/// `x` with `before` and `after` elements of negative infinity added along `dim`.
fn pad(x: &Tensor, dim: usize, before: usize, after: usize) -> Result<Tensor> {
    let block = |len: usize| -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[dim] = len;
        Tensor::full(f64::NEG_INFINITY, dims, x.device())?.to_dtype(x.dtype())
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(block(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(block(after)?);
    }
    Tensor::cat(&parts, dim)
}

/// PyTorch's `interpolate(mode="nearest")`: rows, then columns, picked by
/// `index_select`.
pub fn upsample_nearest2d(x: &Tensor, [oh, ow]: [usize; 2]) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let ids = |n_in: usize, n_out: usize| -> Result<Tensor> {
        let ids: Vec<usize> = match x.dtype() {
            DType::F64 => nearest_indices::<f64>(n_in, n_out),
            _ => nearest_indices::<f32>(n_in, n_out),
        };
        Tensor::from_vec(ids.into_iter().map(|i| i as u32).collect::<Vec<u32>>(), n_out, x.device())
    };
    x.index_select(&ids(h, oh)?, 2)?.index_select(&ids(w, ow)?, 3)
}

/// PyTorch's `interpolate(mode="bilinear")`: two matrix products with the
/// interpolation matrices, `A_h · x · A_wᵀ`.
pub fn upsample_bilinear2d(x: &Tensor, [oh, ow]: [usize; 2], align_corners: bool) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    separable(x, (interpolation(x, h, oh, align_corners)?, oh), (interpolation(x, w, ow, align_corners)?, ow))
}

/// `M_h · x · M_wᵀ` for an NCHW `x`, given the transposed matrices
/// `[H, OH]` and `[W, OW]` (row-major, with their output sizes): each a
/// plain 2-d product of a reshaped tensor (cuBLAS on a GPU).
fn separable(x: &Tensor, (rows, oh): (Vec<f64>, usize), (cols, ow): (Vec<f64>, usize)) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let matrix = |m: Vec<f64>, size: usize, out: usize| {
        Tensor::from_vec(m, (size, out), x.device()).and_then(|t| t.to_dtype(x.dtype()))
    };
    // Columns: [N*C*H, W] · [W, OW].
    let y = x.contiguous()?.reshape((n * c * h, w))?.matmul(&matrix(cols, w, ow)?)?;
    // Rows: [N*C*OW, H] · [H, OH], on the transposed planes.
    let y = y.reshape((n * c, h, ow))?.transpose(1, 2)?.contiguous()?.reshape((n * c * ow, h))?;
    let y = y.matmul(&matrix(rows, h, oh)?)?;
    y.reshape((n * c, ow, oh))?.transpose(1, 2)?.contiguous()?.reshape((n, c, oh, ow))
}

/// The `[n_in, n_out]` matrix (row-major) whose column `o` holds the
/// weights of output position `o`, computed in `like`'s dtype as PyTorch does.
fn interpolation(like: &Tensor, n_in: usize, n_out: usize, align_corners: bool) -> Result<Vec<f64>> {
    let lerps: Vec<(usize, usize, f64, f64)> = match like.dtype() {
        DType::F64 => linear_weights::<f64>(n_in, n_out, align_corners).into_iter().map(as_f64).collect(),
        _ => linear_weights::<f32>(n_in, n_out, align_corners).into_iter().map(as_f64).collect(),
    };
    let mut m = vec![0.0f64; n_in * n_out];
    for (o, (i0, i1, w0, w1)) in lerps.into_iter().enumerate() {
        m[i0 * n_out + o] += w0;
        m[i1 * n_out + o] += w1;
    }
    Ok(m)
}

fn as_f64<T: super::ops::Real>(l: Lerp<T>) -> (usize, usize, f64, f64) {
    (l.i0, l.i1, l.w0.to_f64(), l.w1.to_f64())
}
