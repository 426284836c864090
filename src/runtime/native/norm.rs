//! Batch normalisation on NHWC rows (one row of `c` channels per pixel),
//! optionally fused with the ReLU that follows it: the engine then stores
//! one tensor where PyTorch's in-place ReLU also stores one.
//!
//! With few channels, a loop over one row's channels is too short to
//! vectorise, so the kernels work on "wide rows" of `r` pixels (`r * c`
//! elements, at least [`WIDE`]) against per-channel constants repeated `r`
//! times, and fold the sums back to `c` channels at the end.

use multiversion::multiversion;
use rayon::prelude::*;

use super::par::{for_rows, part_count, split};

/// The least length of a wide row.
const WIDE: usize = 256;

/// Wide rows summed in f32 before they are added to the f64 totals.
const BLOCK: usize = 16;

/// The length of a wide row: whole pixels, at least [`WIDE`] elements.
fn wide(c: usize) -> usize {
    c * WIDE.div_ceil(c)
}

/// `v` (one value per channel) repeated to the length of a wide row.
fn repeat<T: Copy>(v: &[T], width: usize) -> Vec<T> {
    v.iter().copied().cycle().take(width).collect()
}

/// Two per-channel sums over the elements of `len` (a multiple of `c`), in
/// f64, split across threads at wide-row boundaries: `add(range, s, q)`
/// adds the terms of elements `range` (one wide row or less, starting at a
/// pixel) into the f32 block sums `s`, `q`, element `i` of the range at
/// index `i`.
fn channel_sums(
    len: usize,
    c: usize,
    add: impl Fn(std::ops::Range<usize>, &mut [f32], &mut [f32]) + Sync + Send,
) -> (Vec<f64>, Vec<f64>) {
    let width = wide(c);
    let rows = len.div_ceil(width);
    let partial = |range: std::ops::Range<usize>| {
        let (mut s, mut q) = (vec![0f64; width], vec![0f64; width]);
        let (mut bs, mut bq) = (vec![0f32; width], vec![0f32; width]);
        for (i, r) in range.clone().enumerate() {
            add(r * width..((r + 1) * width).min(len), &mut bs, &mut bq);
            if (i + 1) % BLOCK == 0 || r + 1 == range.end {
                for j in 0..width {
                    s[j] += bs[j] as f64;
                    q[j] += bq[j] as f64;
                }
                bs.fill(0.0);
                bq.fill(0.0);
            }
        }
        (s, q)
    };
    let ranges = split(rows, part_count(rows, width));
    let partials: Vec<(Vec<f64>, Vec<f64>)> = ranges.into_par_iter().map(partial).collect();
    let (mut s, mut q) = (vec![0f64; c], vec![0f64; c]);
    for (ps, pq) in partials {
        for j in 0..width {
            s[j % c] += ps[j];
            q[j % c] += pq[j];
        }
    }
    (s, q)
}

/// `y = x * scale + shift` per channel, then ReLU when `relu`.
pub fn scale_shift(x: &[f32], c: usize, scale: &[f32], shift: &[f32], relu: bool, y: &mut [f32]) {
    let width = wide(c);
    let (scale, shift) = (repeat(scale, width), repeat(shift, width));
    for_rows(y, width, |first_row, out| {
        let first = first_row * width;
        for (r, row) in out.chunks_mut(width).enumerate() {
            scale_shift_row(&x[first + r * width..][..row.len()], &scale, &shift, relu, row);
        }
    });
}

// The loops below are compiled once per instruction set (AVX-512, AVX2 +
// FMA, SSE4.2, and the plain target) and chosen at run time: a plain x86-64
// build would otherwise run them in SSE2, up to 8x slower (docs/decisions.md, 22).

#[multiversion(targets = "simd")]
fn scale_shift_row(x: &[f32], scale: &[f32], shift: &[f32], relu: bool, y: &mut [f32]) {
    let terms = y.iter_mut().zip(x).zip(scale).zip(shift);
    if relu {
        terms.for_each(|(((o, v), a), b)| *o = (v * a + b).max(0.0));
    } else {
        terms.for_each(|(((o, v), a), b)| *o = v * a + b);
    }
}

/// Adds `x - x0` and its square to the block sums `s`, `q`.
#[multiversion(targets = "simd")]
fn add_centred_sums(x: &[f32], x0: &[f32], s: &mut [f32], q: &mut [f32]) {
    for (((v, z), s), q) in x.iter().zip(x0).zip(s.iter_mut()).zip(q.iter_mut()) {
        let d = v - z;
        *s += d;
        *q += d * d;
    }
}

/// Adds `g` and `g * (x - mean)` to the block sums `s`, `q`, with `g` the
/// gradient `dy`, masked by the fused ReLU when `relu` holds its (wide)
/// scale and shift.
#[multiversion(targets = "simd")]
fn add_gradient_sums(x: &[f32], dy: &[f32], relu: Option<[&[f32]; 2]>, mean: &[f32], s: &mut [f32], q: &mut [f32]) {
    let terms = s.iter_mut().zip(q.iter_mut()).zip(x).zip(dy).zip(mean);
    match relu {
        Some([scale, shift]) => {
            for (((((s, q), v), g), m), (a, b)) in terms.zip(scale.iter().zip(shift)) {
                let g = if relu_passes(*v, *a, *b) { *g } else { 0.0 };
                *s += g;
                *q += g * (v - m);
            }
        }
        None => {
            for ((((s, q), v), g), m) in terms {
                *s += g;
                *q += g * (v - m);
            }
        }
    }
}

