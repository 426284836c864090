//! The engine's cheap ops on NHWC rows: layout changes, elementwise maps
//! (activations, dropout's mask), concatenation, broadcasting arithmetic,
//! global pooling.

use multiversion::multiversion;
use rayon::prelude::*;

use super::par::for_rows;

/// A per-example NHWC shape: `h x w` pixels of `c` channels. `[F]` vectors
/// are `1 x 1` pixels of `F` channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hwc {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Hwc {
    pub fn of(shape: &[usize]) -> Hwc {
        match *shape {
            [c, h, w] => Hwc { h, w, c },
            [f] => Hwc { h: 1, w: 1, c: f },
            ref s => panic!("the engine runs [C, H, W] and [F] shapes, not {s:?}"),
        }
    }

    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    pub fn pixels(&self) -> usize {
        self.h * self.w
    }

    /// The first element of pixel `(y, x)`, with size-1 axes broadcast.
    fn offset(&self, y: usize, x: usize) -> usize {
        let (y, x) = (if self.h > 1 { y } else { 0 }, if self.w > 1 { x } else { 0 });
        (y * self.w + x) * self.c
    }
}

/// Copies `n` examples from NCHW to NHWC order.
pub fn nchw_to_nhwc(x: &[f32], s: Hwc, n: usize, y: &mut [f32]) {
    let len = s.len();
    y[..n * len].par_chunks_mut(len.max(1)).enumerate().for_each(|(b, out)| {
        let src = &x[b * len..][..len];
        for (p, row) in out.chunks_exact_mut(s.c).enumerate() {
            for (ch, v) in row.iter_mut().enumerate() {
                *v = src[ch * s.pixels() + p];
            }
        }
    });
}

/// Copies `n` examples from NHWC to NCHW order (PyTorch's flatten order).
pub fn nhwc_to_nchw(x: &[f32], s: Hwc, n: usize, y: &mut [f32]) {
    let len = s.len();
    for b in 0..n {
        let (src, out) = (&x[b * len..][..len], &mut y[b * len..][..len]);
        for (p, row) in src.chunks_exact(s.c).enumerate() {
            for (ch, v) in row.iter().enumerate() {
                out[ch * s.pixels() + p] = *v;
            }
        }
    }
}

/// Writes (or, with `add`, adds) `n` NCHW examples into an NHWC buffer.
pub fn nchw_into_nhwc(x: &[f32], s: Hwc, n: usize, y: &mut [f32], add: bool) {
    let len = s.len();
    for b in 0..n {
        let (src, out) = (&x[b * len..][..len], &mut y[b * len..][..len]);
        for (p, row) in out.chunks_exact_mut(s.c).enumerate() {
            for (ch, v) in row.iter_mut().enumerate() {
                *v = if add { *v } else { 0.0 } + src[ch * s.pixels() + p];
            }
        }
    }
}

/// `y = f(x)` elementwise.
pub fn map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Send) {
    for_rows(y, 1, |first, out| {
        for (o, v) in out.iter_mut().zip(&x[first..]) {
            *o = f(*v);
        }
    });
}

/// `dx = f(y, dy)` (or `dx += f(y, dy)` with `add`) elementwise, for
/// activations whose gradient follows from their output.
pub fn map2_into(y: &[f32], dy: &[f32], dx: &mut [f32], add: bool, f: impl Fn(f32, f32) -> f32 + Sync + Send) {
    for_rows(dx, 1, |first, out| {
        let terms = out.iter_mut().zip(&y[first..]).zip(&dy[first..]);
        if add {
            terms.for_each(|((o, v), g)| *o += f(*v, *g));
        } else {
            terms.for_each(|((o, v), g)| *o = f(*v, *g));
        }
    });
}

/// Concatenates inputs of `parts[i]` channels each along channels.
pub fn concat(inputs: &[&[f32]], parts: &[usize], y: &mut [f32]) {
    let c: usize = parts.iter().sum();
    for_rows(y, c, |first, out| {
        for (r, row) in out.chunks_exact_mut(c).enumerate() {
            let mut at = 0;
            for (x, &pc) in inputs.iter().zip(parts) {
                row[at..at + pc].copy_from_slice(&x[(first + r) * pc..][..pc]);
                at += pc;
            }
        }
    });
}

/// Writes (or, with `add`, adds) the channels `offset..offset + dx_c` of
/// each row of `dy` into `dx`.
pub fn channel_slice_into(dy: &[f32], c: usize, offset: usize, dx: &mut [f32], dx_c: usize, add: bool) {
    for_rows(dx, dx_c, |first, out| {
        for (r, row) in out.chunks_exact_mut(dx_c).enumerate() {
            let src = &dy[(first + r) * c + offset..][..dx_c];
            if add {
                row.iter_mut().zip(src).for_each(|(d, v)| *d += *v);
            } else {
                row.copy_from_slice(src);
            }
        }
    });
}

