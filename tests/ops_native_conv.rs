//! The native engine's convolution (NHWC; im2col + gemm, and Winograd's
//! F(2x2, 3x3) wherever it applies) against candle's own `conv2d` forward,
//! and its backward against finite differences, on random shapes with
//! stride, padding, dilation and groups; and Winograd's rounding error
//! against im2col's, both measured against the product in f64.

mod common;

use candle_core::{Device, Tensor};
use netc::graph::window_output;
use netc::runtime::native::conv::{self, Algorithm, ConvGeom};

use common::Rng;

fn nchw_to_nhwc(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for p in 0..h * w {
                y[(b * h * w + p) * c + ch] = x[(b * c + ch) * h * w + p];
            }
        }
    }
    y
}

/// A random geometry; `wide` cases have enough work to split across threads.
fn random_geom(rng: &mut Rng, wide: bool) -> ConvGeom {
    loop {
        let pick = |rng: &mut Rng, options: &[usize]| options[(rng.next() % options.len() as u64) as usize];
        let groups = pick(rng, &[1, 1, 2, 3]);
        let (cin, cout) = (groups * pick(rng, &[1, 2, 3, 5]), groups * pick(rng, &[1, 2, 4]));
        let (k, stride, dilation) = (pick(rng, &[1, 2, 3, 3, 5]), pick(rng, &[1, 1, 2]), pick(rng, &[1, 2, 3]));
        let padding = pick(rng, &[0, 1, 2]);
        let (h, w) = if wide { (17, 19) } else { (pick(rng, &[3, 5, 8]), pick(rng, &[4, 7])) };
        let span = dilation * (k - 1) + 1;
        let (Some(oh), Some(ow)) =
            (window_output(h, span, stride, padding, false), window_output(w, span, stride, padding, false))
        else {
            continue;
        };
        let n = if wide { 9 } else { pick(rng, &[1, 2, 3]) };
        return ConvGeom { n, h, w, cin, oh, ow, cout, k, stride, padding, dilation, groups };
    }
}

/// The algorithms that can compute `g`.
fn algorithms(g: &ConvGeom) -> impl Iterator<Item = Algorithm> + '_ {
    [Algorithm::Im2col, Algorithm::Winograd].into_iter().filter(|a| a.supports(g))
}

/// Our forward pass in NCHW order, from NCHW input and IR-order weight.
fn ours(g: &ConvGeom, algorithm: Algorithm, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut wt = Vec::new();
    conv::prepare_weights(g, algorithm, w, &mut wt);
    let mut y = vec![f32::NAN; g.n * g.oh * g.ow * g.cout];
    conv::forward(g, algorithm, &nchw_to_nhwc(x, [g.n, g.cin, g.h, g.w]), &wt, Some(bias), &mut y);
    let mut out = vec![0.0; y.len()];
    for b in 0..g.n {
        for p in 0..g.oh * g.ow {
            for co in 0..g.cout {
                out[(b * g.cout + co) * g.oh * g.ow + p] = y[(b * g.oh * g.ow + p) * g.cout + co];
            }
        }
    }
    out
}

fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform() as f32).collect()
}

/// A random geometry with its NCHW input, IR-order weight and bias.
fn random_case(rng: &mut Rng, wide: bool) -> (ConvGeom, Vec<f32>, Vec<f32>, Vec<f32>) {
    let g = random_geom(rng, wide);
    let x = random(rng, g.n * g.cin * g.h * g.w);
    let w = random(rng, g.cout * (g.cin / g.groups) * g.k * g.k);
    let bias = random(rng, g.cout);
    (g, x, w, bias)
}

