//! Sibling 1x1 convolutions, those that read the same input (as an
//! inception block's first branch and the reductions before its 3x3s do),
//! run as one product, forward and backward.
//!
//! Run one by one, each adds its input gradient `dy_i · W_i` into the
//! shared input's gradient: a pass over that (wide) gradient per sibling,
//! each a product with only `cout_i` terms (4 at width 0.25), which `gemm`
//! runs far below its speed. With the siblings' output gradients side by
//! side, `[dy_1 | dy_2 | ...]`, and their weights stacked, the input
//! gradient is one product with all their channels as terms and one pass
//! over it, and the weight gradients one product too (`cargo bench --bench
//! conv` measures both forms). The forward pass is one product too, over
//! all the siblings' output channels, whose columns are then copied out to
//! each sibling's buffer: one pass over the shared input, and products
//! with more than the 4-16 columns a thin sibling has.
//!
//! Both passes work a chunk of pixel rows at a time, so the side-by-side
//! copy stays in cache.

use std::ops::Range;

use rayon::prelude::*;

use super::linalg::{Strides, matmul};
use super::par::{part_count, split, sum_partials, with_scratch};
use super::pointwise::add_column_sums;
use crate::graph::NodeId;

/// Pixel rows per chunk of gathered gradients.
const CHUNK_ROWS: usize = 256;

/// A group of sibling 1x1 convolutions (stride 1, no padding, one group).
pub struct Siblings {
    /// The convolutions' nodes, ascending: both passes run at the first
    /// one's turn, when the input (forward) and every sibling's output
    /// gradient (backward, which runs in reverse) are complete.
    pub members: Vec<NodeId>,
    cin: usize,
    couts: Vec<usize>,
    /// The members' weights stacked, `[Σ cout][cin]`: each IR weight
    /// (`[cout][cin]` for a 1x1 convolution) in turn; and their biases
    /// (zeros for a member without).
    weights: Vec<f32>,
    biases: Vec<f32>,
}

impl Siblings {
    pub fn new(members: Vec<NodeId>, cin: usize, couts: Vec<usize>) -> Siblings {
        Siblings { members, cin, couts, weights: Vec::new(), biases: Vec::new() }
    }

    fn total(&self) -> usize {
        self.couts.iter().sum()
    }

    /// Where member `i`'s output channels start among all of them.
    fn offset(&self, i: usize) -> usize {
        self.couts[..i].iter().sum()
    }