/// Whether the fused ReLU passed `x`'s gradient: its output was positive.
/// The same f32 operations as [`scale_shift_row`], so the same answer as
/// reading the stored output, without reading it.
#[inline(always)]
fn relu_passes(x: f32, scale: f32, shift: f32) -> bool {
    x * scale + shift > 0.0
}

/// One wide row of the input gradient: `a * g + b * (x - mean) + d`, added
/// to `dx` or written over it, with `g` masked as in [`add_gradient_sums`].
#[allow(clippy::too_many_arguments)]
#[multiversion(targets = "simd")]
fn input_gradient_row(
    x: &[f32],
    dy: &[f32],
    relu: Option<[&[f32]; 2]>,
    [mean, a, b, d]: [&[f32]; 4],
    add: bool,
    dx: &mut [f32],
) {
    let terms = dx.iter_mut().zip(x).zip(dy).zip(mean).zip(a).zip(b).zip(d);
    match relu {
        Some([scale, shift]) => {
            for (((((((o, v), g), m), a), b), d), (s, t)) in terms.zip(scale.iter().zip(shift)) {
                let g = if relu_passes(*v, *s, *t) { *g } else { 0.0 };
                *o = if add { *o } else { 0.0 } + a * g + b * (v - m) + d;
            }
        }
        None => {
            for ((((((o, v), g), m), a), b), d) in terms {
                *o = if add { *o } else { 0.0 } + a * g + b * (v - m) + d;
            }
        }
    }
}

/// The batch's per-channel mean and biased variance, in one pass: the
/// sums are of `x - x0` (`x0` the first pixel), which keeps the variance
/// accurate when the mean is large next to the spread.
pub fn batch_stats(x: &[f32], c: usize) -> (Vec<f64>, Vec<f64>) {
    let count = (x.len() / c) as f64;
    let x0 = repeat(&x[..c], wide(c));
    let (s, q) = channel_sums(x.len(), c, |range, s, q| add_centred_sums(&x[range], &x0, s, q));
    let shift: Vec<f64> = s.iter().map(|s| s / count).collect();
    let mean = shift.iter().zip(&x0).map(|(d, v)| d + *v as f64).collect();
    let var = q.iter().zip(&shift).map(|(q, d)| (q / count - d * d).max(0.0)).collect();
    (mean, var)
}

/// The per-channel scale and shift that normalise with `mean` and `var`.
pub fn affine_of(mean: &[f64], var: &[f64], weight: &[f32], bias: &[f32], eps: f64) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f64> = var.iter().zip(weight).map(|(v, w)| *w as f64 / (v + eps).sqrt()).collect();
    let shift = bias.iter().zip(mean).zip(&scale).map(|((b, m), s)| (*b as f64 - m * s) as f32).collect();
    (scale.into_iter().map(|s| s as f32).collect(), shift)
}

/// The backward pass of training-mode batch norm (and the fused ReLU, when
/// `relu` holds the forward pass's per-channel scale and shift): writes the
/// input gradient into `dx` (adds it, when its flag says so) and the weight
/// and bias gradients. The ReLU's mask is recomputed from `x` rather than
/// read from the stored output: one array fewer to stream, twice.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    relu: Option<(&[f32], &[f32])>,
    dy: &[f32],
    c: usize,
    mean: &[f64],
    var: &[f64],
    weight: &[f32],
    eps: f64,
    dx: Option<(&mut [f32], bool)>,
    dweight: &mut [f32],
    dbias: &mut [f32],
) {
    let count = (x.len() / c) as f64;
    let width = wide(c);
    let mean_wide = repeat(&mean.iter().map(|m| *m as f32).collect::<Vec<_>>(), width);
    let relu = relu.map(|(scale, shift)| (repeat(scale, width), repeat(shift, width)));
    // A range of elements starts at a pixel, so the wide constants line up.
    let mask = |len: usize| relu.as_ref().map(|(a, b)| [&a[..len], &b[..len]]);
    // sum(dy) and sum(dy * (x - mean)), the ReLU's mask applied to dy.
    let (sum_dy, sum_dy_xc) = channel_sums(x.len(), c, |range, s, q| {
        add_gradient_sums(&x[range.clone()], &dy[range.clone()], mask(range.len()), &mean_wide, s, q)
    });
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    for ch in 0..c {
        dweight[ch] = (sum_dy_xc[ch] * invstd[ch]) as f32;
        dbias[ch] = sum_dy[ch] as f32;
    }
    let Some((dx, add)) = dx else { return };
    // dx = k * (dy - mean(dy) - xhat * mean(dy * xhat)), k = weight * invstd,
    // folded into dx += a * dy + b * (x - mean) + d per channel.
    let (mut a, mut b, mut d) = (vec![0f32; c], vec![0f32; c], vec![0f32; c]);
    for ch in 0..c {
        let k = weight[ch] as f64 * invstd[ch];
        let m1 = sum_dy[ch] / count;
        let m2 = sum_dy_xc[ch] * invstd[ch] / count;
        a[ch] = k as f32;
        b[ch] = (-k * invstd[ch] * m2) as f32;
        d[ch] = (-k * m1) as f32;
    }
    let (a, b, d) = (repeat(&a, width), repeat(&b, width), repeat(&d, width));
    for_rows(dx, width, |first_row, out| {
        let first = first_row * width;
        for (r, row) in out.chunks_mut(width).enumerate() {
            let range = first + r * width..first + r * width + row.len();
            let (xs, gs) = (&x[range.clone()], &dy[range.clone()]);
            input_gradient_row(xs, gs, mask(range.len()), [&mean_wide, &a, &b, &d], add, row);
        }
    });
}
