//! 2-d convolution on NHWC batches, by one of two algorithms
//! ([`Algorithm`]): im2col plus one matrix product per chunk of output
//! pixels (for 1x1 convolutions the product alone), or Winograd's
//! F(2x2, 3x3) for stride-1 3x3 convolutions ([`super::winograd`]).
//!
//! A convolution's weight is kept in the form its algorithm reads
//! ([`prepare_weights`]). For im2col that is gemm order, `wt[co][(i, j, ci)]`
//! (the IR's `[co][ci][i][j]` with the channel innermost), so that a
//! column of im2col is `k * k` contiguous runs of input channels and every
//! product writes rows of NHWC output directly. Both gradients are matrix
//! products too; the columns are rebuilt in the backward pass rather than
//! kept, so a convolution stores nothing beyond its input.

use std::ops::Range;

use rayon::prelude::*;

use super::linalg::{Strides, matmul};
use super::par::{part_count, split, sum_partials, with_scratch};
use super::pointwise::add_column_sums;
use super::winograd;

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Im2col,
    Winograd,
}

impl Algorithm {
    /// The faster algorithm for `g`: Winograd where it applies and the
    /// channels are many enough that the products, not the transforms,
    /// dominate (see docs/performance.md).
    pub fn choose(g: &ConvGeom) -> Algorithm {
        if winograd::supports(g) && g.cin >= WINOGRAD_MIN_CHANNELS && g.cout >= WINOGRAD_MIN_CHANNELS {
            Algorithm::Winograd
        } else {
            Algorithm::Im2col
        }
    }

    /// Whether this algorithm can compute `g`.
    pub fn supports(self, g: &ConvGeom) -> bool {
        match self {
            Algorithm::Im2col => true,
            Algorithm::Winograd => winograd::supports(g),
        }
    }
}

/// Below this many input or output channels a 3x3 convolution stays with
/// im2col.
const WINOGRAD_MIN_CHANNELS: usize = 16;

