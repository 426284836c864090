//! Pooling and resizing on NHWC batches, for the native CPU engine.
//!
//! A batch is a flat f32 slice, element (b, y, x, ch) at
//! `((b * h + y) * w + x) * c + ch`. The semantics are those of the NCHW
//! candle ops in [`crate::runtime::ops`] (PyTorch's), whose index arithmetic
//! these kernels reuse, and so is the order of every sum: the results are
//! bit-identical to theirs.
//!
//! The kernels run over rows of their output (one image row, `w * c`
//! elements), split across rayon's threads, and keep the contiguous channel
//! dimension innermost so that the loops vectorize. The backward passes add
//! into `dx`: each input element first sums the output gradients of the
//! windows that read it, in the NCHW op's order, then adds that sum to `dx`,
//! so that from a zero `dx` they give the NCHW op's gradient exactly. They
//! gather, row by row, instead of scattering.

use std::ops::Range;

use multiversion::multiversion;
use rayon::prelude::*;

use crate::runtime::ops::pool::{Pool, Window};
use crate::runtime::ops::upsample::{Lerp, linear_weights, nearest_indices};

/// The shape of an NHWC batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nhwc {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Nhwc {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Whether the batch has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of elements in one image row, `w * c`.
    fn row(&self) -> usize {
        self.w * self.c
    }
}

/// A square pooling window, as PyTorch's `kernel_size`, `stride`, `padding`
/// (at most half the kernel) and `ceil_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolWindow {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub ceil_mode: bool,
}

/// Below this many elements, a task is not split further across threads.
const MIN_TASK: usize = 1 << 14;

/// The fewest rows of `row_len` elements a task takes.
fn min_rows(row_len: usize) -> usize {
    (MIN_TASK / row_len.max(1)).max(1)
}

/// Where in its window a max-pool output's maximum is: the tap
/// `ty * kernel + tx`, its row and column within the window (padding
/// included). Two bytes per output where an index into the image took four,
/// and the same for every output a tap is read by, so that the kernels
/// handle a tap for a whole row of outputs in one vector loop.
pub type Tap = u16;

/// The tap of an empty window. Pooling windows are never empty for padding
/// at most half the kernel; this keeps such a window harmless: no tap is it.
pub const NO_TAP: Tap = Tap::MAX;

/// The largest max-pool kernel whose taps fit a [`Tap`].
pub const MAX_POOL_KERNEL: usize = 255;

/// The windows along an axis of `size` input elements, `out` of them.
fn windows(p: PoolWindow, size: usize, out: usize) -> Vec<Window> {
    let pool = Pool { kernel: p.kernel, stride: p.stride, padding: p.padding, ceil_mode: p.ceil_mode };
    let windows = pool.windows("native pooling", size).expect("the pooling window fits in the padded input");
    debug_assert_eq!(windows.len(), out, "output size of {p:?} on {size}");
    windows
}

/// For each of `size` input positions, the outputs whose windows cover it:
/// a range, as windows' bounds grow with the output index.
fn covering(windows: &[Window], size: usize) -> Vec<Range<usize>> {
    (0..size)
        .map(|i| {
            let start = windows.partition_point(|w| w.hi <= i);
            start..windows.partition_point(|w| w.lo <= i).max(start)
        })
        .collect()
}

/// Where output `o`'s window starts along an axis (before the input when
/// padded).
fn window_start(p: PoolWindow, o: usize) -> isize {
    (o * p.stride) as isize - p.padding as isize
}

/// The outputs, of `outs` along an axis of `size` inputs, whose windows
/// read an input at their tap `t`: those with `window_start(o) + t` in
/// `0..size`. A range, as the windows move with the output index.
fn reading(p: PoolWindow, t: usize, size: usize, outs: usize) -> Range<usize> {
    let (stride, shift) = (p.stride as isize, t as isize - p.padding as isize);
    let lo = ((-shift).max(0) + stride - 1) / stride;
    let hi = if shift >= size as isize { 0 } else { (size as isize - shift - 1) / stride + 1 };
    let (lo, hi) = (lo as usize, (hi as usize).min(outs));
    lo..hi.max(lo)
}

