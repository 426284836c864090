//! Gradients of the custom ops against central finite differences, in f64.
//!
//! The loss is `sum(w * op(x))` for a random weighting `w`, so that every
//! output element contributes its own weight. All the ops are piecewise
//! linear in `x`, so central differences are exact up to rounding, as long as
//! no max-pool tie is crossed: max pool inputs are distinct values far apart.

mod common;

use candle_core::{DType, Device, Result, Tensor, Var};
use common::Rng;
use netc::runtime::ops::{avg_pool2d, batch_norm_train, conv2d, max_pool2d, upsample_bilinear2d, upsample_nearest2d};

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

type Op = Box<dyn Fn(&Tensor) -> Result<Tensor>>;

/// Checks the gradient of `sum(w * op(x))` at `x` of shape `dims` against
/// central differences.
fn check(what: &str, dims: [usize; 4], x: Vec<f64>, op: &Op, rng: &mut Rng) -> Result<()> {
    let dev = &Device::Cpu;
    let var = Var::from_vec(x.clone(), &dims, dev)?;
    let y = op(var.as_tensor())?;
    let w = Tensor::from_vec(rng.uniforms(y.elem_count()), y.shape(), dev)?;
    let grads = (&y * &w)?.sum_all()?.backward()?;
    let grad: Vec<f64> = grads.get(var.as_tensor()).expect("a gradient for x").flatten_all()?.to_vec1()?;

    let loss = |x: &[f64]| -> Result<f64> {
        let x = Tensor::from_slice(x, &dims, dev)?;
        (op(&x)? * &w)?.sum_all()?.to_scalar::<f64>()
    };
    let mut x = x;
    let mut worst = 0f64;
    for i in 0..x.len() {
        let x0 = x[i];
        x[i] = x0 + EPS;
        let plus = loss(&x)?;
        x[i] = x0 - EPS;
        let minus = loss(&x)?;
        x[i] = x0;
        let fd = (plus - minus) / (2.0 * EPS);
        let err = (grad[i] - fd).abs() / grad[i].abs().max(fd.abs()).max(1.0);
        worst = worst.max(err);
        assert!(err < TOL, "{what}: element {i}: backward {}, finite difference {fd}", grad[i]);
    }
    assert!(grad.iter().any(|g| g.abs() > 1e-3), "{what}: an all-zero gradient tests nothing");
    eprintln!("{what}: worst relative error {worst:.1e}");
    Ok(())
}

/// Pooling settings for both pools: dims (n, c, h, w), kernel, stride,
/// padding, ceil mode.
#[rustfmt::skip]
const POOL_CASES: [([usize; 4], usize, usize, usize, bool); 9] = [
    ([2, 2, 7, 7], 3, 2, 1, false),
    ([1, 2, 7, 7], 3, 2, 1, true),
    ([1, 1, 6, 6], 3, 2, 1, true),
    ([1, 2, 5, 5], 2, 2, 0, true),
    ([1, 1, 5, 6], 3, 1, 1, false),
    ([2, 1, 8, 7], 2, 2, 0, false),
    ([1, 1, 5, 5], 3, 1, 0, false),
    ([1, 1, 9, 9], 3, 3, 1, true),
    ([1, 1, 4, 7], 4, 1, 2, false),
];

type Pool = fn(&Tensor, usize, usize, usize, bool) -> Result<Tensor>;

/// Checks `pool` on every case of [`POOL_CASES`]. Max pooling gets distinct
/// inputs: a tie makes its gradient a matter of which maximum wins.
fn check_pool(name: &str, pool: Pool, distinct: bool, rng: &mut Rng) -> Result<()> {
    for (dims, k, s, p, ceil) in POOL_CASES {
        let op: Op = Box::new(move |x| pool(x, k, s, p, ceil));
        let n = dims.iter().product();
        let x = if distinct { rng.distinct(n) } else { rng.uniforms(n) };
        check(&format!("{name} {dims:?} k{k} s{s} p{p} ceil {ceil}"), dims, x, &op, rng)?;
    }
    Ok(())
}

#[test]
fn max_pool2d_gradient() -> Result<()> {
    check_pool("max_pool2d", max_pool2d, true, &mut Rng(0x5eed_0201))
}

#[test]
fn avg_pool2d_gradient() -> Result<()> {
    check_pool("avg_pool2d", avg_pool2d, false, &mut Rng(0x5eed_0202))
}

#[test]
fn upsample_nearest2d_gradient() -> Result<()> {
    let mut rng = Rng(0x5eed_0203);
    for (dims, size) in [
        ([2, 2, 3, 4], [6, 8]),
        ([1, 2, 2, 3], [5, 7]),
        ([1, 1, 8, 8], [3, 3]),
        ([1, 1, 5, 4], [5, 9]),
        ([1, 1, 3, 7], [7, 2]),
    ] {
        let op: Op = Box::new(move |x| upsample_nearest2d(x, size));
        let x = rng.uniforms(dims.iter().product());
        check(&format!("upsample_nearest2d {dims:?} -> {size:?}"), dims, x, &op, &mut rng)?;
    }
    Ok(())
}

