//! The native engine's NHWC pooling and resizing against the NCHW candle ops:
//! forward on the transposed input, backward against candle's autograd of
//! `sum(r * op(x))` for a random `r`, on many random shapes and settings.
//!
//! The native kernels do the NCHW ops' arithmetic in the same order, so every
//! result is compared bit for bit. The backward passes add into a `dx`
//! that starts at a nonzero value, and must give that value plus the NCHW
//! gradient.

mod common;

use candle_core::{Device, Result, Tensor, Var};
use netc::graph::window_output;
use netc::runtime::native::window::{
    Nhwc, PoolWindow, Tap, avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward, max_pool_infer,
    resize_bilinear_backward, resize_bilinear_forward, resize_nearest_backward, resize_nearest_forward,
};
use netc::runtime::ops::{avg_pool2d, max_pool2d, upsample_bilinear2d, upsample_nearest2d};

use common::Rng;

/// What `dx` holds before a backward pass, to check that it accumulates.
const DX0: f32 = 0.375;

/// What `y` and the taps hold before a forward pass, to check that it overwrites.
const Y0: f32 = -7.5;
const TAP0: Tap = 0xdead;

/// NCHW data of `[n, c, h, w]` in NHWC order.
fn to_nhwc(v: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len());
    for b in 0..n {
        for p in 0..h * w {
            out.extend((0..c).map(|ch| v[(b * c + ch) * h * w + p]));
        }
    }
    out
}

/// NHWC data of shape `s` in NCHW order.
fn to_nchw(v: &[f32], s: Nhwc) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len());
    for b in 0..s.n {
        for ch in 0..s.c {
            out.extend((0..s.h * s.w).map(|p| v[(b * s.h * s.w + p) * s.c + ch]));
        }
    }
    out
}

fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i}: got {g}, want {w}");
    }
}

/// An NCHW op's output and input gradient, in NHWC order.
struct Reference {
    ys: Nhwc,
    y: Vec<f32>,
    /// The output gradient `r`.
    dy: Vec<f32>,
    /// `DX0` plus the input gradient.
    dx: Vec<f32>,
    /// The input gradient.
    grad: Vec<f32>,
}

/// Runs `op` on `x` (NHWC, shape `xs`) through candle, NCHW, with autograd.
fn reference(x: &[f32], xs: Nhwc, rng: &mut Rng, op: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Reference> {
    let dims = [xs.n, xs.c, xs.h, xs.w];
    let var = Var::from_vec(to_nchw(x, xs), &dims, &Device::Cpu)?;
    let y = op(var.as_tensor())?;
    let (n, c, h, w) = y.dims4()?;
    let r: Vec<f32> = rng.uniforms(y.elem_count()).into_iter().map(|v| v as f32).collect();
    let r = Tensor::from_vec(r, y.shape(), &Device::Cpu)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let grad: Vec<f32> = grads.get(var.as_tensor()).expect("a gradient for x").flatten_all()?.to_vec1()?;
    let out = [n, c, h, w];
    Ok(Reference {
        ys: Nhwc { n, h, w, c },
        y: to_nhwc(&y.flatten_all()?.to_vec1()?, out),
        dy: to_nhwc(&r.flatten_all()?.to_vec1()?, out),
        dx: to_nhwc(&grad, dims).into_iter().map(|g| DX0 + g).collect(),
        grad: to_nhwc(&grad, dims),
    })
}

/// A random NHWC input: uniform values, or (`coarse`) values from a few
/// levels, so that windows hold ties.
fn input(rng: &mut Rng, xs: Nhwc, coarse: bool) -> Vec<f32> {
    rng.uniforms(xs.len()).into_iter().map(|v| if coarse { (v * 2.0).round() as f32 / 2.0 } else { v as f32 }).collect()
}

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next() % n as u64) as usize
}

/// A random shape with n in 1..=3, c in 1..=7, h and w in 1..=11.
fn shape(rng: &mut Rng) -> Nhwc {
    Nhwc { n: 1 + below(rng, 3), h: 1 + below(rng, 11), w: 1 + below(rng, 11), c: 1 + below(rng, 7) }
}