/// For each tap column `tx` of the window, the outputs along an axis of
/// `size` inputs that read an input there ([`reading`]): the same for every
/// row, so found once per call.
fn reading_per_tap(p: PoolWindow, size: usize, outs: usize) -> Vec<Range<usize>> {
    (0..p.kernel).map(|tx| reading(p, tx, size, outs)).collect()
}

/// The tap at row `ty`, column `tx` of the window.
fn tap_at(p: PoolWindow, ty: usize, tx: usize) -> Tap {
    (ty * p.kernel + tx) as Tap
}

/// The outputs of `outs` (from [`reading`]) in runs that read consecutive
/// inputs at tap `t`, each with its first input: all in one run with
/// stride 1, one by one otherwise.
fn runs(p: PoolWindow, outs: Range<usize>, t: usize) -> impl Iterator<Item = (Range<usize>, usize)> {
    let step = if p.stride == 1 { outs.len().max(1) } else { 1 };
    let end = outs.end;
    outs.step_by(step).map(move |o| (o..(o + step).min(end), (window_start(p, o) + t as isize) as usize))
}

fn check_pool(x: &[f32], xs: Nhwc, y: &[f32], ys: Nhwc) {
    debug_assert_eq!(x.len(), xs.len());
    debug_assert_eq!(y.len(), ys.len());
    debug_assert_eq!((xs.n, xs.c), (ys.n, ys.c));
}

/// Whether `v` replaces `best` as a window's maximum: if greater, or NaN (so
/// that the first maximum, or the last NaN, wins), as the NCHW op.
#[inline(always)]
fn wins(v: f32, best: f32) -> bool {
    (v > best) | v.is_nan()
}

/// One tap of max pooling over a run of outputs: `x` holds the input each
/// output reads at the tap, in the outputs' order. Compiled per instruction
/// set and chosen at run time (docs/decisions.md, 22), as the kernels below.
#[multiversion(targets = "simd")]
fn max_tap(x: &[f32], best: &mut [f32]) {
    for (b, &v) in best.iter_mut().zip(x) {
        *b = if wins(v, *b) { v } else { *b };
    }
}

/// [`max_tap`] that also keeps where each maximum is: `tap` where it wins.
#[multiversion(targets = "simd")]
fn max_tap_where(x: &[f32], best: &mut [f32], taps: &mut [Tap], tap: Tap) {
    for ((b, t), &v) in best.iter_mut().zip(taps.iter_mut()).zip(x) {
        let take = wins(v, *b);
        *b = if take { v } else { *b };
        *t = if take { tap } else { *t };
    }
}

/// Adds to `acc` the gradients `dy` of the outputs whose maximum is at `tap`.
#[multiversion(targets = "simd")]
fn add_at_tap(acc: &mut [f32], dy: &[f32], taps: &[Tap], tap: Tap) {
    for ((a, &g), &t) in acc.iter_mut().zip(dy).zip(taps) {
        // Adding 0.0 leaves a sum that starts at 0.0 bit for bit as it is.
        *a += if t == tap { g } else { 0.0 };
    }
}