#[test]
fn forward_matches_candle_conv2d() {
    let mut rng = Rng(0xc0_2d01);
    for case in 0..300 {
        let (g, x, w, bias) = random_case(&mut rng, case % 10 == 0);
        let xt = Tensor::from_slice(&x, (g.n, g.cin, g.h, g.w), &Device::Cpu).unwrap();
        let wt = Tensor::from_slice(&w, (g.cout, g.cin / g.groups, g.k, g.k), &Device::Cpu).unwrap();
        let bt = Tensor::from_slice(&bias, (1, g.cout, 1, 1), &Device::Cpu).unwrap();
        let theirs = xt.conv2d(&wt, g.padding, g.stride, g.dilation, g.groups).unwrap().broadcast_add(&bt).unwrap();
        assert_eq!(theirs.dims(), [g.n, g.cout, g.oh, g.ow], "{g:?}");
        let theirs: Vec<f32> = theirs.flatten_all().unwrap().to_vec1().unwrap();
        for algorithm in algorithms(&g) {
            let got = ours(&g, algorithm, &x, &w, &bias);
            for (i, (a, b)) in got.iter().zip(&theirs).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{g:?} {algorithm:?}: element {i}: {a} vs candle {b}"
                );
            }
        }
    }
}

/// The loss `sum(r * conv(x, w))` is linear in `x` and in `w`, so central
/// differences are exact but for rounding, and any step size works.
#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng(0xc0_2d02);
    for case in 0..120 {
        let (g, x, w, bias) = random_case(&mut rng, case % 10 == 0);
        let r = random(&mut rng, g.n * g.cout * g.oh * g.ow);
        for algorithm in algorithms(&g).collect::<Vec<_>>() {
            check_backward(&g, algorithm, &x, &w, &bias, &r, case % 2 == 0, &mut rng);
        }
    }
}

/// One algorithm's gradients of `sum(r * conv(x, w))` against central
/// differences at random elements; `dx` either accumulates onto 0.5
/// everywhere (`add`), or overwrites NaNs.
#[allow(clippy::too_many_arguments)]
fn check_backward(
    g: &ConvGeom,
    algorithm: Algorithm,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    r: &[f32],
    add: bool,
    rng: &mut Rng,
) {
    let g = *g;
    let loss = |x: &[f32], w: &[f32], bias: &[f32]| -> f64 {
        ours(&g, algorithm, x, w, bias).iter().zip(r).map(|(y, r)| (*y as f64) * (*r as f64)).sum()
    };
    // Ours: NHWC gradients, from the NHWC output gradient.
    let dy = nchw_to_nhwc(r, [g.n, g.cout, g.oh, g.ow]);
    let xs = nchw_to_nhwc(x, [g.n, g.cin, g.h, g.w]);
    let mut wt = Vec::new();
    conv::prepare_weights(&g, algorithm, w, &mut wt);
    let start = if add { 0.5 } else { f32::NAN };
    let mut dx = vec![start; xs.len()];
    let (mut dw, mut db) = (vec![f32::NAN; w.len()], vec![0.0; g.cout]);
    conv::backward(&g, algorithm, &xs, &wt, &dy, Some((&mut dx, add)), &mut dw, Some(&mut db), &mut Vec::new());

    let central = |f: &dyn Fn(f32) -> f64| (f(1.0) - f(-1.0)) / 2.0;
    let close = |got: f64, want: f64, what: String| {
        assert!(
            (got - want).abs() <= 1e-3 * want.abs().max(1.0),
            "{g:?} {algorithm:?}: {what}: {got} vs finite difference {want}"
        );
    };
    for _ in 0..12 {
        let i = (rng.next() % x.len() as u64) as usize;
        let want = central(&|h| {
            let mut x2 = x.to_vec();
            x2[i] += h;
            loss(&x2, w, bias)
        });
        // x[i] in NCHW is element (b, p, ch) in NHWC.
        let (b, ch, p) = (i / (g.cin * g.h * g.w), i / (g.h * g.w) % g.cin, i % (g.h * g.w));
        let prior = if add { 0.5 } else { 0.0 };
        close(dx[(b * g.h * g.w + p) * g.cin + ch] as f64 - prior, want, format!("dx[{i}]"));
        let j = (rng.next() % w.len() as u64) as usize;
        let want = central(&|h| {
            let mut w2 = w.to_vec();
            w2[j] += h;
            loss(x, &w2, bias)
        });
        close(dw[j] as f64, want, format!("dw[{j}]"));
    }
    for co in 0..g.cout {
        let want = central(&|h| {
            let mut b2 = bias.to_vec();
            b2[co] += h;
            loss(x, w, &b2)
        });
        close(db[co] as f64, want, format!("dbias[{co}]"));
    }
}

