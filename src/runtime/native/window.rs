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
//! so that from a zero `dx` they give the NCHW op's gradient exactly. Those
//! that know the windows gather, row by row, instead of scattering; max
//! pooling's backward, which only has the argmax, scatters image by image.

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

/// The argmax of an empty window. Pooling windows are never empty for
/// padding at most half the kernel; this keeps such a window harmless.
const NO_ARGMAX: u32 = u32::MAX;

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

/// `if take { a } else { b }` on bits, which the compiler vectorizes where it
/// would make `y = if take { v } else { y }` a conditional store.
#[inline(always)]
fn select(take: bool, a: u32, b: u32) -> u32 {
    let mask = (take as u32).wrapping_neg();
    (a & mask) | (b & !mask)
}

/// Channels a max-pool window is scanned for at once: one AVX2 register,
/// whose maximum and argmax stay in registers across the window's taps.
const LANES: usize = 8;

/// The maximum (and where it is) of one window over channels `ch..ch + L`
/// of an image: the first tap starts it, as in the NCHW op, so that a window
/// of -inf still points at its first element.
#[inline(always)]
fn window_max<const L: usize>(
    image: &[f32],
    c: usize,
    ch: usize,
    taps: impl Iterator<Item = usize>,
) -> ([f32; L], [u32; L]) {
    let mut taps = taps;
    let first = taps.next().expect("a window has at least one tap");
    let mut best: [f32; L] = image[first * c + ch..][..L].try_into().expect("L channels");
    let mut at = [first as u32; L];
    for i in taps {
        let x: &[f32; L] = image[i * c + ch..][..L].try_into().expect("L channels");
        for l in 0..L {
            let take = wins(x[l], best[l]);
            best[l] = f32::from_bits(select(take, x[l].to_bits(), best[l].to_bits()));
            at[l] = select(take, i as u32, at[l]);
        }
    }
    (best, at)
}

/// Max pooling over one output row of an image, writing values and, when
/// given, argmaxes. Compiled per instruction set and chosen at run time
/// (docs/decisions.md, 22): [`window_max`] keeps eight channels in one
/// register only with AVX2 or better.
#[multiversion(targets = "simd")]
fn max_pool_row(
    image: &[f32],
    w: usize,
    c: usize,
    r: Window,
    cols: &[Window],
    y: &mut [f32],
    mut argmax: Option<&mut [u32]>,
) {
    for (o, col) in cols.iter().enumerate() {
        if r.lo == r.hi || col.lo == col.hi {
            y[o * c..][..c].fill(f32::NEG_INFINITY);
            if let Some(a) = argmax.as_deref_mut() {
                a[o * c..][..c].fill(NO_ARGMAX);
            }
            continue;
        }
        let taps = || (r.lo..r.hi).flat_map(move |ih| (col.lo..col.hi).map(move |iw| ih * w + iw));
        let (y, mut argmax) = (&mut y[o * c..][..c], argmax.as_deref_mut().map(|a| &mut a[o * c..][..c]));
        let mut ch = 0;
        while ch + LANES <= c {
            let (best, at) = window_max::<LANES>(image, c, ch, taps());
            y[ch..ch + LANES].copy_from_slice(&best);
            if let Some(a) = argmax.as_deref_mut() {
                a[ch..ch + LANES].copy_from_slice(&at);
            }
            ch += LANES;
        }
        for ch in ch..c {
            let ([best], [at]) = window_max::<1>(image, c, ch, taps());
            y[ch] = best;
            if let Some(a) = argmax.as_deref_mut() {
                a[ch] = at;
            }
        }
    }
}

