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

/// PyTorch's `max_pool2d`: each window's values gathered into a last axis,
/// and the first maximum of each taken by index, so that the gradient goes
/// to that one element, as PyTorch's does (a plain `max` would share it
/// among ties). Padding is negative infinity, which no window takes while
/// padding is at most half the kernel.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Tensor> {
    let pool = Pool { kernel, stride, padding, ceil_mode };
    let windows = gather_windows(x, pool, f64::NEG_INFINITY)?;
    let first = windows.argmax_keepdim(D::Minus1)?;
    windows.gather(&first, D::Minus1)?.squeeze(D::Minus1)
}

/// PyTorch's `avg_pool2d` with `count_include_pad=True`: window sums over a
/// zero-padded input, divided by each window's extent within the padded
/// input.
pub fn avg_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Tensor> {
    let pool = Pool { kernel, stride, padding, ceil_mode };
    let (_, _, h, w) = x.dims4()?;
    let (rows, cols) = (pool.windows("avg_pool2d", h)?, pool.windows("avg_pool2d", w)?);
    let divisor: Vec<f64> = rows.iter().flat_map(|r| cols.iter().map(move |c| (r.span * c.span) as f64)).collect();
    let divisor = Tensor::from_vec(divisor, (rows.len(), cols.len()), x.device())?.to_dtype(x.dtype())?;
    gather_windows(x, pool, 0.0)?.sum(D::Minus1)?.broadcast_div(&divisor)
}

/// The pooling windows of an NCHW tensor as `[N, C, OH, OW, k * k]`: the
/// input padded with `fill` as far as the last window reaches, then rows and
/// columns picked by `index_select` (whose backward adds the gradient back).
fn gather_windows(x: &Tensor, pool: Pool, fill: f64) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (pool.windows("pool", h)?.len(), pool.windows("pool", w)?.len());
    let Pool { kernel: k, stride, padding, .. } = pool;
    // The last window ends at (out - 1) * stride + k in padded coordinates;
    // in ceil mode that may be past the padding.
    let after = |out: usize, size: usize| ((out - 1) * stride + k).saturating_sub(size + padding);
    let x = pad(x, 2, padding, after(oh, h), fill)?;
    let x = pad(&x, 3, padding, after(ow, w), fill)?;
    let positions = |out: usize| -> Result<Tensor> {
        let ids: Vec<u32> = (0..out).flat_map(|o| (0..k).map(move |i| (o * stride + i) as u32)).collect();
        Tensor::from_vec(ids, out * k, x.device())
    };
    let width = x.dim(3)?;
    let x = x.index_select(&positions(oh)?, 2)?.reshape((n, c, oh, k, width))?;
    let x = x.index_select(&positions(ow)?, 4)?.reshape((n, c, oh, k, ow, k))?;
    x.permute((0, 1, 2, 4, 3, 5))?.contiguous()?.reshape((n, c, oh, ow, k * k))
}

/// `x` with `before` and `after` elements of `fill` added along `dim`.
fn pad(x: &Tensor, dim: usize, before: usize, after: usize, fill: f64) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    if fill == 0.0 {
        return x.pad_with_zeros(dim, before, after);
    }
    let block = |len: usize| -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[dim] = len;
        Tensor::full(fill, dims, x.device())?.to_dtype(x.dtype())
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
/// interpolation matrices, `A_h · x · A_wᵀ`, each a plain 2-d product of a
/// reshaped tensor (cuBLAS on a GPU).
pub fn upsample_bilinear2d(x: &Tensor, [oh, ow]: [usize; 2], align_corners: bool) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    // Columns: [N*C*H, W] · [W, OW].
    let y = x.contiguous()?.reshape((n * c * h, w))?.matmul(&interpolation(x, w, ow, align_corners)?)?;
    // Rows: [N*C*OW, H] · [H, OH], on the transposed planes.
    let y = y.reshape((n * c, h, ow))?.transpose(1, 2)?.contiguous()?.reshape((n * c * ow, h))?;
    let y = y.matmul(&interpolation(x, h, oh, align_corners)?)?;
    y.reshape((n * c, ow, oh))?.transpose(1, 2)?.contiguous()?.reshape((n, c, oh, ow))
}

/// The `[n_in, n_out]` matrix whose column `o` holds the weights of output
/// position `o` (the transposed interpolation matrix), in `like`'s dtype.
fn interpolation(like: &Tensor, n_in: usize, n_out: usize, align_corners: bool) -> Result<Tensor> {
    let lerps: Vec<(usize, usize, f64, f64)> = match like.dtype() {
        DType::F64 => linear_weights::<f64>(n_in, n_out, align_corners).into_iter().map(as_f64).collect(),
        _ => linear_weights::<f32>(n_in, n_out, align_corners).into_iter().map(as_f64).collect(),
    };
    let mut m = vec![0.0f64; n_in * n_out];
    for (o, (i0, i1, w0, w1)) in lerps.into_iter().enumerate() {
        m[i0 * n_out + o] += w0;
        m[i1 * n_out + o] += w1;
    }
    Tensor::from_vec(m, (n_in, n_out), like.device())?.to_dtype(like.dtype())
}

fn as_f64<T: super::ops::Real>(l: Lerp<T>) -> (usize, usize, f64, f64) {
    (l.i0, l.i1, l.w0.to_f64(), l.w1.to_f64())
}
