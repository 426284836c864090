//! 2-d convolution as im2col + one matrix product, so that both gradients
//! are matrix products too (candle's own CPU backward for the input goes
//! through a direct-loop transposed convolution and is slow).
//!
//! `cols = im2col(x)` lays every receptive field out as a column:
//! `[C*k*k, N*OH*OW]`. The output is `W[Cout, C*k*k] · cols`; candle's
//! autograd differentiates the product, and im2col's own backward, col2im,
//! scatters the column gradients back onto the input.

use candle_core::{Result, Shape, Tensor, bail};

use super::{Kernel1, Op1, Real, check_input, for_planes};
use crate::graph::window_output;

/// PyTorch's `conv2d(x, w, stride, padding, dilation, groups)` without bias:
/// `x` is [N, C, H, W], `w` is [Cout, C / groups, k, k].
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize, dilation: usize, groups: usize) -> Result<Tensor> {
    let [n, c, h, wd] = check_input("conv2d", x)?;
    let (cout, cin_g, k, k2) = w.dims4()?;
    if k != k2 || groups == 0 || c != cin_g * groups || cout % groups != 0 || stride == 0 || dilation == 0 {
        bail!("conv2d: weight {:?} does not fit input {:?} with groups {groups}", w.dims(), x.dims());
    }
    let span = dilation * (k - 1) + 1;
    let (Some(oh), Some(ow)) =
        (window_output(h, span, stride, padding, false), window_output(wd, span, stride, padding, false))
    else {
        bail!("conv2d: a {span}x{span} kernel does not fit a {h}x{wd} input padded by {padding}")
    };
    let op = Im2Col { k, stride, padding, dilation, out: [oh, ow] };
    let per_group = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
        let ckk = x.dim(1)? * k * k;
        let cols = x.apply_op1(Op1(op))?.reshape((ckk, n * oh * ow))?;
        w.reshape((w.dim(0)?, ckk))?.matmul(&cols)
    };
    let y = if groups == 1 {
        per_group(x, w)?
    } else {
        let (cin_g, cout_g) = (c / groups, cout / groups);
        let parts = (0..groups)
            .map(|g| per_group(&x.narrow(1, g * cin_g, cin_g)?, &w.narrow(0, g * cout_g, cout_g)?))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)?
    };
    // [Cout, N*OH*OW] -> [N, Cout, OH, OW]
    y.reshape((cout, n, oh, ow))?.transpose(0, 1)?.contiguous()
}

/// Every receptive field of an NCHW tensor as a column of
/// `[C*k*k, N, OH, OW]` (row `(c*k + i)*k + j`), zero outside the input.
#[derive(Clone, Copy)]
struct Im2Col {
    k: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    out: [usize; 2],
}

impl Im2Col {
    /// The input index along one axis for output position `o` and kernel
    /// tap `t`, if it falls inside an axis of length `len`.
    fn source(&self, o: usize, t: usize, len: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation).checked_sub(self.padding).filter(|i| *i < len)
    }
}

impl Kernel1 for Im2Col {
    const NAME: &'static str = "im2col";

    fn run<T: Real>(&self, x: &[T], [n, c, h, w]: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let (k, [oh, ow]) = (self.k, self.out);
        let row_len = n * oh * ow;
        let mut cols = vec![T::ZERO; c * k * k * row_len];
        for_planes(&mut cols, row_len, |row, out| {
            let (ch, i, j) = (row / (k * k), row / k % k, row % k);
            for b in 0..n {
                let plane = &x[(b * c + ch) * h * w..][..h * w];
                for y in 0..oh {
                    let Some(sy) = self.source(y, i, h) else { continue };
                    let dst = &mut out[(b * oh + y) * ow..][..ow];
                    for (xo, d) in dst.iter_mut().enumerate() {
                        if let Some(sx) = self.source(xo, j, w) {
                            *d = plane[sy * w + sx];
                        }
                    }
                }
            }
        });
        Ok((cols, Shape::from((c * k * k, n, oh, ow))))
    }

    fn backward(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, c, h, w) = arg.dims4()?;
        let grad = grad.reshape((c * self.k * self.k, arg.dim(0)?, self.out[0], self.out[1]))?;
        grad.apply_op1_no_bwd(&Op1(Col2Im { cols: *self, input: [c, h, w] })).map(Some)
    }
}

/// The gradient of [`Im2Col`]: each column entry added back onto the input
/// pixel it was copied from.
struct Col2Im {
    cols: Im2Col,
    input: [usize; 3],
}

impl Kernel1 for Col2Im {
    const NAME: &'static str = "col2im";

    fn run<T: Real>(&self, g: &[T], [_, n, oh, ow]: [usize; 4]) -> Result<(Vec<T>, Shape)> {
        let ([c, h, w], k, p) = (self.input, self.cols.k, &self.cols);
        let row_len = n * oh * ow;
        let mut dx = vec![T::ZERO; n * c * h * w];
        for_planes(&mut dx, h * w, |plane, out| {
            let (b, ch) = (plane / c, plane % c);
            for i in 0..k {
                for j in 0..k {
                    let row = &g[((ch * k + i) * k + j) * row_len..][..row_len];
                    for y in 0..oh {
                        let Some(sy) = p.source(y, i, h) else { continue };
                        let src = &row[(b * oh + y) * ow..][..ow];
                        for (xo, v) in src.iter().enumerate() {
                            if let Some(sx) = p.source(xo, j, w) {
                                out[sy * w + sx] += *v;
                            }
                        }
                    }
                }
            }
        });
        Ok((dx, Shape::from((n, c, h, w))))
    }
}