/// Max pooling. `y` has shape `ys` (same n and c as `xs`, h/w from
/// [`window_output`](crate::graph::window_output)). `argmax[i]` receives, for
/// each element of y, the spatial index `iy * xs.w + ix` within its input
/// image of the maximum: the first one, or the last NaN, as PyTorch.
pub fn max_pool_forward(x: &[f32], xs: Nhwc, p: PoolWindow, y: &mut [f32], ys: Nhwc, argmax: &mut [u32]) {
    check_pool(x, xs, y, ys);
    debug_assert_eq!(argmax.len(), y.len());
    debug_assert!(xs.h * xs.w < NO_ARGMAX as usize);
    if y.is_empty() {
        return;
    }
    let (rows, cols) = (windows(p, xs.h, ys.h), windows(p, xs.w, ys.w));
    y.par_chunks_mut(ys.row())
        .zip(argmax.par_chunks_mut(ys.row()))
        .enumerate()
        .with_min_len(min_rows(ys.row()))
        .for_each(|(row, (y, argmax))| {
            let (b, r) = (row / ys.h, rows[row % ys.h]);
            let image = &x[b * xs.h * xs.row()..(b + 1) * xs.h * xs.row()];
            max_pool_row(image, xs.w, xs.c, r, &cols, y, Some(argmax));
        });
}

/// Max pooling for inference: [`max_pool_forward`] without the argmax.
pub fn max_pool_infer(x: &[f32], xs: Nhwc, p: PoolWindow, y: &mut [f32], ys: Nhwc) {
    check_pool(x, xs, y, ys);
    if y.is_empty() {
        return;
    }
    let (rows, cols) = (windows(p, xs.h, ys.h), windows(p, xs.w, ys.w));
    y.par_chunks_mut(ys.row()).enumerate().with_min_len(min_rows(ys.row())).for_each(|(row, y)| {
        let (b, r) = (row / ys.h, rows[row % ys.h]);
        let image = &x[b * xs.h * xs.row()..(b + 1) * xs.h * xs.row()];
        max_pool_row(image, xs.w, xs.c, r, &cols, y, None);
    });
}

/// The backward pass of max pooling: the gradient `dy` (shape `ys`) routed
/// to `dx` (shape `xs`) at the `argmax` of [`max_pool_forward`], added to
/// `dx` when `add`, written over it otherwise.
///
/// Without the window, which outputs may route to an input is unknown, so
/// this one scatters, image by image. Each input's gradients are summed in
/// the NCHW op's order: straight into a zeroed `dx` when overwriting, else
/// in a scratch image that is then added to `dx`, which gives the NCHW
/// op's sum bit for bit either way.
pub fn max_pool_backward(dy: &[f32], ys: Nhwc, argmax: &[u32], dx: &mut [f32], xs: Nhwc, add: bool) {
    check_pool(dx, xs, dy, ys);
    debug_assert_eq!(argmax.len(), dy.len());
    if dx.is_empty() {
        return;
    }
    let (image_in, image_out, c) = (xs.h * xs.row(), ys.h * ys.row(), xs.c);
    // A few tasks per thread, each with one scratch image when adding.
    let per_task = xs.n.div_ceil(4 * rayon::current_num_threads()).max(min_rows(image_in));
    dx.par_chunks_mut(per_task * image_in).enumerate().for_each(|(task, dx)| {
        let mut sum = if add { vec![0f32; image_in] } else { Vec::new() };
        for (b, dx) in (task * per_task..).zip(dx.chunks_exact_mut(image_in)) {
            let (dy, argmax) = (&dy[b * image_out..(b + 1) * image_out], &argmax[b * image_out..(b + 1) * image_out]);
            if add {
                scatter_to_argmax(dy, argmax, c, &mut sum);
                for (dx, s) in dx.iter_mut().zip(sum.iter_mut()) {
                    *dx += *s;
                    *s = 0.0;
                }
            } else {
                dx.fill(0.0);
                scatter_to_argmax(dy, argmax, c, dx);
            }
        }
    });
}

/// Adds one image's output gradients `dy` into `image` at their argmaxes.
fn scatter_to_argmax(dy: &[f32], argmax: &[u32], c: usize, image: &mut [f32]) {
    for (dy, argmax) in dy.chunks_exact(c).zip(argmax.chunks_exact(c)) {
        for (ch, (&g, &a)) in dy.iter().zip(argmax).enumerate() {
            // Out of range for an empty window's NO_ARGMAX.
            if let Some(s) = image.get_mut(a as usize * c + ch) {
                *s += g;
            }
        }
    }
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
