//! How the engine splits work across threads: rayon's pool, in a few large
//! contiguous parts rather than many small tasks, so that each part runs
//! single-threaded kernels (the matrix products included) on its own rows.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

/// Below this many elements of work, a kernel runs on the calling thread:
/// waking the pool costs more than it saves.
const MIN_PARALLEL_WORK: usize = 1 << 14;

/// The number of parts to split `items` items of `work_per_item` elements
/// each into: one per thread, fewer when there is little work.
pub fn part_count(items: usize, work_per_item: usize) -> usize {
    let threads = rayon::current_num_threads();
    if items.saturating_mul(work_per_item) < MIN_PARALLEL_WORK {
        return 1;
    }
    threads.min(items).max(1)
}

/// `0..items` in `parts` near-equal contiguous ranges.
pub fn split(items: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    (0..parts).map(|p| items * p / parts..items * (p + 1) / parts).filter(|r| !r.is_empty()).collect()
}

/// Runs `f(items, dx, partial)` over `ranges` (contiguous, from 0) in
/// parallel, each with its own slice of `dx` (`per_item` values per item;
/// `None` without `dx`) and a zeroed partial sum of `len` values from
/// `partials` (kept between calls, so not allocated every step); then adds
/// every partial into the first and returns it: a backward pass's weight
/// and bias gradients, from each thread's share of the batch.
pub fn sum_partials<'a>(
    ranges: Vec<Range<usize>>,
    dx: Option<&mut [f32]>,
    per_item: usize,
    len: usize,
    partials: &'a mut Vec<Vec<f32>>,
    f: impl Fn(Range<usize>, Option<&mut [f32]>, &mut [f32]) + Sync + Send,
) -> &'a [f32] {
    partials.resize_with(ranges.len(), Vec::new);
    partials.truncate(ranges.len());
    for p in partials.iter_mut() {
        p.clear();
        p.resize(len, 0.0);
    }
    match dx {
        Some(dx) => {
            let mut chunks = Vec::with_capacity(ranges.len());
            let mut rest = dx;
            for r in &ranges {
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * per_item);
                chunks.push((r.clone(), head));
                rest = tail;
            }
            chunks.into_par_iter().zip(partials.par_iter_mut()).for_each(|((r, dx), p)| f(r, Some(dx), p));
        }
        None => ranges.into_par_iter().zip(partials.par_iter_mut()).for_each(|(r, p)| f(r, None, p)),
    }
    let (total, rest) = partials.split_first_mut().expect("at least one part");
    for p in rest.iter() {
        total.iter_mut().zip(p).for_each(|(d, v)| *d += *v);
    }
    total
}

/// Runs `f(first_row, rows)` on disjoint chunks of `out`, whose rows are
/// `width` elements each, in parallel when there is enough work.
pub fn for_rows(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if width == 0 || out.is_empty() {
        return;
    }
    let rows = out.len() / width;
    let parts = part_count(rows, width);
    if parts == 1 {
        return f(0, out);
    }
    let per_part = rows.div_ceil(parts);
    out.par_chunks_mut(per_part * width).enumerate().for_each(|(i, chunk)| f(i * per_part, chunk));
}

thread_local! {
    /// Each thread's scratch for the kernel it runs: im2col's columns,
    /// Winograd's transformed tiles, sibling convolutions' gathered
    /// gradients. Reused across calls and steps; kernels do not nest.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch, `len` values long (stale contents).
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}
