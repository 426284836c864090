//! Forward nearest and bilinear resizing: against candle's own resizing where
//! it agrees with PyTorch, and against hand-computed PyTorch results.

mod common;

use candle_core::{DType, Device, Result, Tensor};
use netc::runtime::ops::{upsample_bilinear2d, upsample_nearest2d};

use common::{Rng, arange, assert_close, values};

fn tensor(v: &[f64], dims: [usize; 4]) -> Tensor {
    Tensor::from_slice(v, &dims, &Device::Cpu).unwrap()
}

#[test]
fn nearest_matches_candle_for_integer_factors() -> Result<()> {
    let mut rng = Rng(0x5eed_0101);
    for dtype in [DType::F32, DType::F64] {
        for (fh, fw) in [(1, 1), (2, 2), (2, 3), (3, 1), (4, 4), (5, 7)] {
            let x = rng.tensor([2, 3, 5, 4], dtype);
            let ours = upsample_nearest2d(&x, [5 * fh, 4 * fw])?;
            let theirs = x.upsample_nearest2d(5 * fh, 4 * fw)?;
            assert_eq!(ours.dims(), [2, 3, 5 * fh, 4 * fw]);
            assert_eq!(ours.dtype(), dtype);
            assert_eq!(values(&ours), values(&theirs), "factors {fh}x{fw} {dtype:?}");
        }
    }
    Ok(())
}

#[test]
fn bilinear_matches_candle() -> Result<()> {
    // candle's upsample_bilinear2d implements both align_corners settings
    // with PyTorch's formulas (in f64 arithmetic), so it agrees with ours up
    // to rounding, for any sizes.
    let mut rng = Rng(0x5eed_0102);
    for dtype in [DType::F32, DType::F64] {
        for size in [[10, 8], [7, 13], [3, 3], [5, 2], [1, 1], [1, 6], [16, 1]] {
            for align_corners in [false, true] {
                let x = rng.tensor([2, 3, 5, 4], dtype);
                let ours = upsample_bilinear2d(&x, size, align_corners)?;
                let theirs = x.upsample_bilinear2d(size[0], size[1], align_corners)?;
                assert_eq!(ours.dims(), theirs.dims());
                assert_eq!(ours.dtype(), dtype);
                let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
                assert_close(&ours, &values(&theirs), tol);
            }
        }
    }
    Ok(())
}

#[test]
fn nearest_by_hand() -> Result<()> {
    // 2x3 -> 3x5: rows from [0, 0, 1], columns from [0, 0, 1, 1, 2].
    let x = arange([1, 1, 2, 3]);
    assert_close(&upsample_nearest2d(&x, [3, 5])?, &[0., 0., 1., 1., 2., 0., 0., 1., 1., 2., 3., 3., 4., 4., 5.], 0.0);
    // Down-sizing 8 -> 3 takes floor(d * 8 / 3) = 0, 2, 5.
    let x = arange([1, 1, 8, 8]);
    assert_close(&upsample_nearest2d(&x, [3, 3])?, &[0., 2., 5., 16., 18., 21., 40., 42., 45.], 0.0);
    Ok(())
}

#[test]
fn nearest_rounds_as_pytorch_in_the_dtype() -> Result<()> {
    // PyTorch computes floor(d * (in / out)) in the tensor's dtype: resizing 2
    // to 82, output 41 is at 41 * (2f32 / 82f32) = 0.99999994 in f32, so it
    // takes source 0, but at exactly 1 in f64, so it takes source 1.
    let x = tensor(&[10., 20.], [1, 1, 1, 2]);
    let at_41 = |dtype| -> Result<f64> {
        let y = upsample_nearest2d(&x.to_dtype(dtype)?, [1, 82])?;
        Ok(values(&y)[41])
    };
    assert_eq!(at_41(DType::F32)?, 10.);
    assert_eq!(at_41(DType::F64)?, 20.);
    Ok(())
}