/// Max pooling over output row `oh` of an image (`y`, `ow * c` values),
/// writing where each maximum is into `taps` when given.
///
/// The window's taps go in the NCHW op's order, row by row, and each runs
/// over every output that reads an input there at once: with stride 1,
/// those outputs read one run of the input row. Every output starts at -inf
/// on its window's first tap, so that the first maximum, the last NaN, and
/// a window of -inf pointing at its first tap come out as in the NCHW op.
#[allow(clippy::too_many_arguments)]
fn max_pool_row(
    image: &[f32],
    w: usize,
    c: usize,
    p: PoolWindow,
    (oh, r): (usize, Window),
    (cols, col_reads): (&[Window], &[Range<usize>]),
    y: &mut [f32],
    mut taps: Option<&mut [Tap]>,
) {
    y.fill(f32::NEG_INFINITY);
    // Where in the window an input at this row or column is.
    let ty = |ih: usize| (ih as isize - window_start(p, oh)) as usize;
    let tx = |o: usize, iw: usize| (iw as isize - window_start(p, o)) as usize;
    if let Some(taps) = taps.as_deref_mut() {
        for (o, col) in cols.iter().enumerate() {
            let first = if r.lo == r.hi || col.lo == col.hi { NO_TAP } else { tap_at(p, ty(r.lo), tx(o, col.lo)) };
            taps[o * c..][..c].fill(first);
        }
    }
    for ih in r.lo..r.hi {
        let input = &image[ih * w * c..][..w * c];
        for (tx, outs) in col_reads.iter().enumerate() {
            let tap = tap_at(p, ty(ih), tx);
            for (outs, iw) in runs(p, outs.clone(), tx) {
                let (x, span) = (&input[iw * c..][..outs.len() * c], outs.start * c..outs.end * c);
                match taps.as_deref_mut() {
                    Some(taps) => max_tap_where(x, &mut y[span.clone()], &mut taps[span], tap),
                    None => max_tap(x, &mut y[span]),
                }
            }
        }
    }
}

/// Max pooling. `y` has shape `ys` (same n and c as `xs`, h/w from
/// [`window_output`](crate::graph::window_output)). `taps` receives, for
/// each element of y, where in its window the maximum is (see [`Tap`]):
/// the first one, or the last NaN, as PyTorch.
pub fn max_pool_forward(x: &[f32], xs: Nhwc, p: PoolWindow, y: &mut [f32], ys: Nhwc, taps: &mut [Tap]) {
    max_pool(x, xs, p, y, ys, Some(taps));
}

/// Max pooling for inference: [`max_pool_forward`] without the taps.
pub fn max_pool_infer(x: &[f32], xs: Nhwc, p: PoolWindow, y: &mut [f32], ys: Nhwc) {
    max_pool(x, xs, p, y, ys, None);
}

fn max_pool(x: &[f32], xs: Nhwc, p: PoolWindow, y: &mut [f32], ys: Nhwc, taps: Option<&mut [Tap]>) {
    check_pool(x, xs, y, ys);
    assert!(p.kernel <= MAX_POOL_KERNEL, "max pooling kernel {} above {MAX_POOL_KERNEL}", p.kernel);
    if y.is_empty() {
        return;
    }
    let (rows, cols) = (windows(p, xs.h, ys.h), windows(p, xs.w, ys.w));
    let col_reads = reading_per_tap(p, xs.w, ys.w);
    let image_len = xs.h * xs.row();
    let run = |row: usize, y: &mut [f32], taps: Option<&mut [Tap]>| {
        let (b, oh) = (row / ys.h, row % ys.h);
        let image = &x[b * image_len..(b + 1) * image_len];
        max_pool_row(image, xs.w, xs.c, p, (oh, rows[oh]), (&cols, &col_reads), y, taps);
    };
    let min_len = min_rows(ys.row());
    match taps {
        Some(taps) => {
            debug_assert_eq!(taps.len(), y.len());
            y.par_chunks_mut(ys.row())
                .zip(taps.par_chunks_mut(ys.row()))
                .enumerate()
                .with_min_len(min_len)
                .for_each(|(row, (y, taps))| run(row, y, Some(taps)));
        }
        None => y.par_chunks_mut(ys.row()).enumerate().with_min_len(min_len).for_each(|(row, y)| run(row, y, None)),
    }
}