/// Checks the three max pooling kernels on `x` against the NCHW op.
fn check_max_pool(x: &[f32], xs: Nhwc, p: PoolWindow, rng: &mut Rng, what: &str) -> Result<()> {
    let want = reference(x, xs, rng, |x| max_pool2d(x, p.kernel, p.stride, p.padding, p.ceil_mode))?;
    let ys = want.ys;
    let (mut y, mut taps) = (vec![Y0; ys.len()], vec![TAP0; ys.len()]);
    max_pool_forward(x, xs, p, &mut y, ys, &mut taps);
    assert_bits(&y, &want.y, &format!("{what}: max forward"));
    // The tap points at the input that gave the maximum.
    for (i, (&t, &v)) in taps.iter().zip(&y).enumerate() {
        let (b, oh, ow, ch) = (i / ys.c / ys.w / ys.h, i / ys.c / ys.w % ys.h, i / ys.c % ys.w, i % ys.c);
        let (t, k) = (t as usize, p.kernel);
        assert!(t < k * k, "{what}: tap {t} of output {i} outside its window");
        let ih = (oh * p.stride + t / k).checked_sub(p.padding).filter(|ih| *ih < xs.h);
        let iw = (ow * p.stride + t % k).checked_sub(p.padding).filter(|iw| *iw < xs.w);
        let (Some(ih), Some(iw)) = (ih, iw) else { panic!("{what}: tap {t} of output {i} outside the image") };
        assert_eq!(x[((b * xs.h + ih) * xs.w + iw) * xs.c + ch].to_bits(), v.to_bits(), "{what}: tap of {i}");
    }
    let mut infer = vec![Y0; ys.len()];
    max_pool_infer(x, xs, p, &mut infer, ys);
    assert_bits(&infer, &want.y, &format!("{what}: max infer"));
    let mut dx = vec![DX0; xs.len()];
    max_pool_backward(&want.dy, ys, &taps, p, &mut dx, xs, true);
    assert_bits(&dx, &want.dx, &format!("{what}: max backward, adding"));
    let mut dx = vec![f32::NAN; xs.len()];
    max_pool_backward(&want.dy, ys, &taps, p, &mut dx, xs, false);
    assert_bits(&dx, &want.grad, &format!("{what}: max backward, overwriting"));
    Ok(())
}

fn check_avg_pool(x: &[f32], xs: Nhwc, p: PoolWindow, rng: &mut Rng, what: &str) -> Result<()> {
    let want = reference(x, xs, rng, |x| avg_pool2d(x, p.kernel, p.stride, p.padding, p.ceil_mode))?;
    let mut y = vec![Y0; want.ys.len()];
    avg_pool_forward(x, xs, p, &mut y, want.ys);
    assert_bits(&y, &want.y, &format!("{what}: avg forward"));
    let mut dx = vec![DX0; xs.len()];
    avg_pool_backward(&want.dy, want.ys, p, &mut dx, xs);
    assert_bits(&dx, &want.dx, &format!("{what}: avg backward"));
    Ok(())
}

#[test]
fn pools_match_the_nchw_ops() -> Result<()> {
    let mut rng = Rng(0x5eed_0a01);
    let mut checked = 0;
    while checked < 400 {
        let xs = shape(&mut rng);
        let kernel = 1 + below(&mut rng, 4);
        let p = PoolWindow {
            kernel,
            stride: 1 + below(&mut rng, 3),
            padding: below(&mut rng, kernel / 2 + 1),
            ceil_mode: rng.next().is_multiple_of(2),
        };
        let fits = |size| window_output(size, p.kernel, p.stride, p.padding, p.ceil_mode).is_some();
        if !fits(xs.h) || !fits(xs.w) {
            continue;
        }
        let what = format!("{xs:?} {p:?}");
        let x = input(&mut rng, xs, checked % 2 == 0);
        check_max_pool(&x, xs, p, &mut rng, &what)?;
        check_avg_pool(&x, xs, p, &mut rng, &what)?;
        checked += 1;
    }
    Ok(())
}