#[test]
fn upsample_bilinear2d_gradient() -> Result<()> {
    let mut rng = Rng(0x5eed_0204);
    for (dims, size) in [
        ([2, 2, 3, 4], [6, 8]),
        ([1, 2, 2, 3], [5, 7]),
        ([1, 1, 8, 8], [3, 3]),
        ([1, 1, 5, 4], [5, 9]),
        ([1, 1, 3, 7], [7, 2]),
        ([1, 1, 4, 3], [1, 1]),
    ] {
        for align_corners in [false, true] {
            let op: Op = Box::new(move |x| upsample_bilinear2d(x, size, align_corners));
            let x = rng.uniforms(dims.iter().product());
            let what = format!("upsample_bilinear2d {dims:?} -> {size:?} align_corners {align_corners}");
            check(&what, dims, x, &op, &mut rng)?;
        }
    }
    Ok(())
}

#[test]
fn gradients_through_strided_views() -> Result<()> {
    // A transposed input, and a transposed output, whose gradient then
    // reaches the op's backward as a non-contiguous tensor.
    let mut rng = Rng(0x5eed_0205);
    let t = |x: &Tensor| x.transpose(2, 3);
    let ops: [(&str, Op); 4] = [
        ("max_pool2d", Box::new(move |x| t(&max_pool2d(&t(x)?, 3, 2, 1, true)?))),
        ("avg_pool2d", Box::new(move |x| t(&avg_pool2d(&t(x)?, 3, 2, 1, true)?))),
        ("upsample_nearest2d", Box::new(move |x| t(&upsample_nearest2d(&t(x)?, [5, 9])?))),
        ("upsample_bilinear2d", Box::new(move |x| t(&upsample_bilinear2d(&t(x)?, [5, 9], false)?))),
    ];
    let dims = [2, 2, 7, 6];
    for (what, op) in &ops {
        let x = rng.distinct(dims.iter().product());
        check(&format!("{what} transposed"), dims, x, op, &mut rng)?;
    }
    Ok(())
}

#[test]
fn max_pool2d_ties_go_to_the_first_maximum() -> Result<()> {
    // All equal: each 2x2 window (stride 1) sends its gradient to its
    // top-left element, as PyTorch does.
    let x = Var::ones((1, 1, 4, 4), DType::F64, &Device::Cpu)?;
    let grads = max_pool2d(x.as_tensor(), 2, 1, 0, false)?.sum_all()?.backward()?;
    let grad: Vec<f64> = grads.get(x.as_tensor()).expect("a gradient").flatten_all()?.to_vec1()?;
    #[rustfmt::skip]
    let want = [
        1., 1., 1., 0.,
        1., 1., 1., 0.,
        1., 1., 1., 0.,
        0., 0., 0., 0.,
    ];
    assert_eq!(grad, want);
    Ok(())
}

#[test]
fn f32_gradients_match_f64() -> Result<()> {
    let mut rng = Rng(0x5eed_0206);
    let ops: [(&str, Op); 5] = [
        ("max_pool2d", Box::new(|x| max_pool2d(x, 3, 2, 1, true))),
        ("avg_pool2d", Box::new(|x| avg_pool2d(x, 3, 2, 1, true))),
        ("upsample_nearest2d", Box::new(|x| upsample_nearest2d(x, [9, 4]))),
        ("upsample_bilinear2d", Box::new(|x| upsample_bilinear2d(x, [9, 4], false))),
        ("upsample_bilinear2d aligned", Box::new(|x| upsample_bilinear2d(x, [9, 4], true))),
    ];
    let dims = [2, 3, 7, 6];
    for (what, op) in &ops {
        let x = Tensor::from_vec(rng.distinct(dims.iter().product()), &dims, &Device::Cpu)?;
        let mut grads = Vec::new();
        for dtype in [DType::F64, DType::F32] {
            let x = Var::from_tensor(&x.to_dtype(dtype)?)?;
            let y = op(x.as_tensor())?;
            let w = Tensor::arange(0f64, y.elem_count() as f64, &Device::Cpu)?.reshape(y.shape())?.cos()?;
            let g = (y * w.to_dtype(dtype)?)?.sum_all()?.backward()?;
            let g = g.get(x.as_tensor()).expect("a gradient");
            assert_eq!(g.dtype(), dtype, "{what}");
            grads.push(g.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?);
        }
        for (a, b) in grads[0].iter().zip(&grads[1]) {
            assert!((a - b).abs() < 1e-5, "{what}: f64 {a}, f32 {b}");
        }
    }
    Ok(())
}