/// The backward pass of max pooling: the gradient `dy` (shape `ys`) routed
/// to `dx` (shape `xs`) at the `taps` of [`max_pool_forward`] with window
/// `p`, added to `dx` when `add`, written over it otherwise.
///
/// It gathers, input row by input row: each input sums the gradients of
/// the outputs whose maximum it is, in the order of the outputs (the NCHW
/// op's scatter order), and then that sum is added to, or written as, its
/// `dx`. So it gives the NCHW op's gradient bit for bit.
pub fn max_pool_backward(dy: &[f32], ys: Nhwc, taps: &[Tap], p: PoolWindow, dx: &mut [f32], xs: Nhwc, add: bool) {
    check_pool(dx, xs, dy, ys);
    debug_assert_eq!(taps.len(), dy.len());
    if dx.is_empty() {
        return;
    }
    let row_cover = covering(&windows(p, xs.h, ys.h), xs.h);
    let col_reads = reading_per_tap(p, xs.w, ys.w);
    let c = xs.c;
    dx.par_chunks_mut(xs.row()).enumerate().with_min_len(min_rows(xs.row())).for_each_init(
        || if add { vec![0f32; xs.row()] } else { Vec::new() },
        |scratch, (row, dx)| {
            let (b, ih) = (row / xs.h, row % xs.h);
            let acc = if add { scratch.as_mut_slice() } else { &mut *dx };
            acc.fill(0.0);
            for oh in row_cover[ih].clone() {
                let ty = (ih as isize - window_start(p, oh)) as usize;
                let out_row = (b * ys.h + oh) * ys.row()..(b * ys.h + oh + 1) * ys.row();
                let (dy, taps) = (&dy[out_row.clone()], &taps[out_row]);
                // Taps from the last to the first: the outputs that reach an
                // input, from the first to the last.
                for (tx, outs) in col_reads.iter().enumerate().rev() {
                    let tap = tap_at(p, ty, tx);
                    for (outs, iw) in runs(p, outs.clone(), tx) {
                        let span = outs.start * c..outs.end * c;
                        add_at_tap(&mut acc[iw * c..][..span.len()], &dy[span.clone()], &taps[span], tap);
                    }
                }
            }
            if add {
                for (dx, s) in dx.iter_mut().zip(scratch.iter()) {
                    *dx += *s;
                }
            }
        },
    );
}

/// Average pooling with `count_include_pad=True`: the divisor is the window
/// clipped to the padded input.
pub fn avg_pool_forward(x: &[f32], xs: Nhwc, p: PoolWindow, y: &mut [f32], ys: Nhwc) {
    check_pool(x, xs, y, ys);
    if y.is_empty() {
        return;
    }
    let (rows, cols) = (windows(p, xs.h, ys.h), windows(p, xs.w, ys.w));
    let (w, c) = (xs.w, xs.c);
    y.par_chunks_mut(ys.row()).enumerate().with_min_len(min_rows(ys.row())).for_each(|(row, y)| {
        let (b, r) = (row / ys.h, rows[row % ys.h]);
        let image = &x[b * xs.h * xs.row()..(b + 1) * xs.h * xs.row()];
        for (y, col) in y.chunks_exact_mut(c).zip(&cols) {
            y.fill(0.0);
            for ih in r.lo..r.hi {
                for iw in col.lo..col.hi {
                    let i = ih * w + iw;
                    for (y, &v) in y.iter_mut().zip(&image[i * c..(i + 1) * c]) {
                        *y += v;
                    }
                }
            }
            let divisor = (r.span * col.span) as f32;
            for y in y.iter_mut() {
                *y /= divisor;
            }
        }
    });
}

/// The backward pass of average pooling: adds the gradient `dy` (shape
/// `ys`) into `dx` (shape `xs`). Accumulates, does not overwrite.
pub fn avg_pool_backward(dy: &[f32], ys: Nhwc, p: PoolWindow, dx: &mut [f32], xs: Nhwc) {
    check_pool(dx, xs, dy, ys);
    if dx.is_empty() || dy.is_empty() {
        return;
    }
    let (rows, cols) = (windows(p, xs.h, ys.h), windows(p, xs.w, ys.w));
    let (row_cover, col_cover) = (covering(&rows, xs.h), covering(&cols, xs.w));
    let c = xs.c;
    gather_backward(dx, xs, |b, ih, iw, acc| {
        for oh in row_cover[ih].clone() {
            for ow in col_cover[iw].clone() {
                let divisor = (rows[oh].span * cols[ow].span) as f32;
                let o = ((b * ys.h + oh) * ys.w + ow) * c;
                for (acc, &g) in acc.iter_mut().zip(&dy[o..o + c]) {
                    *acc += g / divisor;
                }
            }
        }
    });
}