#[test]
fn bilinear_by_hand() -> Result<()> {
    // [0, 1] -> 4: half-pixel centres at -0.25 (clamped to 0), 0.25, 0.75,
    // 1.25 (clamped to the last element); aligned corners at thirds.
    let x = tensor(&[0., 1.], [1, 1, 1, 2]);
    assert_close(&upsample_bilinear2d(&x, [1, 4], false)?, &[0., 0.25, 0.75, 1.], 1e-15);
    assert_close(&upsample_bilinear2d(&x, [1, 4], true)?, &[0., 1. / 3., 2. / 3., 1.], 1e-15);

    // [[0, 1], [2, 3]] -> 3x3 with aligned corners.
    let x = arange([1, 1, 2, 2]);
    assert_close(&upsample_bilinear2d(&x, [3, 3], true)?, &[0., 0.5, 1., 1., 1.5, 2., 2., 2.5, 3.], 1e-15);

    // A single output: the centre without align_corners, the first element with.
    let x = tensor(&[0., 1., 4., 9.], [1, 1, 1, 4]);
    assert_close(&upsample_bilinear2d(&x, [1, 1], false)?, &[2.5], 1e-15);
    assert_close(&upsample_bilinear2d(&x, [1, 1], true)?, &[0.], 1e-15);
    Ok(())
}

#[test]
fn bilinear_down_sizing_by_hand() -> Result<()> {
    // x[r][c] = r^2 + 10 c, 8x8 -> 3x3. Interpolation weights sum to 1, so
    // the result is the interpolated r^2 plus 10 times the interpolated c.
    let v: Vec<f64> = (0..64).map(|i| ((i / 8) * (i / 8)) as f64 + 10. * (i % 8) as f64).collect();
    let x = tensor(&v, [1, 1, 8, 8]);
    let expected = |squares: [f64; 3], coords: [f64; 3]| -> Vec<f64> {
        squares.iter().flat_map(|s| coords.iter().map(move |c| s + 10. * c)).collect()
    };
    // Half-pixel: sources 8/3 (d + 0.5) - 0.5 = 5/6, 3.5, 37/6; squares
    // interpolate to 5/6, 9 + 3.5 = 12.5, 36 + 13/6.
    let want = expected([5. / 6., 12.5, 36. + 13. / 6.], [5. / 6., 3.5, 37. / 6.]);
    assert_close(&upsample_bilinear2d(&x, [3, 3], false)?, &want, 1e-14);
    // Aligned corners: sources 0, 3.5, 7.
    let want = expected([0., 12.5, 49.], [0., 3.5, 7.]);
    assert_close(&upsample_bilinear2d(&x, [3, 3], true)?, &want, 1e-14);
    Ok(())
}

#[test]
fn any_layout_and_both_float_dtypes() -> Result<()> {
    let mut rng = Rng(0x5eed_0103);
    let x = rng.tensor([2, 3, 6, 5], DType::F64);
    let view = x.transpose(2, 3)?;
    let copy = view.contiguous()?;
    for size in [[12, 10], [3, 4], [7, 9]] {
        let want = values(&upsample_nearest2d(&copy, size)?);
        assert_eq!(values(&upsample_nearest2d(&view, size)?), want);
        for align_corners in [false, true] {
            let want = values(&upsample_bilinear2d(&copy, size, align_corners)?);
            assert_eq!(values(&upsample_bilinear2d(&view, size, align_corners)?), want);
            let single = upsample_bilinear2d(&copy.to_dtype(DType::F32)?, size, align_corners)?;
            assert_eq!(single.dtype(), DType::F32);
            assert_close(&single, &want, 1e-6);
        }
    }
    Ok(())
}

#[test]
fn bad_arguments_are_errors() {
    let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(upsample_nearest2d(&x, [0, 4]).is_err());
    assert!(upsample_bilinear2d(&x, [4, 0], false).is_err());
    assert!(upsample_nearest2d(&x.narrow(2, 0, 0).unwrap(), [4, 4]).is_err(), "empty input");
    assert!(upsample_bilinear2d(&x.squeeze(0).unwrap(), [4, 4], true).is_err(), "rank 3");
    for dtype in [DType::U8, DType::BF16, DType::F16] {
        let x = x.to_dtype(dtype).unwrap();
        for err in [upsample_nearest2d(&x, [8, 8]).unwrap_err(), upsample_bilinear2d(&x, [8, 8], false).unwrap_err()] {
            assert!(err.to_string().contains("expected f32 or f64"), "{err}");
        }
    }
}
