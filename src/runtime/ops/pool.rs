//! 2-d max and average pooling with padding and ceil mode, as PyTorch's
//! `max_pool2d` and `avg_pool2d` (with `count_include_pad=True`).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};

use super::{Kernel1, Kernel2, Op1, Real, check_input, cpu_fwd2, for_planes};
use crate::graph::window_output;

/// 2-d max pooling of an NCHW tensor with a square `kernel`, `stride` and
/// `padding` (at most half the kernel). Padding is -inf, so it never wins.
/// The gradient goes to the first maximum of each window.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Tensor> {
    let pool = Pool::new(MaxPool2d::NAME, x, kernel, stride, padding, ceil_mode)?;
    x.apply_op1(Op1(MaxPool2d(pool)))
}

/// 2-d average pooling of an NCHW tensor, PyTorch's default
/// `count_include_pad=True`: the divisor is the window clipped to the padded
/// input.
pub fn avg_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Tensor> {
    let pool = Pool::new(AvgPool2d::NAME, x, kernel, stride, padding, ceil_mode)?;
    x.apply_op1(Op1(AvgPool2d(pool)))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Pool {
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) ceil_mode: bool,
}

/// One window along one axis: the input range `lo..hi` it covers, and its
/// extent `span` within the padded input (the divisor's factor).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) lo: usize,
    pub(crate) hi: usize,
    pub(crate) span: usize,
}

impl Pool {
    /// Checks the settings and the input, so that errors come before the op runs.
    fn new(op: &str, x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Self> {
        if kernel == 0 || stride == 0 {
            bail!("{op}: kernel and stride must be positive, got kernel {kernel}, stride {stride}");
        }
        if padding > kernel / 2 {
            bail!("{op}: padding {padding} is more than half the kernel {kernel}");
        }
        let pool = Pool { kernel, stride, padding, ceil_mode };
        let [_, _, h, w] = check_input(op, x)?;
        pool.out_size(op, h)?;
        pool.out_size(op, w)?;
        Ok(pool)
    }

    fn out_size(&self, op: &str, size: usize) -> Result<usize> {
        match window_output(size, self.kernel, self.stride, self.padding, self.ceil_mode) {
            Some(out) => Ok(out),
            None => {
                bail!("{op}: kernel {} is larger than the input size {size} padded by {}", self.kernel, self.padding)
            }
        }
    }

    /// The windows along an axis of `size` input elements.
    pub(crate) fn windows(&self, op: &str, size: usize) -> Result<Vec<Window>> {
        let out = self.out_size(op, size)?;
        let (size, pad) = (size as isize, self.padding as isize);
        Ok((0..out)
            .map(|o| {
                let start = (o * self.stride) as isize - pad;
                let end = (start + self.kernel as isize).min(size + pad);
                let (lo, hi) = (start.max(0), end.min(size));
                Window { lo: lo as usize, hi: hi.max(lo) as usize, span: (end - start) as usize }
            })
            .collect())
    }

    /// The windows along H and W for an input of `dims`, and the output shape.
    fn geometry(&self, op: &str, [n, c, h, w]: [usize; 4]) -> Result<(Vec<Window>, Vec<Window>, Shape)> {
        let (rows, cols) = (self.windows(op, h)?, self.windows(op, w)?);
        let shape = Shape::from((n, c, rows.len(), cols.len()));
        Ok((rows, cols, shape))
    }
}

/// The index in a plane of width `w` of the first maximum of a window, NaN
/// winning as in PyTorch; `None` for an empty window.
fn argmax<T: Real>(x: &[T], w: usize, r: Window, c: Window) -> Option<usize> {
    let mut best: Option<(usize, T)> = None;
    for ih in r.lo..r.hi {
        for iw in c.lo..c.hi {
            let i = ih * w + iw;
            let v = x[i];
            match best {
                Some((_, b)) if !(v > b || v.is_nan()) => {}
                _ => best = Some((i, v)),
            }
        }
    }
    best.map(|(i, _)| i)
}

/// The windows of the output cells in row-major order.
fn cells<'a>(rows: &'a [Window], cols: &'a [Window]) -> impl Iterator<Item = (Window, Window)> + 'a {
    rows.iter().flat_map(move |&r| cols.iter().map(move |&c| (r, c)))
}

/// Checks that a gradient has the shape of the op's output.
fn check_grad(op: &str, grad: [usize; 4], expected: &Shape) -> Result<()> {
    if grad.as_slice() != expected.dims() {
        bail!("{op}: gradient of shape {grad:?}, expected {:?}", expected.dims());
    }
    Ok(())
}

struct MaxPool2d(Pool);

impl Kernel1 for MaxPool2d {
    const NAME: &'static str = "max_pool2d";

