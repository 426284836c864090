//! The native engine's two convolution algorithms, im2col and Winograd's
//! F(2x2, 3x3), side by side on the 3x3 layers of the CIFAR GoogLeNet at
//! widths 0.25 and 1.0, batch 64, on the thread pool netc uses (2 threads
//! unless RAYON_NUM_THREADS says otherwise). What `conv::Algorithm::choose`
//! decides is measured here (docs/performance.md).
//!
//!     cargo bench --bench conv [-- WIDTH]
//!
//! Prints milliseconds for a forward and a backward pass (input and weight
//! gradients), the median of 7 timed runs after one warm-up, alternating
//! the two algorithms so that both see the same machine load.

use std::time::Instant;

use netc::runtime::native::conv::{self, Algorithm, ConvGeom};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Forward and backward milliseconds of each algorithm on `g`.
fn time(g: &ConvGeom) -> [(f64, f64); 2] {
    let x: Vec<f32> = (0..g.n * g.h * g.w * g.cin).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let w: Vec<f32> = (0..g.cout * g.cin * 9).map(|i| (i % 5) as f32 * 0.01 - 0.02).collect();
    let dy: Vec<f32> = (0..g.n * g.oh * g.ow * g.cout).map(|i| (i % 3) as f32 * 0.1).collect();
    let algorithms = [Algorithm::Im2col, Algorithm::Winograd];
    let mut wts: Vec<Vec<f32>> = vec![Vec::new(); 2];
    for (a, wt) in algorithms.iter().zip(&mut wts) {
        conv::prepare_weights(g, *a, &w, wt);
    }
    let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
    let mut db = vec![0.0; g.cout];
    let mut partials = Vec::new();
    let mut times = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for run in 0..8 {
        for (i, a) in algorithms.iter().enumerate() {
            let start = Instant::now();
            conv::forward(g, *a, &x, &wts[i], None, &mut y);
            let forward = start.elapsed().as_secs_f64() * 1e3;
            let start = Instant::now();
            conv::backward(g, *a, &x, &wts[i], &dy, Some((&mut dx, false)), &mut dw, Some(&mut db), &mut partials);
            let backward = start.elapsed().as_secs_f64() * 1e3;
            if run > 0 {
                times[i].0.push(forward);
                times[i].1.push(backward);
            }
        }
    }
    times.map(|(f, b)| (median(f), median(b)))
}

fn main() {
    println!("batch 64, {} threads; ms per pass, median of 7", rayon::current_num_threads());
    println!(
        "{:>5} {:>4} {:>4} {:>4} | {:>8} {:>8} | {:>8} {:>8} | {:>6}",
        "width", "size", "cin", "cout", "im2col", "", "winograd", "", "ratio"
    );
    println!(
        "{:>5} {:>4} {:>4} {:>4} | {:>8} {:>8} | {:>8} {:>8} | {:>6}",
        "", "", "", "", "fwd", "bwd", "fwd", "bwd", "total"
    );
    // (input size, in, out) of each distinct 3x3 layer shape of the net at
    // width 1: the stem, and the 3x3s of each inception block's second
    // and third branches.
    let layers: [(usize, usize, usize); 12] = [
        (32, 3, 192),
        (32, 96, 128),
        (32, 16, 32),
        (32, 128, 192),
        (32, 32, 96),
        (16, 96, 208),
        (16, 16, 48),
        (16, 112, 224),
        (16, 144, 288),
        (16, 160, 320),
        (8, 160, 320),
        (8, 192, 384),
    ];
    let widths: Vec<f64> = match std::env::args().skip(1).find_map(|a| a.parse().ok()) {
        Some(w) => vec![w],
        None => vec![0.25, 1.0],
    };
    for width in widths {
        for (size, cin, cout) in layers {
            let scale = |c: usize| ((c as f64 * width).round() as usize).max(1);
            let (cin, cout) = if cin == 3 { (3, scale(cout)) } else { (scale(cin), scale(cout)) };
            let g = ConvGeom {
                n: 64,
                h: size,
                w: size,
                cin,
                oh: size,
                ow: size,
                cout,
                k: 3,
                stride: 1,
                padding: 1,
                dilation: 1,
                groups: 1,
            };
            let [(f0, b0), (f1, b1)] = time(&g);
            println!(
                "{width:>5} {size:>4} {cin:>4} {cout:>4} | {f0:>8.2} {b0:>8.2} | {f1:>8.2} {b1:>8.2} | {:>6.2}",
                (f0 + b0) / (f1 + b1)
            );
        }
    }
}
