//! Forward max and average pooling: against candle's own pools where they
//! apply (no padding, floor mode), and against hand-computed PyTorch results
//! with padding and ceil mode.

mod common;

use candle_core::{DType, Device, Result, Tensor};
use netc::graph::window_output;
use netc::runtime::ops::{avg_pool2d, max_pool2d};

use common::{Rng, arange, assert_close, values};

#[test]
fn match_candle_without_padding_in_floor_mode() -> Result<()> {
    let mut rng = Rng(0x5eed_0001);
    for dtype in [DType::F32, DType::F64] {
        for (k, s) in [(1, 1), (2, 2), (2, 1), (3, 1), (3, 2), (3, 3), (4, 3)] {
            let x = rng.tensor([2, 3, 9, 8], dtype);
            let ours = max_pool2d(&x, k, s, 0, false)?;
            let theirs = x.max_pool2d_with_stride(k, s)?;
            assert_eq!(ours.dims(), theirs.dims(), "max k{k} s{s}");
            assert_eq!(ours.dtype(), dtype);
            assert_eq!(values(&ours), values(&theirs), "max k{k} s{s} {dtype:?}");

            let ours = avg_pool2d(&x, k, s, 0, false)?;
            let theirs = x.avg_pool2d_with_stride(k, s)?;
            assert_eq!(ours.dims(), theirs.dims(), "avg k{k} s{s}");
            let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
            assert_close(&ours, &values(&theirs), tol);
        }
    }
    Ok(())
}

#[test]
fn pools_3_2_1() -> Result<()> {
    // torch.arange(16.).view(1, 1, 4, 4), kernel 3, stride 2, padding 1.
    let x = arange([1, 1, 4, 4]);
    assert_close(&max_pool2d(&x, 3, 2, 1, false)?, &[5., 7., 13., 15.], 0.0);
    assert_close(&avg_pool2d(&x, 3, 2, 1, false)?, &[10. / 9., 24. / 9., 51. / 9., 10.], 1e-15);
    // Padding never wins a max, even over negative values.
    let neg = (x.neg()? - 1.0)?;
    assert_close(&max_pool2d(&neg, 3, 2, 1, false)?, &[-1., -2., -5., -6.], 0.0);
    Ok(())
}

#[test]
fn pools_2_2_ceil_on_odd_size() -> Result<()> {
    // torch.arange(25.).view(1, 1, 5, 5), kernel 2, stride 2, ceil_mode=True:
    // the last windows hang past the input and average over what is inside.
    let x = arange([1, 1, 5, 5]);
    assert_eq!(max_pool2d(&x, 2, 2, 0, false)?.dims(), [1, 1, 2, 2]);
    assert_close(&max_pool2d(&x, 2, 2, 0, true)?, &[6., 8., 9., 16., 18., 19., 21., 23., 24.], 0.0);
    assert_close(&avg_pool2d(&x, 2, 2, 0, true)?, &[3., 5., 6.5, 13., 15., 16.5, 20.5, 22.5, 24.], 1e-15);
    Ok(())
}

#[test]
fn pools_3_2_1_ceil() -> Result<()> {
    // torch.arange(36.).view(1, 1, 6, 6), kernel 3, stride 2, padding 1,
    // ceil_mode=True: 4x4 outputs (3x3 in floor mode). The last window spans
    // rows 5..8 but the padded input ends at 7, so it divides by 2 along that
    // axis.
    let x = arange([1, 1, 6, 6]);
    assert_eq!(max_pool2d(&x, 3, 2, 1, false)?.dims(), [1, 1, 3, 3]);
    #[rustfmt::skip]
    let max = [
        7., 9., 11., 11.,
        19., 21., 23., 23.,
        31., 33., 35., 35.,
        31., 33., 35., 35.,
    ];
    assert_close(&max_pool2d(&x, 3, 2, 1, true)?, &max, 0.0);
    #[rustfmt::skip]
    let avg = [
        14. / 9., 30. / 9., 42. / 9., 16. / 6.,
        75. / 9., 14., 16., 8.5,
        147. / 9., 26., 28., 14.5,
        61. / 6., 16., 17., 8.75,
    ];
    assert_close(&avg_pool2d(&x, 3, 2, 1, true)?, &avg, 1e-15);
    Ok(())
}

