//! 2-d resizing to a given size, as PyTorch's `interpolate` with
//! `mode="nearest"` and `mode="bilinear"`.

use candle_core::{Result, Shape, Tensor, bail};

use super::{Kernel1, Op1, Real, check_input, for_planes};

/// Resizes an NCHW tensor to `size` = [h, w] by PyTorch's "nearest": the
/// source index of `dst` is `floor(dst * (in / out))`, computed in the
/// tensor's dtype as PyTorch does.
pub fn upsample_nearest2d(x: &Tensor, size: [usize; 2]) -> Result<Tensor> {
    check_sizes(UpsampleNearest2d::NAME, x, size)?;
    x.apply_op1(Op1(UpsampleNearest2d { size }))
}

/// Resizes an NCHW tensor to `size` = [h, w] by bilinear interpolation, as
/// PyTorch's "bilinear": with `align_corners` the corner pixels' centres
/// align; without, pixels are areas (half-pixel offsets, source coordinates
/// clamped at 0).
pub fn upsample_bilinear2d(x: &Tensor, size: [usize; 2], align_corners: bool) -> Result<Tensor> {
    check_sizes(UpsampleBilinear2d::NAME, x, size)?;
    x.apply_op1(Op1(UpsampleBilinear2d { size, align_corners }))
}

fn check_sizes(op: &str, x: &Tensor, size: [usize; 2]) -> Result<()> {
    let [_, _, h, w] = check_input(op, x)?;
    if h == 0 || w == 0 || size.contains(&0) {
        bail!("{op}: input and output sizes must be positive, got input {h}x{w} and output {}x{}", size[0], size[1]);
    }
    Ok(())
}

/// The source indices along an axis of `n_in` elements resized to `n_out`.
pub(crate) fn nearest_indices<T: Real>(n_in: usize, n_out: usize) -> Vec<usize> {
    let scale = T::from_usize(n_in) / T::from_usize(n_out);
    (0..n_out).map(|d| (T::from_usize(d) * scale).floor().to_usize().min(n_in - 1)).collect()
}

/// One output position along an axis of a linear interpolation: the two
/// source indices and their weights.
#[derive(Clone, Copy)]
pub(crate) struct Lerp<T> {
    pub(crate) i0: usize,
    pub(crate) i1: usize,
    pub(crate) w0: T,
    pub(crate) w1: T,
}

/// The interpolation along an axis of `n_in` elements resized to `n_out`,
/// as PyTorch's `compute_source_index_and_lambda`.
pub(crate) fn linear_weights<T: Real>(n_in: usize, n_out: usize, align_corners: bool) -> Vec<Lerp<T>> {
    let scale = match (align_corners, n_out > 1) {
        (true, true) => T::from_usize(n_in - 1) / T::from_usize(n_out - 1),
        (true, false) => T::ZERO,
        (false, _) => T::from_usize(n_in) / T::from_usize(n_out),
    };
    (0..n_out)
        .map(|d| {
            if n_in == n_out {
                return Lerp { i0: d, i1: d, w0: T::ONE, w1: T::ZERO };
            }
            let d = T::from_usize(d);
            let src = if align_corners { scale * d } else { max(scale * (d + T::HALF) - T::HALF, T::ZERO) };
            let i0 = src.floor().to_usize().min(n_in - 1);
            let w1 = min(max(src - T::from_usize(i0), T::ZERO), T::ONE);
            let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
            Lerp { i0, i1, w0: T::ONE - w1, w1 }
        })
        .collect()
}

fn max<T: Real>(a: T, b: T) -> T {
    if a < b { b } else { a }
}

fn min<T: Real>(a: T, b: T) -> T {
    if b < a { b } else { a }
}

struct UpsampleNearest2d {
    size: [usize; 2],
}

impl Kernel1 for UpsampleNearest2d {
    const NAME: &'static str = "upsample_nearest2d";

    fn run<T: Real>(&self, x: &[T], [n, c, h, w]: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let [oh, ow] = self.size;
        let (rows, cols) = (nearest_indices::<T>(h, oh), nearest_indices::<T>(w, ow));
        let mut out = vec![T::ZERO; n * c * oh * ow];
        for_planes(&mut out, oh * ow, |p, out| {
            let x = &x[p * h * w..(p + 1) * h * w];
            for (out_row, &ih) in out.chunks_mut(ow).zip(&rows) {
                for (o, &iw) in out_row.iter_mut().zip(&cols) {
                    *o = x[ih * w + iw];
                }
            }
        });
        Ok((out, Shape::from((n, c, oh, ow))))
    }