/// The skeleton of a backward pass that gathers rather than scatters: for
/// each input pixel, `gather(image, row, column, acc)` sums the output
/// gradients that reach it into `acc` (zeroed, one value per channel),
/// which is then added to the pixel's `dx`. Input rows are independent,
/// so they are split across threads, and each sum keeps the NCHW op's
/// order.
fn gather_backward(dx: &mut [f32], xs: Nhwc, gather: impl Fn(usize, usize, usize, &mut [f32]) + Sync + Send) {
    dx.par_chunks_mut(xs.row()).enumerate().with_min_len(min_rows(xs.row())).for_each_init(
        || vec![0f32; xs.c],
        |acc, (row, dx)| {
            let (b, ih) = (row / xs.h, row % xs.h);
            for (iw, dx) in dx.chunks_exact_mut(xs.c).enumerate() {
                acc.fill(0.0);
                gather(b, ih, iw, acc);
                for (dx, &acc) in dx.iter_mut().zip(acc.iter()) {
                    *dx += acc;
                }
            }
        },
    );
}

fn check_resize(x: &[f32], xs: Nhwc, y: &[f32], ys: Nhwc) {
    debug_assert_eq!(x.len(), xs.len());
    debug_assert_eq!(y.len(), ys.len());
    debug_assert_eq!((xs.n, xs.c), (ys.n, ys.c));
    debug_assert!(xs.is_empty() || (xs.h > 0 && xs.w > 0 && ys.h > 0 && ys.w > 0));
}

/// For each of `n_in` source positions, the outputs that take it: a range,
/// as the nearest source index grows with the output index.
fn nearest_cover(indices: &[usize], n_in: usize) -> Vec<Range<usize>> {
    (0..n_in).map(|i| indices.partition_point(|&s| s < i)..indices.partition_point(|&s| s <= i)).collect()
}

/// Nearest resizing of `x` (shape `xs`) to `y` (shape `ys`), as PyTorch's
/// `interpolate(mode="nearest")`.
pub fn resize_nearest_forward(x: &[f32], xs: Nhwc, y: &mut [f32], ys: Nhwc) {
    check_resize(x, xs, y, ys);
    if y.is_empty() {
        return;
    }
    let (rows, cols) = (nearest_indices::<f32>(xs.h, ys.h), nearest_indices::<f32>(xs.w, ys.w));
    let c = xs.c;
    y.par_chunks_mut(ys.row()).enumerate().with_min_len(min_rows(ys.row())).for_each(|(row, y)| {
        let (b, ih) = (row / ys.h, rows[row % ys.h]);
        let src = &x[(b * xs.h + ih) * xs.row()..(b * xs.h + ih + 1) * xs.row()];
        for (y, &iw) in y.chunks_exact_mut(c).zip(&cols) {
            y.copy_from_slice(&src[iw * c..(iw + 1) * c]);
        }
    });
}

/// The backward pass of nearest resizing: adds the gradient `dy` (shape
/// `ys`) into `dx` (shape `xs`). Accumulates, does not overwrite.
pub fn resize_nearest_backward(dy: &[f32], ys: Nhwc, dx: &mut [f32], xs: Nhwc) {
    check_resize(dx, xs, dy, ys);
    if dx.is_empty() || dy.is_empty() {
        return;
    }
    let row_cover = nearest_cover(&nearest_indices::<f32>(xs.h, ys.h), xs.h);
    let col_cover = nearest_cover(&nearest_indices::<f32>(xs.w, ys.w), xs.w);
    let c = xs.c;
    gather_backward(dx, xs, |b, ih, iw, acc| {
        for oh in row_cover[ih].clone() {
            let dy_row = &dy[(b * ys.h + oh) * ys.row()..(b * ys.h + oh + 1) * ys.row()];
            for g in dy_row[col_cover[iw].start * c..col_cover[iw].end * c].chunks_exact(c) {
                for (acc, &g) in acc.iter_mut().zip(g) {
                    *acc += g;
                }
            }
        }
    });
}