    /// Stacks the members' current weights (IR order) and biases, one per
    /// member.
    pub fn load_weights<'a>(&mut self, params: impl Iterator<Item = (&'a [f32], Option<&'a [f32]>)>) {
        self.weights.clear();
        self.biases.clear();
        for (i, (w, b)) in params.enumerate() {
            self.weights.extend_from_slice(w);
            match b {
                Some(b) => self.biases.extend_from_slice(b),
                None => self.biases.resize(self.biases.len() + self.couts[i], 0.0),
            }
        }
        debug_assert_eq!(self.weights.len(), self.total() * self.cin);
    }

    /// Every member's output for `rows` pixel rows of input `x`, into `ys`
    /// (one per member, in order): one product over all their channels a
    /// chunk of rows at a time, then each member's columns copied out.
    pub fn forward(&self, x: &[f32], rows: usize, ys: &mut [&mut [f32]]) {
        let (cin, total) = (self.cin, self.total());
        let ranges = split(rows, part_count(rows, cin * total));
        let mut parts: Vec<(Range<usize>, Vec<&mut [f32]>)> = ranges.iter().map(|r| (r.clone(), Vec::new())).collect();
        for (y, &cout) in ys.iter_mut().zip(&self.couts) {
            let mut rest = &mut y[..rows * cout];
            for (r, outs) in parts.iter_mut() {
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * cout);
                outs.push(head);
                rest = tail;
            }
        }
        parts.into_par_iter().for_each(|(r, mut outs)| self.forward_rows(x, r, &mut outs));
    }

    /// One thread's rows; `ys` holds exactly these rows of each member.
    fn forward_rows(&self, x: &[f32], rows: Range<usize>, ys: &mut [&mut [f32]]) {
        let (cin, total) = (self.cin, self.total());
        with_scratch(CHUNK_ROWS * total, |stacked| {
            for start in rows.clone().step_by(CHUNK_ROWS) {
                let m = CHUNK_ROWS.min(rows.end - start);
                let out = &mut stacked[..m * total];
                for row in out.chunks_exact_mut(total) {
                    row.copy_from_slice(&self.biases);
                }
                let (xs, w) = (Strides::rows(start * cin, cin), Strides::transposed(0, cin));
                matmul((m, total, cin), out, Strides::rows(0, total), true, x, xs, &self.weights, w);
                for (i, y) in ys.iter_mut().enumerate() {
                    let (offset, cout) = (self.offset(i), self.couts[i]);
                    let dst = &mut y[(start - rows.start) * cout..][..m * cout];
                    for (d, row) in dst.chunks_exact_mut(cout).zip(out.chunks_exact(total)) {
                        d.copy_from_slice(&row[offset..offset + cout]);
                    }
                }
            }
        });
    }

    /// The gradients for the output gradients `dys` (one per member, `None`
    /// where none flows, read as zeros) over `rows` pixel rows of input `x`:
    /// the input gradient into `dx` (added when its flag says so), and the
    /// stacked weight and bias gradients returned, from which
    /// [`Siblings::weight_grad`] and [`Siblings::bias_grad`] take member
    /// `i`'s. `partials` are the per-thread sums, as for a convolution.
    pub fn backward<'a>(
        &self,
        x: &[f32],
        rows: usize,
        dys: &[Option<&[f32]>],
        dx: Option<(&mut [f32], bool)>,
        partials: &'a mut Vec<Vec<f32>>,
    ) -> &'a [f32] {
        let (cin, total) = (self.cin, self.total());
        let ranges = split(rows, part_count(rows, cin * total));
        let add = dx.as_ref().is_some_and(|d| d.1);
        let dx = dx.map(|(dx, _)| &mut dx[..rows * cin]);
        sum_partials(ranges, dx, cin, total * cin + total, partials, |r, dx, p| {
            self.backward_rows(x, dys, r, dx.map(|dx| (dx, add)), p)
        })
    }

    /// Member `i`'s weight gradient (IR order) in `grads` from
    /// [`Siblings::backward`].
    pub fn weight_grad<'a>(&self, grads: &'a [f32], i: usize) -> &'a [f32] {
        &grads[self.offset(i) * self.cin..][..self.couts[i] * self.cin]
    }

    /// Member `i`'s bias gradient in `grads` from [`Siblings::backward`].
    pub fn bias_grad<'a>(&self, grads: &'a [f32], i: usize) -> &'a [f32] {
        &grads[self.total() * self.cin + self.offset(i)..][..self.couts[i]]
    }

    /// One thread's rows: adds into `partial`, writes (or adds) `dx`, which
    /// holds exactly these rows.
    fn backward_rows(
        &self,
        x: &[f32],
        dys: &[Option<&[f32]>],
        rows: Range<usize>,
        mut dx: Option<(&mut [f32], bool)>,
        partial: &mut [f32],
    ) {
        let (cin, total) = (self.cin, self.total());
        let (dw, db) = partial.split_at_mut(total * cin);
        with_scratch(CHUNK_ROWS * total, |gathered| {
            for start in rows.clone().step_by(CHUNK_ROWS) {
                let m = CHUNK_ROWS.min(rows.end - start);
                let dy = &mut gathered[..m * total];
                for (i, d) in dys.iter().enumerate() {
                    let (offset, cout) = (self.offset(i), self.couts[i]);
                    for (r, row) in dy.chunks_exact_mut(total).enumerate() {
                        let dst = &mut row[offset..offset + cout];
                        match d {
                            Some(d) => dst.copy_from_slice(&d[(start + r) * cout..][..cout]),
                            None => dst.fill(0.0),
                        }
                    }
                }
                add_column_sums(dy, db);
                // dW[j][ci] += Σ_r dy[r][j] x[r][ci]
                let xs = Strides::rows(start * cin, cin);
                matmul((total, cin, m), dw, Strides::rows(0, cin), true, dy, Strides::transposed(0, total), x, xs);
                if let Some((dx, add)) = dx.as_mut() {
                    // dx[r][ci] = Σ_j dy[r][j] W[j][ci]
                    let at = Strides::rows((start - rows.start) * cin, cin);
                    let w = Strides::rows(0, cin);
                    matmul((m, cin, total), dx, at, *add, dy, Strides::rows(0, total), &self.weights, w);
                }
            }
        });
    }
}
