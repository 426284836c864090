//! netc's convolution against candle's own `conv2d` forward (which agrees
//! with PyTorch, see docs/decisions.md) and its gradients against candle's
//! backward, on random shapes with stride, padding, dilation and groups.

use candle_core::{Device, Result, Tensor, Var};
use netc::runtime::ops::conv2d;

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
}

#[test]
fn conv2d_matches_candle_forward_and_backward() -> Result<()> {
    let dev = &Device::Cpu;
    // (N, C, H, W), Cout, k, stride, padding, dilation, groups
    let cases = [
        ((2, 3, 32, 32), 16, 3, 1, 1, 1, 1),
        ((2, 8, 15, 17), 8, 3, 2, 1, 1, 1),
        ((1, 8, 16, 16), 12, 3, 1, 2, 2, 1),
        ((2, 8, 12, 12), 8, 3, 1, 1, 1, 4),
        ((1, 6, 9, 9), 4, 1, 1, 0, 1, 1),
        ((1, 3, 20, 20), 5, 7, 2, 3, 1, 1),
        ((2, 4, 11, 11), 6, 5, 3, 2, 2, 2),
    ];
    for (dims, cout, k, stride, padding, dilation, groups) in cases {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, dims, dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.3, (cout, dims.1 / groups, k, k), dev)?)?;
        let ours = conv2d(x.as_tensor(), w.as_tensor(), stride, padding, dilation, groups)?;
        let theirs = x.as_tensor().conv2d(w.as_tensor(), padding, stride, dilation, groups)?;
        assert_eq!(ours.dims(), theirs.dims());
        let what = format!("{dims:?} -> {cout} k{k} s{stride} p{padding} d{dilation} g{groups}");
        assert!(max_diff(&ours, &theirs)? < 1e-4, "{what}: forward differs");
        let weights = Tensor::randn(0f32, 1.0, ours.shape(), dev)?;
        let g_ours = (&ours * &weights)?.sum_all()?.backward()?;
        let g_theirs = (&theirs * &weights)?.sum_all()?.backward()?;
        for (name, v) in [("input", &x), ("weight", &w)] {
            let (a, b) = (g_ours.get(v.as_tensor()).expect("grad"), g_theirs.get(v.as_tensor()).expect("grad"));
            let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            assert!(max_diff(a, b)? / scale < 1e-4, "{what}: {name} gradient differs");
        }
    }
    Ok(())
}