/// The mean over each example's pixels: `[H, W, C] -> [C]`.
pub fn global_avg_pool(x: &[f32], s: Hwc, n: usize, y: &mut [f32]) {
    let scale = 1.0 / s.pixels() as f32;
    for (b, out) in y[..n * s.c].chunks_exact_mut(s.c).enumerate() {
        out.fill(0.0);
        for row in x[b * s.len()..][..s.len()].chunks_exact(s.c) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += *v;
            }
        }
        for o in out.iter_mut() {
            *o *= scale;
        }
    }
}

/// The gradient of [`global_avg_pool`], written (or, with `add`, added) into `dx`.
pub fn global_avg_pool_backward(dy: &[f32], s: Hwc, n: usize, dx: &mut [f32], add: bool) {
    let scale = 1.0 / s.pixels() as f32;
    dx[..n * s.len()].par_chunks_mut(s.len()).enumerate().for_each(|(b, out)| {
        let g = &dy[b * s.c..][..s.c];
        for row in out.chunks_exact_mut(s.c) {
            for (o, v) in row.iter_mut().zip(g) {
                *o = if add { *o } else { 0.0 } + *v * scale;
            }
        }
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    Add,
    Mul,
}

/// `y = a + b` or `a * b`, broadcasting size-1 axes of `a` and `b` to `sy`.
#[allow(clippy::too_many_arguments)]
pub fn arith(op: Arith, a: &[f32], sa: Hwc, b: &[f32], sb: Hwc, n: usize, y: &mut [f32], sy: Hwc) {
    let f = |u: f32, v: f32| if op == Arith::Add { u + v } else { u * v };
    y[..n * sy.len()].par_chunks_mut(sy.len()).enumerate().for_each(|(i, out)| {
        let (a, b) = (&a[i * sa.len()..][..sa.len()], &b[i * sb.len()..][..sb.len()]);
        for (p, row) in out.chunks_exact_mut(sy.c).enumerate() {
            let (ra, rb) = (&a[sa.offset(p / sy.w, p % sy.w)..], &b[sb.offset(p / sy.w, p % sy.w)..]);
            match (sa.c == sy.c, sb.c == sy.c) {
                (true, true) => row.iter_mut().zip(ra).zip(rb).for_each(|((o, u), v)| *o = f(*u, *v)),
                (true, false) => row.iter_mut().zip(ra).for_each(|(o, u)| *o = f(*u, rb[0])),
                (false, true) => row.iter_mut().zip(rb).for_each(|(o, v)| *o = f(ra[0], *v)),
                (false, false) => row.fill(f(ra[0], rb[0])),
            }
        }
    });
}

/// The gradient of [`arith`] with respect to `a` (of shape `sa`): `dy` for
/// `+`, `dy * b` for `*`, summed over the axes `a` broadcasts along. It is
/// written into `da`, or added with `add` (which a broadcast `a` needs:
/// several outputs add into one of its elements).
#[allow(clippy::too_many_arguments)]
pub fn arith_backward(
    op: Arith,
    dy: &[f32],
    sy: Hwc,
    b: &[f32],
    sb: Hwc,
    n: usize,
    da: &mut [f32],
    sa: Hwc,
    add: bool,
) {
    debug_assert!(add || sa == sy, "a broadcast operand's gradient must be added");
    if sa == sy && sb == sy {
        for_rows(&mut da[..n * sa.len()], 1, |first, out| {
            let terms = out.iter_mut().zip(&dy[first..]);
            match (op, add) {
                (Arith::Add, false) => terms.for_each(|(o, g)| *o = *g),
                (Arith::Add, true) => terms.for_each(|(o, g)| *o += *g),
                (Arith::Mul, false) => terms.zip(&b[first..]).for_each(|((o, g), v)| *o = g * v),
                (Arith::Mul, true) => terms.zip(&b[first..]).for_each(|((o, g), v)| *o += g * v),
            }
        });
        return;
    }
    da[..n * sa.len()].par_chunks_mut(sa.len()).enumerate().for_each(|(i, out)| {
        let (g, b) = (&dy[i * sy.len()..][..sy.len()], &b[i * sb.len()..][..sb.len()]);
        for (p, gy) in g.chunks_exact(sy.c).enumerate() {
            let (y, x) = (p / sy.w, p % sy.w);
            let (ra, rb) = (sa.offset(y, x), &b[sb.offset(y, x)..]);
            let factor = |ch: usize| match op {
                Arith::Add => 1.0,
                Arith::Mul => rb[if sb.c == sy.c { ch } else { 0 }],
            };
            if sa.c == sy.c {
                for (ch, v) in gy.iter().enumerate() {
                    let o = &mut out[ra + ch];
                    *o = if add { *o } else { 0.0 } + v * factor(ch);
                }
            } else {
                out[ra] += gy.iter().enumerate().map(|(ch, v)| v * factor(ch)).sum::<f32>();
            }
        }
    });
}

/// Adds each of `x`'s columns (rows of `sums.len()` values) into `sums`:
/// a bias gradient. Compiled per instruction set (docs/decisions.md, 22).
#[multiversion(targets = "simd")]
pub fn add_column_sums(x: &[f32], sums: &mut [f32]) {
    for row in x.chunks_exact(sums.len()) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += *v;
        }
    }
}