#[test]
fn max_pool_nan_and_infinities_as_the_nchw_op() -> Result<()> {
    // NaN wins, and of several NaNs in a window the last one: NaNs with
    // distinct payloads tell which. -inf can be a window's maximum.
    let mut rng = Rng(0x5eed_0a02);
    for case in 0..60 {
        let xs = shape(&mut rng);
        let p = PoolWindow { kernel: 3, stride: 1 + case % 2, padding: 1, ceil_mode: case % 3 == 0 };
        let mut x = input(&mut rng, xs, true);
        for j in 0..1 + x.len() / 8 {
            let i = below(&mut rng, x.len());
            x[i] = match rng.next() % 3 {
                0 => f32::from_bits(0x7fc0_0000 | (j as u32 + 1)),
                1 => f32::NEG_INFINITY,
                _ => f32::INFINITY,
            };
        }
        if x.len() > 4 {
            x[..4].fill(f32::NEG_INFINITY);
        }
        check_max_pool(&x, xs, p, &mut rng, &format!("{xs:?} {p:?} with NaN"))?;
    }
    Ok(())
}

fn check_resizes(x: &[f32], xs: Nhwc, size: [usize; 2], rng: &mut Rng, what: &str) -> Result<()> {
    let want = reference(x, xs, rng, |x| upsample_nearest2d(x, size))?;
    let mut y = vec![Y0; want.ys.len()];
    resize_nearest_forward(x, xs, &mut y, want.ys);
    assert_bits(&y, &want.y, &format!("{what}: nearest forward"));
    let mut dx = vec![DX0; xs.len()];
    resize_nearest_backward(&want.dy, want.ys, &mut dx, xs);
    assert_bits(&dx, &want.dx, &format!("{what}: nearest backward"));
    for align_corners in [false, true] {
        let what = format!("{what} align_corners {align_corners}");
        let want = reference(x, xs, rng, |x| upsample_bilinear2d(x, size, align_corners))?;
        let mut y = vec![Y0; want.ys.len()];
        resize_bilinear_forward(x, xs, align_corners, &mut y, want.ys);
        assert_bits(&y, &want.y, &format!("{what}: bilinear forward"));
        let mut dx = vec![DX0; xs.len()];
        resize_bilinear_backward(&want.dy, want.ys, align_corners, &mut dx, xs);
        assert_bits(&dx, &want.dx, &format!("{what}: bilinear backward"));
    }
    Ok(())
}

#[test]
fn resizes_match_the_nchw_ops() -> Result<()> {
    let mut rng = Rng(0x5eed_0a03);
    for case in 0..300 {
        let xs = shape(&mut rng);
        // Larger, smaller, equal and mixed sizes.
        let size = match case % 4 {
            0 => [xs.h * (1 + below(&mut rng, 3)), xs.w * (1 + below(&mut rng, 3))],
            1 => [1 + below(&mut rng, xs.h), 1 + below(&mut rng, xs.w)],
            2 => [xs.h, xs.w],
            _ => [1 + below(&mut rng, 24), 1 + below(&mut rng, 24)],
        };
        let x = input(&mut rng, xs, false);
        check_resizes(&x, xs, size, &mut rng, &format!("{xs:?} to {size:?}"))?;
    }
    Ok(())
}

#[test]
fn large_batches_split_across_threads() -> Result<()> {
    // Big enough for the kernels to split their rows and images into tasks.
    let mut rng = Rng(0x5eed_0a04);
    for xs in [Nhwc { n: 5, h: 33, w: 30, c: 24 }, Nhwc { n: 1, h: 64, w: 40, c: 40 }] {
        let x = input(&mut rng, xs, false);
        for p in [
            PoolWindow { kernel: 3, stride: 1, padding: 1, ceil_mode: false },
            PoolWindow { kernel: 3, stride: 2, padding: 1, ceil_mode: true },
            PoolWindow { kernel: 2, stride: 2, padding: 0, ceil_mode: false },
        ] {
            let what = format!("{xs:?} {p:?}");
            check_max_pool(&x, xs, p, &mut rng, &what)?;
            check_avg_pool(&x, xs, p, &mut rng, &what)?;
        }
        for size in [[2 * xs.h, 2 * xs.w], [xs.h / 3, xs.w / 2 + 1]] {
            check_resizes(&x, xs, size, &mut rng, &format!("{xs:?} to {size:?}"))?;
        }
    }
    Ok(())
}

#[test]
fn shape_helpers() {
    let s = Nhwc { n: 2, h: 3, w: 5, c: 7 };
    assert_eq!(s.len(), 210);
    let x: Vec<f32> = (0..s.len()).map(|i| i as f32).collect();
    assert_eq!(to_nhwc(&to_nchw(&x, s), [2, 7, 3, 5]), x);
}