    fn run<T: Real>(&self, x: &[T], dims: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let (rows, cols, shape) = self.0.geometry(Self::NAME, dims)?;
        let [_, _, h, w] = dims;
        let mut out = vec![T::ZERO; shape.elem_count()];
        for_planes(&mut out, rows.len() * cols.len(), |p, out| {
            let x = &x[p * h * w..(p + 1) * h * w];
            for (o, (r, c)) in out.iter_mut().zip(cells(&rows, &cols)) {
                *o = argmax(x, w, r, c).map_or(T::NEG_INFINITY, |i| x[i]);
            }
        });
        Ok((out, shape))
    }

    fn backward(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        arg.apply_op2_no_bwd(grad_res, &MaxPool2dBackward(self.0)).map(Some)
    }
}

/// The input gradient of max pooling from the input and the output gradient:
/// each output gradient goes to its window's argmax, recomputed here.
struct MaxPool2dBackward(Pool);

impl Kernel2 for MaxPool2dBackward {
    const NAME: &'static str = "max_pool2d_backward";

    fn run<T: Real>(&self, x: &[T], dims: [usize; 4], grad: &[T], grad_dims: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let (rows, cols, out_shape) = self.0.geometry(Self::NAME, dims)?;
        check_grad(Self::NAME, grad_dims, &out_shape)?;
        let [n, c, h, w] = dims;
        let plane_out = rows.len() * cols.len();
        let mut grad_in = vec![T::ZERO; n * c * h * w];
        for_planes(&mut grad_in, h * w, |p, grad_in| {
            let x = &x[p * h * w..(p + 1) * h * w];
            let grad = &grad[p * plane_out..(p + 1) * plane_out];
            for (&g, (r, c)) in grad.iter().zip(cells(&rows, &cols)) {
                if let Some(i) = argmax(x, w, r, c) {
                    grad_in[i] += g;
                }
            }
        });
        Ok((grad_in, Shape::from(dims.to_vec())))
    }
}

impl CustomOp2 for MaxPool2dBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_fwd2(self, s1, l1, s2, l2)
    }
}

struct AvgPool2d(Pool);

impl Kernel1 for AvgPool2d {
    const NAME: &'static str = "avg_pool2d";

    fn run<T: Real>(&self, x: &[T], dims: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let (rows, cols, shape) = self.0.geometry(Self::NAME, dims)?;
        let [_, _, h, w] = dims;
        let mut out = vec![T::ZERO; shape.elem_count()];
        for_planes(&mut out, rows.len() * cols.len(), |p, out| {
            let x = &x[p * h * w..(p + 1) * h * w];
            for (o, (r, c)) in out.iter_mut().zip(cells(&rows, &cols)) {
                let mut sum = T::ZERO;
                for ih in r.lo..r.hi {
                    for &v in &x[ih * w + c.lo..ih * w + c.hi] {
                        sum += v;
                    }
                }
                *o = sum / T::from_usize(r.span * c.span);
            }
        });
        Ok((out, shape))
    }

    fn backward(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        grad_res.apply_op1_no_bwd(&Op1(AvgPool2dBackward { pool: self.0, h, w })).map(Some)
    }
}

/// The input gradient of average pooling from the output gradient, for an
/// input of `h` x `w`: each output gradient, divided as in the forward pass,
/// goes to every input element of its window.
struct AvgPool2dBackward {
    pool: Pool,
    h: usize,
    w: usize,
}

impl Kernel1 for AvgPool2dBackward {
    const NAME: &'static str = "avg_pool2d_backward";

    fn run<T: Real>(&self, grad: &[T], grad_dims: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let [n, c, _, _] = grad_dims;
        let (h, w) = (self.h, self.w);
        let (rows, cols, out_shape) = self.pool.geometry(Self::NAME, [n, c, h, w])?;
        check_grad(Self::NAME, grad_dims, &out_shape)?;
        let plane_out = rows.len() * cols.len();
        let mut grad_in = vec![T::ZERO; n * c * h * w];
        for_planes(&mut grad_in, h * w, |p, grad_in| {
            let grad = &grad[p * plane_out..(p + 1) * plane_out];
            for (&g, (r, c)) in grad.iter().zip(cells(&rows, &cols)) {
                let g = g / T::from_usize(r.span * c.span);
                for ih in r.lo..r.hi {
                    for v in &mut grad_in[ih * w + c.lo..ih * w + c.hi] {
                        *v += g;
                    }
                }
            }
        });
        Ok((grad_in, Shape::from((n, c, h, w))))
    }
}
