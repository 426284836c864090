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
//! the two algorithms so that both see the same machine load. A second
//! table times sibling 1x1 convolutions (one input, several outputs) one by
//! one against one product over all their outputs (decision 40). WIDTH
//! limits the first table to one width.

use std::time::Instant;

use netc::runtime::native::conv::{self, Algorithm, ConvGeom};

/// A `k`x`k` convolution of 64 square images of `size` pixels that keeps
/// their size (stride 1, "same" padding).
fn same_size(size: usize, cin: usize, cout: usize, k: usize) -> ConvGeom {
    let (h, w, oh, ow) = (size, size, size, size);
    ConvGeom { n: 64, h, w, cin, oh, ow, cout, k, stride: 1, padding: k / 2, dilation: 1, groups: 1 }
}

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

/// One 1x1 convolution's buffers.
struct Pointwise {
    geom: ConvGeom,
    wt: Vec<f32>,
    y: Vec<f32>,
    dy: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
    partials: Vec<Vec<f32>>,
}

/// Forward and backward milliseconds of 1x1 convolutions of one input
/// (`size` pixels square, `cin` channels) into `couts`, run one after
/// another as the engine ran sibling convolutions before `siblings.rs`.
/// With one entry in `couts` this is the product that `siblings.rs` runs
/// instead (without its copying of the gradients side by side).
fn time_pointwise(size: usize, cin: usize, couts: &[usize]) -> (f64, f64) {
    let pixels = 64 * size * size;
    let x: Vec<f32> = (0..pixels * cin).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let mut dx = vec![0.0; x.len()];
    let mut layers: Vec<Pointwise> = couts
        .iter()
        .map(|&cout| {
            let geom = same_size(size, cin, cout, 1);
            let mut wt = Vec::new();
            conv::prepare_weights(&geom, Algorithm::Im2col, &vec![0.01; cout * cin], &mut wt);
            let (y, dy) = (vec![0.0; pixels * cout], vec![0.1; pixels * cout]);
            Pointwise { geom, wt, y, dy, dw: vec![0.0; cout * cin], db: vec![0.0; cout], partials: Vec::new() }
        })
        .collect();
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    for run in 0..8 {
        let start = Instant::now();
        for l in &mut layers {
            conv::forward(&l.geom, Algorithm::Im2col, &x, &l.wt, None, &mut l.y);
        }
        let f = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        for (i, l) in layers.iter_mut().enumerate() {
            let dx = Some((&mut dx[..], i > 0));
            conv::backward(
                &l.geom,
                Algorithm::Im2col,
                &x,
                &l.wt,
                &l.dy,
                dx,
                &mut l.dw,
                Some(&mut l.db),
                &mut l.partials,
            );
        }
        let b = start.elapsed().as_secs_f64() * 1e3;
        if run > 0 {
            fwd.push(f);
            bwd.push(b);
        }
    }
    (median(fwd), median(bwd))
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
            let g = same_size(size, cin, cout, 3);
            let [(f0, b0), (f1, b1)] = time(&g);
            println!(
                "{width:>5} {size:>4} {cin:>4} {cout:>4} | {f0:>8.2} {b0:>8.2} | {f1:>8.2} {b1:>8.2} | {:>6.2}",
                (f0 + b0) / (f1 + b1)
            );
        }
    }
    println!();
    println!("sibling 1x1 convolutions (the first three of an inception block), ms per pass, median of 7");
    println!("{:>4} {:>4} {:>14} | {:>8} {:>8} | {:>9} {:>8}", "size", "cin", "couts", "1 by 1", "", "1 product", "");
    println!("{:>4} {:>4} {:>14} | {:>8} {:>8} | {:>9} {:>8}", "", "", "", "fwd", "bwd", "fwd", "bwd");
    for (size, cin, couts) in
        [(32, 48, [16, 24, 4]), (16, 120, [48, 24, 4]), (32, 192, [64, 96, 16]), (16, 480, [192, 96, 16])]
    {
        let (f, b) = time_pointwise(size, cin, &couts);
        let (fs, bs) = time_pointwise(size, cin, &[couts.iter().sum()]);
        let couts = format!("{couts:?}");
        println!("{size:>4} {cin:>4} {couts:>14} | {f:>8.2} {b:>8.2} | {fs:>9.2} {bs:>8.2}");
    }
}
