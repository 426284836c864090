//! The `gemm` crate on this machine: its peak on large products (the scale
//! docs/performance.md measures netc against), and the stride layouts of a
//! convolution-shaped product (why the native engine is NHWC; decision 16).
//!
//!     cargo bench --bench gemm
//!
//! Prints GFLOP/s, the median of 7 timed runs after one warm-up.

use std::time::Instant;

use gemm::{Parallelism, gemm};

/// A matrix layout: element (i, j) at `i * row + j * col`.
#[derive(Clone, Copy)]
struct Layout {
    row: isize,
    col: isize,
}

fn row_major(cols: usize) -> Layout {
    Layout { row: cols as isize, col: 1 }
}

fn col_major(rows: usize) -> Layout {
    Layout { row: 1, col: rows as isize }
}

/// GFLOP/s of `c (m x n) = a (m x k) · b (k x n)` in the given layouts.
fn gflops((m, n, k): (usize, usize, usize), c: Layout, a: Layout, b: Layout, par: Parallelism) -> f64 {
    let (lhs, rhs, mut dst) = (vec![1.0f32; m * k], vec![1.0f32; k * n], vec![0.0f32; m * n]);
    let reps = ((2e8 / (2.0 * (m * n * k) as f64)) as usize).max(1);
    let mut run = || {
        for _ in 0..reps {
            // SAFETY: each layout addresses exactly its matrix's m*k, k*n or
            // m*n elements, and `dst` aliases neither factor.
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    c.col,
                    c.row,
                    false,
                    lhs.as_ptr(),
                    a.col,
                    a.row,
                    rhs.as_ptr(),
                    b.col,
                    b.row,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            }
        }
    };
    run();
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * (m * n * k) as f64 / times[3] / 1e9
}

fn main() {
    println!("peak, square f32 products:");
    for size in [1024, 2048] {
        let l = row_major(size);
        let shape = (size, size, size);
        let one = gflops(shape, l, l, l, Parallelism::None);
        let two = gflops(shape, l, l, l, Parallelism::Rayon(2));
        println!("  {size}^3: {one:6.1} GFLOP/s on 1 thread, {two:6.1} on 2");
    }
    // A 3x3 convolution of 24 to 32 channels over a 32x32 image: 32 output
    // channels, 1024 pixels, 216 = 3*3*24 taps, one thread.
    let (cout, pixels, taps) = (32, 1024, 216);
    println!("a 3x3 convolution's product (32 x 1024 x 216), one thread:");
    let nchw = gflops((cout, pixels, taps), row_major(pixels), row_major(taps), row_major(pixels), Parallelism::None);
    println!("  output planes (NCHW), columns [taps, pixels]:     {nchw:6.1} GFLOP/s");
    let nchw_t = gflops((cout, pixels, taps), row_major(pixels), row_major(taps), col_major(taps), Parallelism::None);
    println!("  output planes (NCHW), columns [pixels, taps]:     {nchw_t:6.1} GFLOP/s");
    let nhwc = gflops((pixels, cout, taps), row_major(cout), row_major(taps), col_major(taps), Parallelism::None);
    println!("  output rows (NHWC), as the native engine runs it: {nhwc:6.1} GFLOP/s");
}