/// Bilinear resizing of `x` (shape `xs`) to `y` (shape `ys`), as PyTorch's
/// `interpolate(mode="bilinear", align_corners=...)`.
pub fn resize_bilinear_forward(x: &[f32], xs: Nhwc, align_corners: bool, y: &mut [f32], ys: Nhwc) {
    check_resize(x, xs, y, ys);
    if y.is_empty() {
        return;
    }
    let rows = linear_weights::<f32>(xs.h, ys.h, align_corners);
    let cols = linear_weights::<f32>(xs.w, ys.w, align_corners);
    let c = xs.c;
    let src_row = |b: usize, ih: usize| &x[(b * xs.h + ih) * xs.row()..(b * xs.h + ih + 1) * xs.row()];
    y.par_chunks_mut(ys.row()).enumerate().with_min_len(min_rows(ys.row())).for_each(|(row, y)| {
        let (b, r) = (row / ys.h, rows[row % ys.h]);
        let (x0, x1) = (src_row(b, r.i0), src_row(b, r.i1));
        for (y, l) in y.chunks_exact_mut(c).zip(&cols) {
            let (a, bb) = (&x0[l.i0 * c..(l.i0 + 1) * c], &x0[l.i1 * c..(l.i1 + 1) * c]);
            let (cc, d) = (&x1[l.i0 * c..(l.i0 + 1) * c], &x1[l.i1 * c..(l.i1 + 1) * c]);
            for ((((y, &a), &bb), &cc), &d) in y.iter_mut().zip(a).zip(bb).zip(cc).zip(d) {
                *y = r.w0 * (l.w0 * a + l.w1 * bb) + r.w1 * (l.w0 * cc + l.w1 * d);
            }
        }
    });
}

/// One output position's share of a source position along an axis of a
/// bilinear resize: the weights of its taps (one or, at an edge where both
/// taps are the same source, two) that fall on the source.
#[derive(Clone, Copy)]
struct Share {
    out: usize,
    weights: [f32; 2],
    taps: usize,
}

impl Share {
    fn weights(&self) -> &[f32] {
        &self.weights[..self.taps]
    }
}

/// For each of `n_in` source positions, the shares of the outputs that read
/// it, by output index.
fn bilinear_shares(lerps: &[Lerp<f32>], n_in: usize) -> Vec<Vec<Share>> {
    let mut shares = vec![Vec::new(); n_in];
    for (out, l) in lerps.iter().enumerate() {
        if l.i0 == l.i1 {
            shares[l.i0].push(Share { out, weights: [l.w0, l.w1], taps: 2 });
        } else {
            shares[l.i0].push(Share { out, weights: [l.w0, 0.0], taps: 1 });
            shares[l.i1].push(Share { out, weights: [l.w1, 0.0], taps: 1 });
        }
    }
    shares
}

/// The backward pass of bilinear resizing: adds the gradient `dy` (shape
/// `ys`) into `dx` (shape `xs`). Accumulates, does not overwrite.
pub fn resize_bilinear_backward(dy: &[f32], ys: Nhwc, align_corners: bool, dx: &mut [f32], xs: Nhwc) {
    check_resize(dx, xs, dy, ys);
    if dx.is_empty() || dy.is_empty() {
        return;
    }
    let rows = bilinear_shares(&linear_weights::<f32>(xs.h, ys.h, align_corners), xs.h);
    let cols = bilinear_shares(&linear_weights::<f32>(xs.w, ys.w, align_corners), xs.w);
    let c = xs.c;
    gather_backward(dx, xs, |b, ih, iw, acc| {
        // In the order of the NCHW op's scatter: by output, then by row
        // tap, then by column tap.
        for r in &rows[ih] {
            let dy_row = &dy[(b * ys.h + r.out) * ys.row()..(b * ys.h + r.out + 1) * ys.row()];
            for s in &cols[iw] {
                let g = &dy_row[s.out * c..(s.out + 1) * c];
                for &wr in r.weights() {
                    for &wc in s.weights() {
                        for (acc, &g) in acc.iter_mut().zip(g) {
                            *acc += wr * g * wc;
                        }
                    }
                }
            }
        }
    });
}
