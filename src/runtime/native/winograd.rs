//! Winograd's F(2x2, 3x3) (Lavin and Gray, 2016) for stride-1 3x3
//! convolutions, dilated ones included: 16 multiplications per 2x2 output
//! tile and channel pair where the direct product needs 36, 2.25x fewer.
//!
//! With the transforms `B`, `G`, `A` below, a 2x2 output tile is
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for a 3x3 kernel `g` and the 4x4 input
//! patch `d` it reads. Summed over input channels, each of the 16 positions
//! `e` of the transformed tile is a matrix product over channels,
//! `M_e = V_e · U_e` (tiles x in, in x out), which `gemm` runs; only the
//! transforms are this module's own loops, vectorised over channels, which
//! NHWC keeps contiguous.
//!
//! The backward pass is that computation differentiated: the output
//! gradient goes through `A`'s adjoint into `dM`, then `dU_e = V_eᵀ · dM_e`
//! gives the weight gradient (through `G`'s adjoint) and
//! `dV_e = dM_e · U_eᵀ` the input gradient (through `B`'s, added over the
//! overlapping patches). The transformed inputs `V` are rebuilt in the
//! backward pass rather than kept, as im2col's columns are.
//!
//! With dilation `r` a tile's two outputs are `r` apart and its four input
//! rows and columns too: output rows pair up as `(y, y + r)` for the `y`
//! with `(y / r)` even.

use std::ops::Range;

use multiversion::multiversion;

use super::conv::ConvGeom;
use super::linalg::{Strides, matmul};
use super::par::with_scratch;

/// Positions of a transformed tile.
const E: usize = 16;

/// Whether F(2x2, 3x3) can run `g` at all (the caller decides whether it
/// pays: see `conv::Algorithm::choose`).
pub fn supports(g: &ConvGeom) -> bool {
    g.k == 3 && g.stride == 1 && g.groups == 1
}

/// The weights as the products read them: `u[e][ci][co]`, from the IR's
/// `w[co][ci][i][j]`.
pub fn transform_weights(g: &ConvGeom, w: &[f32], u: &mut [f32]) {
    let (cin, cout) = (g.cin, g.cout);
    for co in 0..cout {
        for ci in 0..cin {
            let k = &w[(co * cin + ci) * 9..][..9];
            // Each kernel row through G (giving columns b), then each
            // column through G (giving rows a).
            let rows: [[f32; 4]; 3] = std::array::from_fn(|i| g4([k[3 * i], k[3 * i + 1], k[3 * i + 2]]));
            for b in 0..4 {
                let col = g4([rows[0][b], rows[1][b], rows[2][b]]);
                for (a, v) in col.into_iter().enumerate() {
                    u[((a * 4 + b) * cin + ci) * cout + co] = v;
                }
            }
        }
    }
}

/// The IR-order weight gradient `dw[co][ci][i][j]` from the transformed
/// one `du[e][ci][co]`.
pub fn weight_gradient(g: &ConvGeom, du: &[f32], dw: &mut [f32]) {
    let (cin, cout) = (g.cin, g.cout);
    for co in 0..cout {
        for ci in 0..cin {
            let d = |a: usize, b: usize| du[((a * 4 + b) * cin + ci) * cout + co];
            let rows: [[f32; 3]; 4] = std::array::from_fn(|a| g_adjoint([d(a, 0), d(a, 1), d(a, 2), d(a, 3)]));
            let k = &mut dw[(co * cin + ci) * 9..][..9];
            for j in 0..3 {
                let col = g_adjoint([rows[0][j], rows[1][j], rows[2][j], rows[3][j]]);
                for i in 0..3 {
                    k[3 * i + j] = col[i];
                }
            }
        }
    }
}