/// The weight `w` (IR order) in the form `algorithm` reads, into `wt`.
pub fn prepare_weights(g: &ConvGeom, algorithm: Algorithm, w: &[f32], wt: &mut Vec<f32>) {
    match algorithm {
        Algorithm::Im2col => {
            wt.resize(w.len(), 0.0);
            to_gemm_order(g, w, wt);
        }
        Algorithm::Winograd => {
            wt.resize(16 * g.cin * g.cout, 0.0);
            winograd::transform_weights(g, w, wt);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub oh: usize,
    pub ow: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl ConvGeom {
    fn cin_group(&self) -> usize {
        self.cin / self.groups
    }

    fn cout_group(&self) -> usize {
        self.cout / self.groups
    }

    /// The length of one im2col row (a receptive field of one group).
    pub fn field(&self) -> usize {
        self.k * self.k * self.cin_group()
    }

    /// A 1x1 convolution with stride 1 and no padding: its input rows are
    /// already the columns.
    pub fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.padding == 0
    }

    fn out_pixels(&self) -> usize {
        self.oh * self.ow
    }

    /// Output pixel rows per im2col chunk: about a megabyte of columns.
    fn chunk_rows(&self) -> usize {
        ((1 << 18) / self.field().max(1)).clamp(32, 4096)
    }

    /// The input row and column of output pixel `o`, kernel tap `t`, along
    /// one axis of length `len`, if it falls inside.
    fn source(&self, o: usize, t: usize, len: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation).checked_sub(self.padding).filter(|i| *i < len)
    }

    /// Where output column `ox`'s kernel row starts in the input, when its
    /// taps are one run of the input row: all inside it, one after another
    /// (no dilation), and every channel read (one group).
    fn adjacent_taps(&self, ox: usize) -> Option<usize> {
        let whole = self.dilation == 1 && self.groups == 1;
        let first = self.source(ox, 0, self.w).filter(|_| whole)?;
        self.source(ox, self.k - 1, self.w).map(|_| first)
    }

    /// Work per image, for deciding whether to split across threads.
    fn work_per_image(&self) -> usize {
        self.out_pixels() * self.cout * self.field()
    }
}

/// `wt[co][(i, j, ci)]` from the IR's `w[co][ci][i][j]`.
fn to_gemm_order(g: &ConvGeom, w: &[f32], wt: &mut [f32]) {
    let (k, cig) = (g.k, g.cin_group());
    for co in 0..g.cout {
        for ci in 0..cig {
            for t in 0..k * k {
                wt[(co * k * k + t) * cig + ci] = w[(co * cig + ci) * k * k + t];
            }
        }
    }
}

/// The inverse of [`to_gemm_order`], for gradients.
fn from_gemm_order(g: &ConvGeom, wt: &[f32], w: &mut [f32]) {
    let (k, cig) = (g.k, g.cin_group());
    for co in 0..g.cout {
        for ci in 0..cig {
            for t in 0..k * k {
                w[(co * cig + ci) * k * k + t] = wt[(co * k * k + t) * cig + ci];
            }
        }
    }
}

/// The receptive fields of output pixels `rows` (global row indices of the
/// batch) for channel group `group`, one row of `cols` each.
fn im2col(g: &ConvGeom, x: &[f32], group: usize, rows: Range<usize>, cols: &mut [f32]) {
    let (cig, field) = (g.cin_group(), g.field());
    let first_channel = group * cig;
    for (r, col) in rows.zip(cols.chunks_exact_mut(field)) {
        let (b, oy, ox) = (r / g.out_pixels(), r / g.ow % g.oh, r % g.ow);
        let row_start = g.adjacent_taps(ox);
        for i in 0..g.k {
            let taps = &mut col[i * g.k * cig..][..g.k * cig];
            let Some(iy) = g.source(oy, i, g.h) else {
                taps.fill(0.0);
                continue;
            };
            if let Some(ix) = row_start {
                // With few channels, one copy of the kernel row rather than
                // one per tap: the copies cost more than the products.
                taps.copy_from_slice(&x[((b * g.h + iy) * g.w + ix) * g.cin..][..g.k * cig]);
                continue;
            }
            for (j, tap) in taps.chunks_exact_mut(cig).enumerate() {
                match g.source(ox, j, g.w) {
                    Some(ix) => tap.copy_from_slice(&x[((b * g.h + iy) * g.w + ix) * g.cin + first_channel..][..cig]),
                    None => tap.fill(0.0),
                }
            }
        }
    }
}

/// Adds each column entry back onto the input pixel it came from; `dx`
/// holds the images from `first_image` on.
fn col2im(g: &ConvGeom, cols: &[f32], group: usize, rows: Range<usize>, dx: &mut [f32], first_image: usize) {
    let (cig, field) = (g.cin_group(), g.field());
    let first_channel = group * cig;
    for (r, col) in rows.zip(cols.chunks_exact(field)) {
        let (b, oy, ox) = (r / g.out_pixels() - first_image, r / g.ow % g.oh, r % g.ow);
        let row_start = g.adjacent_taps(ox);
        for i in 0..g.k {
            let Some(iy) = g.source(oy, i, g.h) else { continue };
            let taps = &col[i * g.k * cig..][..g.k * cig];
            if let Some(ix) = row_start {
                let dst = &mut dx[((b * g.h + iy) * g.w + ix) * g.cin..][..g.k * cig];
                dst.iter_mut().zip(taps).for_each(|(d, v)| *d += *v);
                continue;
            }
            for (j, tap) in taps.chunks_exact(cig).enumerate() {
                if let Some(ix) = g.source(ox, j, g.w) {
                    let dst = &mut dx[((b * g.h + iy) * g.w + ix) * g.cin + first_channel..][..cig];
                    for (d, v) in dst.iter_mut().zip(tap) {
                        *d += *v;
                    }
                }
            }
        }
    }
}

/// `y = conv(x, w) + bias` for a batch; `wt` is the weight from
/// [`prepare_weights`] for the same algorithm.
pub fn forward(g: &ConvGeom, algorithm: Algorithm, x: &[f32], wt: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let per_image = g.out_pixels() * g.cout;
    let parts = part_count(g.n, g.work_per_image());
    let images_per_part = g.n.div_ceil(parts).max(1);
    y[..g.n * per_image].par_chunks_mut(images_per_part * per_image).enumerate().for_each(|(p, y)| {
        let first = p * images_per_part;
        match algorithm {
            Algorithm::Im2col => {
                let first_row = first * g.out_pixels();
                forward_rows(g, x, wt, bias, first_row..first_row + y.len() / g.cout, y)
            }
            Algorithm::Winograd => winograd::forward_images(g, x, wt, bias, first..first + y.len() / per_image, y),
        }
    });
}

/// The output rows `rows` of the batch into `y` (exactly those rows).
fn forward_rows(g: &ConvGeom, x: &[f32], wt: &[f32], bias: Option<&[f32]>, rows: Range<usize>, y: &mut [f32]) {
    let (cig, cog, field) = (g.cin_group(), g.cout_group(), g.field());
    if let Some(bias) = bias {
        for row in y.chunks_exact_mut(g.cout) {
            row.copy_from_slice(bias);
        }
    }
    let accumulate = bias.is_some();
    if g.pointwise() {
        let m = rows.len();
        for group in 0..g.groups {
            let a = Strides::rows(rows.start * g.cin + group * cig, g.cin);
            let b = Strides::transposed(group * cog * cig, cig);
            matmul((m, cog, cig), y, Strides::rows(group * cog, g.cout), accumulate, x, a, wt, b);
        }
        return;
    }
    let chunk = g.chunk_rows();
    with_scratch(chunk * field, |cols| {
        for start in rows.clone().step_by(chunk) {
            let end = (start + chunk).min(rows.end);
            let (m, dst) = (end - start, (start - rows.start) * g.cout);
            for group in 0..g.groups {
                im2col(g, x, group, start..end, cols);
                let b = Strides::transposed(group * cog * field, field);
                let c = Strides::rows(dst + group * cog, g.cout);
                matmul((m, cog, field), y, c, accumulate, cols, Strides::rows(0, field), wt, b);
            }
        }
    });
}

/// The gradients of a convolution from the output gradient `dy`: the input
/// gradient is written into `dx` (added, when its flag says so; None when
/// the input needs none), the weight gradient (IR order) written to `dw`,
/// the bias gradient to `dbias`. `partials` holds each thread's share of
/// the last two between calls, so that they are not allocated every step.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &ConvGeom,
    algorithm: Algorithm,
    x: &[f32],
    wt: &[f32],
    dy: &[f32],
    dx: Option<(&mut [f32], bool)>,
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
    partials: &mut Vec<Vec<f32>>,
) {
    let ranges = split(g.n, part_count(g.n, g.work_per_image()));
    let add = dx.as_ref().is_some_and(|d| d.1);
    let weights = wt.len();
    let dx = dx.map(|(dx, _)| &mut dx[..g.n * g.h * g.w * g.cin]);
    let total = sum_partials(ranges, dx, g.h * g.w * g.cin, weights + g.cout, partials, |images, dx, partial| {
        let (dwt, dbias) = partial.split_at_mut(weights);
        let rows = images.start * g.out_pixels()..images.end * g.out_pixels();
        add_column_sums(&dy[rows.start * g.cout..rows.end * g.cout], dbias);
        match algorithm {
            Algorithm::Im2col => backward_images(g, x, wt, dy, images, dx, add, dwt),
            Algorithm::Winograd => winograd::backward_images(g, x, wt, dy, images, dx, add, dwt),
        }
    });
    let (dwt, db) = total.split_at(weights);
    match algorithm {
        Algorithm::Im2col => from_gemm_order(g, dwt, dw),
        Algorithm::Winograd => winograd::weight_gradient(g, dwt, dw),
    }
    if let Some(dbias) = dbias {
        dbias.copy_from_slice(db);
    }
}