#[test]
fn pools_3_1_1_keep_the_size() -> Result<()> {
    // torch.arange(9.).view(1, 1, 3, 3), kernel 3, stride 1, padding 1: the
    // divisor is always 9, padding included.
    let x = arange([1, 1, 3, 3]);
    assert_close(&max_pool2d(&x, 3, 1, 1, false)?, &[4., 5., 5., 7., 8., 8., 7., 8., 8.], 0.0);
    let avg = [8., 15., 12., 21., 36., 27., 20., 33., 24.].map(|v| v / 9.);
    assert_close(&avg_pool2d(&x, 3, 1, 1, false)?, &avg, 1e-15);
    Ok(())
}

#[test]
fn output_shapes_follow_window_output() -> Result<()> {
    let x = Tensor::zeros((1, 2, 12, 12), DType::F32, &Device::Cpu)?;
    for h in 1..=12 {
        for w in [1, 4, 7] {
            let x = x.narrow(2, 0, h)?.narrow(3, 0, w)?;
            for k in 1..=4 {
                for s in 1..=3 {
                    for p in 0..=k / 2 {
                        for ceil in [false, true] {
                            let want = window_output(h, k, s, p, ceil).zip(window_output(w, k, s, p, ceil));
                            for pool in [max_pool2d, avg_pool2d] {
                                let got = pool(&x, k, s, p, ceil);
                                match want {
                                    Some((oh, ow)) => assert_eq!(got?.dims(), [1, 2, oh, ow]),
                                    None => assert!(got.is_err(), "{h}x{w} k{k} s{s} p{p} ceil {ceil}"),
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn any_layout_and_both_float_dtypes() -> Result<()> {
    let mut rng = Rng(0x5eed_0002);
    let x = rng.tensor([2, 3, 9, 7], DType::F64);
    // A transposed view: non-contiguous strides.
    let view = x.transpose(2, 3)?;
    let copy = view.contiguous()?;
    for (k, s, p, ceil) in [(3, 2, 1, false), (3, 2, 1, true), (2, 2, 0, true), (3, 1, 1, false)] {
        for pool in [max_pool2d, avg_pool2d] {
            let want = values(&pool(&copy, k, s, p, ceil)?);
            assert_eq!(values(&pool(&view, k, s, p, ceil)?), want);
            let single = pool(&copy.to_dtype(DType::F32)?, k, s, p, ceil)?;
            assert_eq!(single.dtype(), DType::F32);
            assert_close(&single, &want, 1e-6);
        }
    }
    Ok(())
}

#[test]
fn bad_arguments_are_errors() {
    let x = Tensor::zeros((1, 1, 5, 5), DType::F32, &Device::Cpu).unwrap();
    for pool in [max_pool2d, avg_pool2d] {
        assert!(pool(&x, 3, 2, 2, false).is_err(), "padding above half the kernel");
        assert!(pool(&x, 0, 1, 0, false).is_err(), "kernel 0");
        assert!(pool(&x, 2, 0, 0, false).is_err(), "stride 0");
        assert!(pool(&x, 6, 1, 0, false).is_err(), "kernel larger than the input");
        assert!(pool(&x.squeeze(0).unwrap(), 2, 2, 0, false).is_err(), "rank 3");
        for dtype in [DType::U8, DType::BF16, DType::F16] {
            let err = pool(&x.to_dtype(dtype).unwrap(), 2, 2, 0, false).unwrap_err().to_string();
            assert!(err.contains("expected f32 or f64"), "{err}");
        }
    }
}