/// `G g` for one column of a kernel.
fn g4([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
    [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]
}

/// `Gᵀ d`, the adjoint of [`g4`].
fn g_adjoint([d0, d1, d2, d3]: [f32; 4]) -> [f32; 3] {
    [d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3]
}

/// The output tiles of one image: the first row and column of each.
/// Looked up rather than computed: the arithmetic (a division by the
/// dilation per axis and tile) measured 2-3% slower on the whole step.
struct Tiles {
    rows: Vec<usize>,
    cols: Vec<usize>,
}

impl Tiles {
    fn of(g: &ConvGeom) -> Tiles {
        let starts = |len: usize| (0..len).filter(|i| (i / g.dilation).is_multiple_of(2)).collect();
        Tiles { rows: starts(g.oh), cols: starts(g.ow) }
    }

    fn per_image(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// Tile `t` of a run of images: (image, first output row, first column).
    fn at(&self, t: usize) -> (usize, usize, usize) {
        let (b, r) = (t / self.per_image(), t % self.per_image());
        (b, self.rows[r / self.cols.len()], self.cols[r % self.cols.len()])
    }
}

/// Tiles per batch of products: the transformed inputs and outputs of a
/// chunk stay within a few hundred kilobytes, and each product has enough
/// rows that packing its right factor is amortised.
fn chunk_tiles(g: &ConvGeom) -> usize {
    (16384 / (g.cin + g.cout)).clamp(64, 256)
}

/// The input pixels (`iy * w + ix` within an image) of the 4x4 patch that
/// the tile with first output `(oy, ox)` reads, row-major; `None` where it
/// reads padding. The patch starts at the tile's first output, less the
/// padding, and its rows and columns are `dilation` apart.
fn patch_pixels(g: &ConvGeom, oy: usize, ox: usize) -> [Option<usize>; E] {
    let at = |first: usize, u: usize, len: usize| (first + u * g.dilation).checked_sub(g.padding).filter(|i| *i < len);
    std::array::from_fn(|i| Some(at(oy, i / 4, g.h)? * g.w + at(ox, i % 4, g.w)?))
}

/// The tile's (up to) four output pixels (`py * ow + px`), row-major;
/// `None` past the edge.
fn output_pixels(g: &ConvGeom, oy: usize, ox: usize) -> [Option<usize>; 4] {
    let at = |first: usize, r: usize, len: usize| Some(first + r * g.dilation).filter(|o| *o < len);
    std::array::from_fn(|i| Some(at(oy, i / 2, g.oh)? * g.ow + at(ox, i % 2, g.ow)?))
}

/// The rows of `width` values of `buf` that start at `offsets` (ascending
/// where present), mutably at once.
fn rows_at<const K: usize>(buf: &mut [f32], offsets: [Option<usize>; K], width: usize) -> [Option<&mut [f32]>; K] {
    let (mut rest, mut taken) = (buf, 0);
    offsets.map(|at| {
        let at = at?;
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(at - taken);
        let (row, tail) = tail.split_at_mut(width);
        (rest, taken) = (tail, at + width);
        Some(row)
    })
}

/// `y` for the images `images` (and only those: `y` starts at the first),
/// with `u` from [`transform_weights`]. Overwrites `y`.
pub fn forward_images(g: &ConvGeom, x: &[f32], u: &[f32], bias: Option<&[f32]>, images: Range<usize>, y: &mut [f32]) {
    let tiles = Tiles::of(g);
    let (cin, cout, chunk) = (g.cin, g.cout, chunk_tiles(g));
    let total = images.len() * tiles.per_image();
    let zeros = vec![0.0; cin.max(cout)];
    with_scratch(E * chunk * (cin + cout) + E * cin.max(cout), |scratch| {
        let (v, rest) = scratch.split_at_mut(E * chunk * cin);
        let (m, tmp) = rest.split_at_mut(E * chunk * cout);
        for start in (0..total).step_by(chunk) {
            let count = chunk.min(total - start);
            let first = images.start * tiles.per_image() + start;
            transform_inputs(g, &tiles, x, first..first + count, &zeros, tmp, v);
            for e in 0..E {
                let (vs, ms) = (Strides::rows(e * count * cin, cin), Strides::rows(e * count * cout, cout));
                matmul((count, cout, cin), m, ms, false, v, vs, u, Strides::rows(e * cin * cout, cout));
            }
            for p in 0..count {
                let (b, oy, ox) = tiles.at(first + p);
                let tile: [&[f32]; E] = std::array::from_fn(|e| &m[(e * count + p) * cout..][..cout]);
                let image = (b - images.start) * g.oh * g.ow;
                let outs = rows_at(y, output_pixels(g, oy, ox).map(|o| Some((image + o?) * cout)), cout);
                output_tile(&tile, bias.unwrap_or(&zeros[..cout]), tmp, outs);
            }
        }
    });
}

/// The gradients of the images `images`: the transformed weight gradient
/// is added into `du` (`u`'s layout), and the input gradient written into
/// `dx` (those images only), or added when `add`.
#[allow(clippy::too_many_arguments)]
pub fn backward_images(
    g: &ConvGeom,
    x: &[f32],
    u: &[f32],
    dy: &[f32],
    images: Range<usize>,
    mut dx: Option<&mut [f32]>,
    add: bool,
    du: &mut [f32],
) {
    let tiles = Tiles::of(g);
    let (cin, cout, chunk) = (g.cin, g.cout, chunk_tiles(g));
    let total = images.len() * tiles.per_image();
    let zeros = vec![0.0; cin.max(cout)];
    if let (Some(dx), false) = (dx.as_deref_mut(), add) {
        // Patches overlap, so their gradients are added.
        dx.fill(0.0);
    }
    with_scratch(E * chunk * (2 * cin + cout) + E * cin.max(cout), |scratch| {
        let (v, rest) = scratch.split_at_mut(E * chunk * cin);
        let (dm, rest) = rest.split_at_mut(E * chunk * cout);
        let (dv, tmp) = rest.split_at_mut(E * chunk * cin);
        for start in (0..total).step_by(chunk) {
            let count = chunk.min(total - start);
            let first = images.start * tiles.per_image() + start;
            transform_inputs(g, &tiles, x, first..first + count, &zeros, tmp, v);
            for p in 0..count {
                let (b, oy, ox) = tiles.at(first + p);
                let image = b * g.oh * g.ow;
                let grads =
                    output_pixels(g, oy, ox).map(|o| o.map_or(&zeros[..cout], |o| &dy[(image + o) * cout..][..cout]));
                let mut outs = tile_rows(dm, count, p, cout);
                output_adjoint(&grads, tmp, &mut outs);
            }
            for e in 0..E {
                let (vs, ms) = (Strides::transposed(e * count * cin, cin), Strides::rows(e * count * cout, cout));
                matmul((cin, cout, count), du, Strides::rows(e * cin * cout, cout), true, v, vs, dm, ms);
            }
            let Some(dx) = dx.as_deref_mut() else { continue };
            for e in 0..E {
                let (ms, us) = (Strides::rows(e * count * cout, cout), Strides::transposed(e * cin * cout, cout));
                matmul((count, cin, cout), dv, Strides::rows(e * count * cin, cin), false, dm, ms, u, us);
            }
            for p in 0..count {
                let (b, oy, ox) = tiles.at(first + p);
                let tile: [&[f32]; E] = std::array::from_fn(|e| &dv[(e * count + p) * cin..][..cin]);
                let image = (b - images.start) * g.h * g.w;
                let patch = rows_at(dx, patch_pixels(g, oy, ox).map(|i| Some((image + i?) * cin)), cin);
                input_adjoint_add(&tile, tmp, patch);
            }
        }
    });
}

/// The 16 rows of tile `p` in a chunk laid out `[e][tile][width]`.
fn tile_rows(buf: &mut [f32], count: usize, p: usize, width: usize) -> [&mut [f32]; E] {
    let mut planes = buf[..E * count * width].chunks_exact_mut(count * width);
    std::array::from_fn(|_| &mut planes.next().expect("16 planes")[p * width..][..width])
}

/// `V = Bᵀ d B` for the tiles `tiles` (indices into the run of images
/// from image 0 of `x`) into `v[e][tile][ci]`.
#[allow(clippy::too_many_arguments)]
fn transform_inputs(
    g: &ConvGeom,
    tiles: &Tiles,
    x: &[f32],
    range: Range<usize>,
    zeros: &[f32],
    tmp: &mut [f32],
    v: &mut [f32],
) {
    let (cin, count) = (g.cin, range.len());
    for (p, t) in range.enumerate() {
        let (b, oy, ox) = tiles.at(t);
        let image = b * g.h * g.w;
        let patch = patch_pixels(g, oy, ox).map(|i| i.map_or(&zeros[..cin], |i| &x[(image + i) * cin..][..cin]));
        let mut outs = tile_rows(v, count, p, cin);
        input_tile(&patch, tmp, &mut outs);
    }
}

// The per-tile transforms below run over a tile's channels, which NHWC
// keeps contiguous. Each is two passes of small vector loops, one per axis,
// through a 16-row scratch `tmp` that stays in L1: a single fused loop
// would keep some 32 rows' pointers live, more than there are registers,
// and measured slower. Each is compiled once per instruction set and chosen
// at run time, like the engine's other loops (docs/decisions.md, 22).

/// `V = Bᵀ d B` of one tile: `patch` the 16 input pixels (row-major), `out`
/// the 16 transformed rows.
#[multiversion(targets = "simd")]
fn input_tile(patch: &[&[f32]; E], tmp: &mut [f32], out: &mut [&mut [f32]; E]) {
    let mut t = rows_of(tmp, out[0].len());
    for v in 0..4 {
        let [t0, t1, t2, t3] = pick_mut(&mut t, [v, 4 + v, 8 + v, 12 + v]);
        bt_pass([patch[v], patch[4 + v], patch[8 + v], patch[12 + v]], [t0, t1, t2, t3]);
    }
    for (r, o) in t.chunks_exact(4).zip(out.chunks_exact_mut(4)) {
        let [o0, o1, o2, o3] = o else { unreachable!() };
        bt_pass([&*r[0], &*r[1], &*r[2], &*r[3]], [&mut **o0, &mut **o1, &mut **o2, &mut **o3]);
    }
}

/// `Aᵀ M A + bias` of one tile into its (up to) four output pixels,
/// row-major; `None` for pixels outside the output.
#[multiversion(targets = "simd")]
fn output_tile(m: &[&[f32]; E], bias: &[f32], tmp: &mut [f32], outs: [Option<&mut [f32]>; 4]) {
    let mut t = rows_of(tmp, bias.len());
    for a in 0..4 {
        let [r0, r1] = pick_mut(&mut t, [a, 4 + a]);
        at_pass([m[4 * a], m[4 * a + 1], m[4 * a + 2], m[4 * a + 3]], [r0, r1], None);
    }
    let [y00, y01, y10, y11] = outs;
    for (s, [top, bottom]) in [[y00, y10], [y01, y11]].into_iter().enumerate() {
        let rows = [&*t[4 * s], &*t[4 * s + 1], &*t[4 * s + 2], &*t[4 * s + 3]];
        at_pass(rows, [top, bottom].map(|o| o.unwrap_or_default()), Some(bias));
    }
}

/// `dM = A dY Aᵀ` of one tile from its four output gradients (row-major;
/// zeros for pixels outside).
#[multiversion(targets = "simd")]
fn output_adjoint(dy: &[&[f32]; 4], tmp: &mut [f32], out: &mut [&mut [f32]; E]) {
    let mut t = rows_of(tmp, dy[0].len());
    for s in 0..2 {
        let [t0, t1, t2, t3] = pick_mut(&mut t, [s, 2 + s, 4 + s, 6 + s]);
        a_pass([dy[s], dy[2 + s]], [t0, t1, t2, t3]);
    }
    for (i, o) in out.chunks_exact_mut(4).enumerate() {
        let [o0, o1, o2, o3] = o else { unreachable!() };
        a_pass([&*t[2 * i], &*t[2 * i + 1]], [&mut **o0, &mut **o1, &mut **o2, &mut **o3]);
    }
}

/// Adds `B dV Bᵀ` of one tile onto the input pixels its patch read
/// (row-major; `None` for padding).
#[multiversion(targets = "simd")]
fn input_adjoint_add(tile: &[&[f32]; E], tmp: &mut [f32], patch: [Option<&mut [f32]>; E]) {
    let mut t = rows_of(tmp, tile[0].len());
    for v in 0..4 {
        let [t0, t1, t2, t3] = pick_mut(&mut t, [v, 4 + v, 8 + v, 12 + v]);
        b_pass([tile[v], tile[4 + v], tile[8 + v], tile[12 + v]], [t0, t1, t2, t3]);
    }
    let mut pixels = patch.into_iter();
    for u in 0..4 {
        let row: [Option<&mut [f32]>; 4] = std::array::from_fn(|_| pixels.next().expect("16 pixels"));
        b_add_pass([&*t[4 * u], &*t[4 * u + 1], &*t[4 * u + 2], &*t[4 * u + 3]], row);
    }
}

/// 16 rows of `n` values at the start of `tmp`.
#[inline(always)]
fn rows_of(tmp: &mut [f32], n: usize) -> [&mut [f32]; E] {
    let mut rows = tmp[..E * n].chunks_exact_mut(n);
    std::array::from_fn(|_| rows.next().expect("16 rows"))
}

/// Rows `which` (distinct) of `rows`, mutably.
#[inline(always)]
fn pick_mut<'a, const K: usize>(rows: &'a mut [&mut [f32]; E], which: [usize; K]) -> [&'a mut [f32]; K] {
    rows.get_disjoint_mut(which).expect("distinct rows").map(|r| &mut **r)
}

/// `out[c] = f(ins[0][c], ...)` (or `+=`) over a row of channels.
#[inline(always)]
fn lanewise<const K: usize>(out: &mut [f32], ins: [&[f32]; K], add: bool, f: impl Fn([f32; K]) -> f32) {
    let n = out.len();
    let ins = ins.map(|s| &s[..n]);
    if add {
        for c in 0..n {
            out[c] += f(std::array::from_fn(|k| ins[k][c]));
        }
    } else {
        for c in 0..n {
            out[c] = f(std::array::from_fn(|k| ins[k][c]));
        }
    }
}

/// `Bᵀ d` along one axis.
#[inline(always)]
fn bt_pass([d0, d1, d2, d3]: [&[f32]; 4], [o0, o1, o2, o3]: [&mut [f32]; 4]) {
    lanewise(o0, [d0, d2], false, |[x, y]| x - y);
    lanewise(o1, [d1, d2], false, |[x, y]| x + y);
    lanewise(o2, [d2, d1], false, |[x, y]| x - y);
    lanewise(o3, [d1, d3], false, |[x, y]| x - y);
}

/// `B v`, the adjoint of [`bt_pass`].
#[inline(always)]
fn b_pass([v0, v1, v2, v3]: [&[f32]; 4], [o0, o1, o2, o3]: [&mut [f32]; 4]) {
    lanewise(o0, [v0], false, |[x]| x);
    lanewise(o1, [v1, v2, v3], false, |[x, y, z]| x - y + z);
    lanewise(o2, [v1, v2, v0], false, |[x, y, z]| x + y - z);
    lanewise(o3, [v3], false, |[x]| -x);
}

/// [`b_pass`] added onto the outputs that are there.
#[inline(always)]
fn b_add_pass([v0, v1, v2, v3]: [&[f32]; 4], [o0, o1, o2, o3]: [Option<&mut [f32]>; 4]) {
    if let Some(o) = o0 {
        lanewise(o, [v0], true, |[x]| x);
    }
    if let Some(o) = o1 {
        lanewise(o, [v1, v2, v3], true, |[x, y, z]| x - y + z);
    }
    if let Some(o) = o2 {
        lanewise(o, [v1, v2, v0], true, |[x, y, z]| x + y - z);
    }
    if let Some(o) = o3 {
        lanewise(o, [v3], true, |[x]| -x);
    }
}

/// `Aᵀ m` along one axis, plus `bias` when given.
#[inline(always)]
fn at_pass([m0, m1, m2, m3]: [&[f32]; 4], [o0, o1]: [&mut [f32]; 2], bias: Option<&[f32]>) {
    match bias {
        Some(b) => {
            lanewise(o0, [m0, m1, m2, b], false, |[w, x, y, z]| w + x + y + z);
            lanewise(o1, [m1, m2, m3, b], false, |[w, x, y, z]| w - x - y + z);
        }
        None => {
            lanewise(o0, [m0, m1, m2], false, |[x, y, z]| x + y + z);
            lanewise(o1, [m1, m2, m3], false, |[x, y, z]| x - y - z);
        }
    }
}

/// `A y`, the adjoint of [`at_pass`].
#[inline(always)]
fn a_pass([y0, y1]: [&[f32]; 2], [o0, o1, o2, o3]: [&mut [f32]; 4]) {
    lanewise(o0, [y0], false, |[x]| x);
    lanewise(o1, [y0, y1], false, |[x, y]| x + y);
    lanewise(o2, [y0, y1], false, |[x, y]| x - y);
    lanewise(o3, [y1], false, |[x]| -x);
}
