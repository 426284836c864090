//! The native engine's convolution (NHWC, im2col + gemm) against candle's
//! own `conv2d` forward, and its backward against finite differences, on
//! random shapes with stride, padding, dilation and groups.

mod common;

use candle_core::{Device, Tensor};
use netc::graph::window_output;
use netc::runtime::native::conv::{self, ConvGeom};

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
        let (k, stride, dilation) = (pick(rng, &[1, 2, 3, 5]), pick(rng, &[1, 2]), pick(rng, &[1, 2]));
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

/// Our forward pass in NCHW order, from NCHW input and IR-order weight.
fn ours(g: &ConvGeom, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut wt = vec![0.0; w.len()];
    conv::to_gemm_order(g, w, &mut wt);
    let mut y = vec![0.0; g.n * g.oh * g.ow * g.cout];
    conv::forward(g, &nchw_to_nhwc(x, [g.n, g.cin, g.h, g.w]), &wt, Some(bias), &mut y);
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
        let got = ours(&g, &x, &w, &bias);
        for (i, (a, b)) in got.iter().zip(&theirs).enumerate() {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{g:?}: element {i}: {a} vs candle {b}");
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
        let loss = |x: &[f32], w: &[f32], bias: &[f32]| -> f64 {
            ours(&g, x, w, bias).iter().zip(&r).map(|(y, r)| (*y as f64) * (*r as f64)).sum()
        };

        // Ours: NHWC gradients, from the NHWC output gradient.
        let dy = nchw_to_nhwc(&r, [g.n, g.cout, g.oh, g.ow]);
        let xs = nchw_to_nhwc(&x, [g.n, g.cin, g.h, g.w]);
        let mut wt = vec![0.0; w.len()];
        conv::to_gemm_order(&g, &w, &mut wt);
        // dx either accumulates onto 0.5 everywhere, or overwrites NaNs.
        let add = case % 2 == 0;
        let start = if add { 0.5 } else { f32::NAN };
        let mut dx = vec![start; xs.len()];
        let (mut dwt, mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; w.len()], vec![0.0; g.cout]);
        conv::backward(&g, &xs, &wt, &dy, Some((&mut dx, add)), &mut dwt, Some(&mut db), &mut Vec::new());
        conv::from_gemm_order(&g, &dwt, &mut dw);

        let central = |f: &dyn Fn(f32) -> f64| (f(1.0) - f(-1.0)) / 2.0;
        let close = |got: f64, want: f64, what: String| {
            assert!(
                (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                "{g:?}: {what}: {got} vs finite difference {want}"
            );
        };
        for _ in 0..12 {
            let i = (rng.next() % x.len() as u64) as usize;
            let want = central(&|h| {
                let mut x2 = x.clone();
                x2[i] += h;
                loss(&x2, &w, &bias)
            });
            // x[i] in NCHW is element (b, p, ch) in NHWC.
            let (b, ch, p) = (i / (g.cin * g.h * g.w), i / (g.h * g.w) % g.cin, i % (g.h * g.w));
            let prior = if add { 0.5 } else { 0.0 };
            close(dx[(b * g.h * g.w + p) * g.cin + ch] as f64 - prior, want, format!("dx[{i}]"));
            let j = (rng.next() % w.len() as u64) as usize;
            let want = central(&|h| {
                let mut w2 = w.clone();
                w2[j] += h;
                loss(&x, &w2, &bias)
            });
            close(dw[j] as f64, want, format!("dw[{j}]"));
        }
        for co in 0..g.cout {
            let want = central(&|h| {
                let mut b2 = bias.clone();
                b2[co] += h;
                loss(&x, &w, &b2)
            });
            close(db[co] as f64, want, format!("dbias[{co}]"));
        }
    }
}