/// The convolution and both its gradients in f64, by the definition, on
/// NHWC data and IR-order weights: (y, dx, dw) for the output gradient `dy`.
fn exact(g: &ConvGeom, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; g.n * g.oh * g.ow * g.cout];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    let source = |o: usize, t: usize, len: usize| (o + t * g.dilation).checked_sub(g.padding).filter(|i| *i < len);
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let out = ((b * g.oh + oy) * g.ow + ox) * g.cout;
                for i in 0..g.k {
                    let Some(iy) = source(oy, i, g.h) else { continue };
                    for j in 0..g.k {
                        let Some(ix) = source(ox, j, g.w) else { continue };
                        let inp = ((b * g.h + iy) * g.w + ix) * g.cin;
                        for co in 0..g.cout {
                            for ci in 0..g.cin {
                                let wi = ((co * g.cin + ci) * g.k + i) * g.k + j;
                                y[out + co] += x[inp + ci] as f64 * w[wi] as f64;
                                dx[inp + ci] += dy[out + co] as f64 * w[wi] as f64;
                                dw[wi] += dy[out + co] as f64 * x[inp + ci] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

/// The largest error of `got` against `want`, relative to `want`'s largest
/// magnitude.
fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max) / scale
}

/// Winograd trades multiplications for additions of transformed values,
/// which rounds differently: its error in f32 against the exact (f64)
/// result must stay within a small factor of im2col's, on wide layers with
/// the channel counts of the paper's nets, dilated and padded or not.
#[test]
fn winograd_rounding_stays_near_im2col() {
    let mut rng = Rng(0xc0_2d03);
    for (cin, cout, dilation, padding, h, w) in [
        (16, 16, 1, 1, 8, 8),
        (40, 24, 1, 0, 9, 7),
        (96, 128, 1, 1, 8, 8),
        (48, 64, 2, 2, 16, 16),
        (32, 40, 3, 1, 11, 12),
    ] {
        let (oh, ow) = (h + 2 * padding - 2 * dilation, w + 2 * padding - 2 * dilation);
        let g = ConvGeom { n: 3, h, w, cin, oh, ow, cout, k: 3, stride: 1, padding, dilation, groups: 1 };
        // Signed values, as activations after batch norm and weights are.
        let signed =
            |rng: &mut Rng, len: usize| -> Vec<f32> { (0..len).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect() };
        let x = signed(&mut rng, g.n * h * w * cin);
        let wts = signed(&mut rng, cout * cin * 9);
        let dy = signed(&mut rng, g.n * oh * ow * cout);
        let (y64, dx64, dw64) = exact(&g, &x, &wts, &dy);
        let mut errors = Vec::new();
        for algorithm in [Algorithm::Im2col, Algorithm::Winograd] {
            let mut wt = Vec::new();
            conv::prepare_weights(&g, algorithm, &wts, &mut wt);
            let mut y = vec![f32::NAN; y64.len()];
            conv::forward(&g, algorithm, &x, &wt, None, &mut y);
            let (mut dx, mut dw) = (vec![f32::NAN; x.len()], vec![f32::NAN; wts.len()]);
            conv::backward(&g, algorithm, &x, &wt, &dy, Some((&mut dx, false)), &mut dw, None, &mut Vec::new());
            errors.push([relative_error(&y, &y64), relative_error(&dx, &dx64), relative_error(&dw, &dw64)]);
        }
        let (im2col, winograd) = (errors[0], errors[1]);
        println!(
            "{g:?}\n  im2col   y {:.1e} dx {:.1e} dw {:.1e}\n  winograd y {:.1e} dx {:.1e} dw {:.1e}",
            im2col[0], im2col[1], im2col[2], winograd[0], winograd[1], winograd[2]
        );
        for (what, (a, b)) in ["y", "dx", "dw"].iter().zip(im2col.iter().zip(&winograd)) {
            assert!(*b <= 4.0 * a.max(1e-7) && *b < 1e-5, "{g:?}: {what}: Winograd's error {b:.2e}, im2col's {a:.2e}");
        }
    }
}
