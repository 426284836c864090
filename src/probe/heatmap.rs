//! Heatmaps from probe activations, after "Deep Features Analysis with Attention Networks":
//! a feature map [C, h, w] is [`aggregate`]d over channels, [`resize`]d to the input size,
//! [`normalize`]d to [0, 1] (per image, or by one shared [`range`]) and drawn with the jet
//! colour map, alone ([`colour`]) or blended over the image ([`overlay`]).
//!
//! Everything here is plain slices in, plain values out: no tensors, no device.

use image::{Rgb, RgbImage};

use crate::figure::jet;
use crate::recipe::Aggregate;

/// One image's activation `act` [C, h, w] (row-major) to a map [h, w].
///
/// - `Mean`: mean over channels (the paper's choice).
/// - `Max`: max over channels.
/// - `L2`: square root of the sum of squares over channels.
/// - `Gradcam`: each channel weighted by the mean of `grad` over (h, w), summed, then relu.
///
/// `grad` (same shape as `act`) is required for `Gradcam` and ignored otherwise. Errors on a
/// missing gradient, zero channels or a slice whose length does not match the shape.
pub fn aggregate(act: &[f32], grad: Option<&[f32]>, [c, h, w]: [usize; 3], how: Aggregate) -> Result<Vec<f32>, String> {
    let hw = h * w;
    if act.len() != c * hw {
        return Err(format!("activation has {} values, shape [{c}, {h}, {w}] needs {}", act.len(), c * hw));
    }
    if c == 0 {
        return Err("activation has no channels".into());
    }
    let channels = || act.chunks_exact(hw.max(1)).take(c);
    let mut map = match how {
        Aggregate::Max => vec![f32::NEG_INFINITY; hw],
        _ => vec![0.0; hw],
    };
    match how {
        Aggregate::Mean => {
            for ch in channels() {
                map.iter_mut().zip(ch).for_each(|(m, &a)| *m += a);
            }
            map.iter_mut().for_each(|m| *m /= c as f32);
        }
        Aggregate::Max => {
            for ch in channels() {
                map.iter_mut().zip(ch).for_each(|(m, &a)| *m = m.max(a));
            }
        }
        Aggregate::L2 => {
            for ch in channels() {
                map.iter_mut().zip(ch).for_each(|(m, &a)| *m += a * a);
            }
            map.iter_mut().for_each(|m| *m = m.sqrt());
        }
        Aggregate::Gradcam => {
            let grad = grad.ok_or("gradcam needs the gradient of the score at the probe")?;
            if grad.len() != act.len() {
                return Err(format!("gradient has {} values, activation {}", grad.len(), act.len()));
            }
            for (ch, g) in channels().zip(grad.chunks_exact(hw.max(1))) {
                let weight = g.iter().sum::<f32>() / hw.max(1) as f32;
                map.iter_mut().zip(ch).for_each(|(m, &a)| *m += weight * a);
            }
            map.iter_mut().for_each(|m| *m = m.max(0.0));
        }
    }
    Ok(map)
}

/// Bilinear resize of a [h, w] map to [out_h, out_w] with PyTorch's `align_corners=false`
/// semantics: pixel centres sit at half-integers, and source coordinates are clamped to the
/// map. An empty source gives zeros.
pub fn resize(map: &[f32], [h, w]: [usize; 2], [out_h, out_w]: [usize; 2]) -> Vec<f32> {
    assert_eq!(map.len(), h * w, "map length does not match [{h}, {w}]");
    if h == 0 || w == 0 {
        return vec![0.0; out_h * out_w];
    }
    // For each output index: the two source indices and the weight of the second.
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let step = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let src = ((o as f32 + 0.5) * step - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let (ys, xs) = (taps(h, out_h), taps(w, out_w));
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let at = |y: usize, x: usize| map[y * w + x];
            let top = at(y0, x0) * (1.0 - lx) + at(y0, x1) * lx;
            let bottom = at(y1, x0) * (1.0 - lx) + at(y1, x1) * lx;
            out.push(top * (1.0 - ly) + bottom * ly);
        }
    }
    out
}

/// The (min, max) over several maps, for one shared scale across images, layers or networks.
/// NaN and infinite values are ignored (an infinity would flatten every other value to 0 or 1);
/// with no finite value at all the range is (0, 0).
pub fn range<'a>(maps: impl IntoIterator<Item = &'a [f32]>) -> (f32, f32) {
    let (lo, hi) = maps
        .into_iter()
        .flatten()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

/// Scales to [0, 1] by (lo, hi): `(v - lo) / (hi - lo)`, clamped. When `hi <= lo` (a constant
/// map) every value becomes 0; NaN values also become 0, so the result is always finite.
pub fn normalize(map: &[f32], (lo, hi): (f32, f32)) -> Vec<f32> {
    let span = hi - lo;
    if span.is_nan() || span <= 0.0 {
        return vec![0.0; map.len()];
    }
    map.iter()
        .map(|&v| {
            let t = (v - lo) / span;
            if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) }
        })
        .collect()
}

/// The image (CHW u8, 3 channels or 1 grey) with `heat` ([h, w] in [0, 1]) coloured by
/// [`jet`] and blended: `out = (1 - alpha) * image + alpha * jet(heat)`, rounded.
/// The paper blends at about alpha = 0.5.
pub fn overlay(image: &[u8], [c, h, w]: [usize; 3], heat: &[f32], alpha: f32) -> RgbImage {
    assert_eq!(heat.len(), h * w, "heat length does not match [{h}, {w}]");
    let mut out = to_rgb(image, [c, h, w]);
    let alpha = alpha.clamp(0.0, 1.0);
    for (px, &v) in out.pixels_mut().zip(heat) {
        let hot = jet(v);
        for (p, j) in px.0.iter_mut().zip(hot) {
            *p = ((1.0 - alpha) * *p as f32 + alpha * j as f32).round() as u8;
        }
    }
    out
}

/// The heat ([h, w] in [0, 1]) alone as a jet-coloured image.
pub fn colour(heat: &[f32], [h, w]: [usize; 2]) -> RgbImage {
    assert_eq!(heat.len(), h * w, "heat length does not match [{h}, {w}]");
    RgbImage::from_fn(w as u32, h as u32, |x, y| Rgb(jet(heat[y as usize * w + x as usize])))
}

/// The plain image (CHW u8, 3 channels or 1 grey) as an [`RgbImage`].
pub fn to_rgb(image: &[u8], [c, h, w]: [usize; 3]) -> RgbImage {
    assert!(c == 1 || c == 3, "an image has 1 or 3 channels, not {c}");
    assert_eq!(image.len(), c * h * w, "image length does not match [{c}, {h}, {w}]");
    let plane = h * w;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        // Grey repeats its one plane; colour reads plane k for channel k.
        Rgb(std::array::from_fn(|k| image[if c == 1 { i } else { k * plane + i }]))
    })
}