    fn backward(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        grad_res.apply_op1_no_bwd(&Op1(UpsampleNearest2dBackward { size: [h, w] })).map(Some)
    }
}

/// The input gradient of nearest resizing to an input of `size`, from the
/// output gradient: each output gradient goes to its source element.
struct UpsampleNearest2dBackward {
    size: [usize; 2],
}

impl Kernel1 for UpsampleNearest2dBackward {
    const NAME: &'static str = "upsample_nearest2d_backward";

    fn run<T: Real>(&self, grad: &[T], [n, c, oh, ow]: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let [h, w] = self.size;
        let (rows, cols) = (nearest_indices::<T>(h, oh), nearest_indices::<T>(w, ow));
        let mut grad_in = vec![T::ZERO; n * c * h * w];
        for_planes(&mut grad_in, h * w, |p, grad_in| {
            let grad = &grad[p * oh * ow..(p + 1) * oh * ow];
            for (grad_row, &ih) in grad.chunks(ow).zip(&rows) {
                for (&g, &iw) in grad_row.iter().zip(&cols) {
                    grad_in[ih * w + iw] += g;
                }
            }
        });
        Ok((grad_in, Shape::from((n, c, h, w))))
    }
}

struct UpsampleBilinear2d {
    size: [usize; 2],
    align_corners: bool,
}

impl Kernel1 for UpsampleBilinear2d {
    const NAME: &'static str = "upsample_bilinear2d";

    fn run<T: Real>(&self, x: &[T], [n, c, h, w]: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let [oh, ow] = self.size;
        let rows = linear_weights::<T>(h, oh, self.align_corners);
        let cols = linear_weights::<T>(w, ow, self.align_corners);
        let mut out = vec![T::ZERO; n * c * oh * ow];
        for_planes(&mut out, oh * ow, |p, out| {
            let x = &x[p * h * w..(p + 1) * h * w];
            for (out_row, r) in out.chunks_mut(ow).zip(&rows) {
                let (x0, x1) = (&x[r.i0 * w..(r.i0 + 1) * w], &x[r.i1 * w..(r.i1 + 1) * w]);
                for (o, c) in out_row.iter_mut().zip(&cols) {
                    *o = r.w0 * (c.w0 * x0[c.i0] + c.w1 * x0[c.i1]) + r.w1 * (c.w0 * x1[c.i0] + c.w1 * x1[c.i1]);
                }
            }
        });
        Ok((out, Shape::from((n, c, oh, ow))))
    }

    fn backward(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        let op = UpsampleBilinear2dBackward { size: [h, w], align_corners: self.align_corners };
        grad_res.apply_op1_no_bwd(&Op1(op)).map(Some)
    }
}

/// The input gradient of bilinear resizing to an input of `size`, from the
/// output gradient: each output gradient goes to its four source elements,
/// weighted as in the forward pass.
struct UpsampleBilinear2dBackward {
    size: [usize; 2],
    align_corners: bool,
}

impl Kernel1 for UpsampleBilinear2dBackward {
    const NAME: &'static str = "upsample_bilinear2d_backward";

    fn run<T: Real>(&self, grad: &[T], [n, c, oh, ow]: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let [h, w] = self.size;
        let rows = linear_weights::<T>(h, oh, self.align_corners);
        let cols = linear_weights::<T>(w, ow, self.align_corners);
        let mut grad_in = vec![T::ZERO; n * c * h * w];
        for_planes(&mut grad_in, h * w, |p, grad_in| {
            let grad = &grad[p * oh * ow..(p + 1) * oh * ow];
            for (grad_row, r) in grad.chunks(ow).zip(&rows) {
                for (&g, c) in grad_row.iter().zip(&cols) {
                    let (g0, g1) = (r.w0 * g, r.w1 * g);
                    grad_in[r.i0 * w + c.i0] += g0 * c.w0;
                    grad_in[r.i0 * w + c.i1] += g0 * c.w1;
                    grad_in[r.i1 * w + c.i0] += g1 * c.w0;
                    grad_in[r.i1 * w + c.i1] += g1 * c.w1;
                }
            }
        });
        Ok((grad_in, Shape::from((n, c, h, w))))
    }
}