#[test]
fn large_tensors_match_plane_by_plane() -> Result<()> {
    // Big enough for the kernels to split planes across threads, forward and
    // backward; channel by channel each call runs on one thread.
    let mut rng = Rng(0x5eed_0207);
    let ops: [(&str, Op); 5] = [
        ("max_pool2d", Box::new(|x| max_pool2d(x, 3, 1, 1, false))),
        ("avg_pool2d", Box::new(|x| avg_pool2d(x, 3, 2, 1, true))),
        ("upsample_nearest2d", Box::new(|x| upsample_nearest2d(x, [70, 61]))),
        ("upsample_bilinear2d", Box::new(|x| upsample_bilinear2d(x, [70, 61], false))),
        ("upsample_bilinear2d down", Box::new(|x| upsample_bilinear2d(x, [21, 30], true))),
    ];
    let dims = [2, 16, 48, 48];
    let dev = &Device::Cpu;
    for (what, op) in &ops {
        let x = Var::from_vec(rng.distinct(dims.iter().product()), &dims, dev)?;
        let y = op(x.as_tensor())?;
        let w = Tensor::from_vec(rng.uniforms(y.elem_count()), y.shape(), dev)?;
        let grad = (&y * &w)?.sum_all()?.backward()?.remove(x.as_tensor()).expect("a gradient");
        for c in 0..dims[1] {
            let xc = Var::from_tensor(&x.narrow(1, c, 1)?)?;
            let yc = op(xc.as_tensor())?;
            let wc = w.narrow(1, c, 1)?;
            let gc = (&yc * &wc)?.sum_all()?.backward()?.remove(xc.as_tensor()).expect("a gradient");
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f64>();
            assert_eq!(flat(&y.narrow(1, c, 1)?)?, flat(&yc)?, "{what}: forward, channel {c}");
            assert_eq!(flat(&grad.narrow(1, c, 1)?)?, flat(&gc)?, "{what}: backward, channel {c}");
        }
    }
    Ok(())
}

/// The convolution is linear in its input and in its weight: check both
/// gradients, with stride, padding, dilation and groups.
#[test]
fn conv2d_gradients() -> Result<()> {
    let mut rng = Rng(0xC0417);
    let dev = &Device::Cpu;
    // (N, C, H, W), (Cout, k), stride, padding, dilation, groups
    let cases = [
        ([2, 3, 7, 6], (4, 3), 1, 1, 1, 1),
        ([1, 4, 9, 9], (6, 3), 2, 1, 1, 2),
        ([2, 2, 8, 7], (3, 3), 1, 2, 2, 1),
        ([1, 3, 5, 5], (2, 1), 1, 0, 1, 1),
        ([1, 4, 6, 6], (4, 2), 2, 0, 1, 4),
    ];
    for (dims, (cout, k), stride, padding, dilation, groups) in cases {
        let what = format!("conv2d {dims:?} -> {cout} k{k} s{stride} p{padding} d{dilation} g{groups}");
        let wdims = [cout, dims[1] / groups, k, k];
        let w = Tensor::from_vec(rng.uniforms(wdims.iter().product()), &wdims, dev)?;
        let by_input: Op = Box::new(move |x| conv2d(x, &w, stride, padding, dilation, groups));
        check(&format!("{what}, input"), dims, rng.uniforms(dims.iter().product()), &by_input, &mut rng)?;
        let x = Tensor::from_vec(rng.uniforms(dims.iter().product()), &dims, dev)?;
        let by_weight: Op = Box::new(move |w| conv2d(&x, w, stride, padding, dilation, groups));
        check(&format!("{what}, weight"), wdims, rng.uniforms(wdims.iter().product()), &by_weight, &mut rng)?;
    }
    Ok(())
}

/// Batch norm in training mode is not piecewise linear, so its finite
/// differences carry an O(eps^2) error; inputs are of order 1, which keeps
/// it far below the tolerance.
#[test]
fn batch_norm_gradients() -> Result<()> {
    let mut rng = Rng(0xB17);
    let dev = &Device::Cpu;
    for dims in [[4, 3, 5, 5], [2, 5, 3, 4], [8, 2, 1, 1]] {
        let c = dims[1];
        let weight = Tensor::from_vec(rng.uniforms(c), c, dev)?;
        let bias = Tensor::from_vec(rng.uniforms(c), c, dev)?;
        let (w, b) = (weight.clone(), bias.clone());
        let by_input: Op = Box::new(move |x| Ok(batch_norm_train(x, &w, &b, 1e-5)?.0));
        check(&format!("batch norm {dims:?}, input"), dims, rng.uniforms(dims.iter().product()), &by_input, &mut rng)?;
        let x = Tensor::from_vec(rng.uniforms(dims.iter().product()), &dims, dev)?;
        let (x2, b) = (x.clone(), bias.clone());
        let by_weight: Op = Box::new(move |w| Ok(batch_norm_train(&x2, &w.flatten_all()?, &b, 1e-5)?.0));
        check(&format!("batch norm {dims:?}, weight"), [c, 1, 1, 1], rng.uniforms(c), &by_weight, &mut rng)?;
        let by_bias: Op = Box::new(move |b| Ok(batch_norm_train(&x, &weight, &b.flatten_all()?, 1e-5)?.0));
        check(&format!("batch norm {dims:?}, bias"), [c, 1, 1, 1], rng.uniforms(c), &by_bias, &mut rng)?;
    }
    Ok(())
}