/// One thread's share of the backward pass: the images `images`. Adds the
/// partial weight gradient (gemm order) into `dwt`; writes the input
/// gradient into `dx` (those images only).
#[allow(clippy::too_many_arguments)]
fn backward_images(
    g: &ConvGeom,
    x: &[f32],
    wt: &[f32],
    dy: &[f32],
    images: Range<usize>,
    mut dx: Option<&mut [f32]>,
    add: bool,
    dwt: &mut [f32],
) {
    let (cig, cog, field) = (g.cin_group(), g.cout_group(), g.field());
    let rows = images.start * g.out_pixels()..images.end * g.out_pixels();
    if g.pointwise() {
        let m = rows.len();
        for group in 0..g.groups {
            let dy_t = Strides::transposed(rows.start * g.cout + group * cog, g.cout);
            let x_rows = Strides::rows(rows.start * g.cin + group * cig, g.cin);
            matmul((cog, cig, m), dwt, Strides::rows(group * cog * cig, cig), true, dy, dy_t, x, x_rows);
            if let Some(dx) = dx.as_deref_mut() {
                let dy_rows = Strides::rows(rows.start * g.cout + group * cog, g.cout);
                let w = Strides::rows(group * cog * cig, cig);
                matmul((m, cig, cog), dx, Strides::rows(group * cig, g.cin), add, dy, dy_rows, wt, w);
            }
        }
        return;
    }
    if let (Some(dx), false) = (dx.as_deref_mut(), add) {
        // col2im scatters: it adds into zeros.
        dx.fill(0.0);
    }
    let chunk = g.chunk_rows();
    with_scratch(2 * chunk * field, |scratch| {
        let (cols, dcols) = scratch.split_at_mut(chunk * field);
        for start in rows.clone().step_by(chunk) {
            let end = (start + chunk).min(rows.end);
            let m = end - start;
            for group in 0..g.groups {
                im2col(g, x, group, start..end, cols);
                let dy_t = Strides::transposed(start * g.cout + group * cog, g.cout);
                let dw = Strides::rows(group * cog * field, field);
                matmul((cog, field, m), dwt, dw, true, dy, dy_t, cols, Strides::rows(0, field));
                if let Some(dx) = dx.as_deref_mut() {
                    let dy_rows = Strides::rows(start * g.cout + group * cog, g.cout);
                    let w = Strides::rows(group * cog * field, field);
                    matmul((m, field, cog), dcols, Strides::rows(0, field), false, dy, dy_rows, wt, w);
                    col2im(g, dcols, group, start..end, dx, images.start);
                }
            }
        }
    });
}
