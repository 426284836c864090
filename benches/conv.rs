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

/// Forward and backward milliseconds of 1x1 convolutions of one input
/// (`size` pixels square, `cin` channels) into `couts`, run one by one.
fn time_pointwise(size: usize, cin: usize, couts: &[usize]) -> (f64, f64) {
    let geom = |cout| ConvGeom {
        n: 64,
        h: size,
        w: size,
        cin,
        oh: size,
        ow: size,
        cout,
        k: 1,
        stride: 1,
        padding: 0,
        dilation: 1,
        groups: 1,
    };
    let x: Vec<f32> = (0..64 * size * size * cin).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let mut dx = vec![0.0; x.len()];
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    let layers: Vec<_> = couts
        .iter()
        .map(|&c| {
            let g = geom(c);
            let mut wt = Vec::new();
            conv::prepare_weights(&g, Algorithm::Im2col, &vec![0.01; c * cin], &mut wt);
            (
                g,
                wt,
                vec![0.0f32; 64 * size * size * c],
                vec![0.1f32; 64 * size * size * c],
                vec![0.0; c * cin],
                vec![0.0; c],
                Vec::new(),
            )
        })
        .collect::<Vec<_>>();
    let mut layers = layers;
    for run in 0..8 {
        let start = Instant::now();
        for (g, wt, y, _, _, _, _) in layers.iter_mut() {
            conv::forward(g, Algorithm::Im2col, &x, wt, None, y);
        }
        let f = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        for (i, (g, wt, _, dy, dw, db, partials)) in layers.iter_mut().enumerate() {
            conv::backward(g, Algorithm::Im2col, &x, wt, dy, Some((&mut dx, i > 0)), dw, Some(db), partials);
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
    for (size, cin, couts) in [
        (32usize, 48usize, vec![16usize, 24, 4]),
        (16, 120, vec![48, 24, 4]),
        (32, 192, vec![64, 96, 16]),
        (16, 480, vec![192, 96, 16]),
    ] {
        let (f, b) = time_pointwise(size, cin, &couts);
        let total: usize = couts.iter().sum();
        let (fs, bs) = time_pointwise(size, cin, &[total]);
        println!("1x1 {size} {cin} {couts:?}: separate {f:.2} {b:.2}, stacked {fs:.2} {bs:.2}");
    }
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
