//! How much of a heatmap lies on the object: the numbers behind the paper's visual comparison
//! of where networks look, and how noisy their maps are.

use serde::{Deserialize, Serialize};

/// One heatmap's scores (see [`score`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Share of the heat on the object (energy-based pointing game); None without a mask.
    pub energy_in_object: Option<f64>,
    /// Whether the hottest pixel is on the object (pointing game); None without a mask.
    pub pointing_hit: Option<bool>,
    /// Share of the heat held by the hottest 10% of pixels; higher is less noisy.
    pub concentration: f64,
}

/// Scores a non-negative heatmap [H, W] (normalised or not) against an optional object mask
/// of the same length (non-zero on the object). Negative and NaN values count as no heat.
///
/// - `energy_in_object`: heat on the mask / total heat; 0 when the total is 0.
/// - `pointing_hit`: whether the first maximum's pixel is on the object.
/// - `concentration`: share of the total heat in the hottest `ceil(0.1 * n)` pixels: 1 for a
///   one-hot map, `ceil(0.1 * n) / n` (0.1 when n is a multiple of 10) for a constant one, 0
///   when the total is 0. A measure of the paper's "noise": spread-out heat scores low.
pub fn score(heat: &[f32], mask: Option<&[u8]>) -> Scores {
    let heat: Vec<f64> = heat.iter().map(|&v| if v > 0.0 { v as f64 } else { 0.0 }).collect();
    let total: f64 = heat.iter().sum();
    let share = |part: f64| if total > 0.0 { part / total } else { 0.0 };

    let (energy_in_object, pointing_hit) = match mask {
        None => (None, None),
        Some(mask) => {
            assert_eq!(mask.len(), heat.len(), "mask and heatmap differ in size");
            let on: f64 = heat.iter().zip(mask).filter(|&(_, &m)| m != 0).map(|(v, _)| v).sum();
            // The first maximum: a later pixel must be strictly hotter to take over.
            let argmax = (0..heat.len()).fold(0, |best, i| if heat[i] > heat[best] { i } else { best });
            (Some(share(on)), mask.get(argmax).map(|&m| m != 0))
        }
    };

    let mut sorted = heat;
    sorted.sort_by(|a, b| b.total_cmp(a));
    let top = sorted.len().div_ceil(10);
    let concentration = share(sorted[..top].iter().sum());

    Scores { energy_in_object, pointing_hit, concentration }
}

/// Scores averaged over images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean energy in the object over the images that have a mask.
    pub energy_in_object: Option<f64>,
    /// Hit rate of the pointing game over the images that have a mask.
    pub pointing_game: Option<f64>,
    /// Mean concentration over all images (0 for none).
    pub concentration: f64,
    /// How many images were scored.
    pub images: usize,
    /// Mean deletion score ([`curve_area`] of the true-class probability as
    /// the hottest pixels go; lower is better), which needs no mask; None
    /// where it was not computed.
    #[serde(default)]
    pub deletion: Option<f64>,
    /// The same with the pixels removed in a random order: the baseline
    /// that `deletion` should be below.
    #[serde(default)]
    pub deletion_random: Option<f64>,
}

/// `summary` with the means of per-image deletion scores (heatmap order,
/// random order) filled in; None for none.
pub fn with_deletion(summary: Summary, values: &[(f64, f64)]) -> Summary {
    let n = values.len() as f64;
    let mean = |f: fn(&(f64, f64)) -> f64| (!values.is_empty()).then(|| values.iter().map(f).sum::<f64>() / n);
    Summary { deletion: mean(|v| v.0), deletion_random: mean(|v| v.1), ..summary }
}

/// Averages `scores`; a masked average is None when no image had a mask.
pub fn summarize(scores: &[Scores]) -> Summary {
    fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
        let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        (n > 0).then(|| sum / n as f64)
    }
    Summary {
        energy_in_object: mean(scores.iter().filter_map(|s| s.energy_in_object)),
        pointing_game: mean(scores.iter().filter_map(|s| s.pointing_hit.map(|h| h as u8 as f64))),
        concentration: mean(scores.iter().map(|s| s.concentration)).unwrap_or(0.0),
        images: scores.len(),
        deletion: None,
        deletion_random: None,
    }
}

/// Steps of the deletion curve: the hottest 0, 1/STEPS, ..., all of the
/// pixels removed.
pub const DELETION_STEPS: usize = 10;

/// Pixel positions of an `[H, W]` heatmap, hottest first; NaN counts as no
/// heat, and equal values keep their order (so the result is deterministic).
pub fn hottest_first(heat: &[f32]) -> Vec<usize> {
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let mut order: Vec<usize> = (0..heat.len()).collect();
    order.sort_by(|&a, &b| key(heat[b]).total_cmp(&key(heat[a])).then(a.cmp(&b)));
    order
}

/// The deletion curve's inputs: `steps + 1` copies of a normalised image
/// `[C, H, W]` (channel-major) in which the first `round(k / steps * H*W)`
/// pixels of `order` (every channel of each) are set to `fill`, for
/// k = 0..=steps. With `fill` 0 on a normalised image, a removed pixel
/// becomes the training set's mean colour, which carries no evidence.
pub fn deletion_images(
    image: &[f32],
    [c, h, w]: [usize; 3],
    order: &[usize],
    steps: usize,
    fill: f32,
) -> Vec<Vec<f32>> {
    let plane = h * w;
    assert_eq!(image.len(), c * plane, "image and shape differ");
    let steps = steps.max(1);
    (0..=steps)
        .map(|k| {
            let mut img = image.to_vec();
            let removed = ((k as f64 / steps as f64) * plane as f64).round() as usize;
            for &p in order.iter().take(removed.min(plane)) {
                for ch in 0..c {
                    img[ch * plane + p] = fill;
                }
            }
            img
        })
        .collect()
}

/// The area under a curve of evenly spaced values on [0, 1] (trapezoids):
/// for the deletion curve, the mean true-class probability as the hottest
/// pixels go; lower means the heatmap found what the decision rests on.
/// 0 for no values, the value itself for one.
pub fn curve_area(values: &[f64]) -> f64 {
    match values.len() {
        0 => 0.0,
        1 => values[0],
        n => values.windows(2).map(|p| (p[0] + p[1]) / 2.0).sum::<f64>() / (n - 1) as f64,
    }
}

/// Softmax probability of `class` from one image's logits (stable).
pub fn class_probability(logits: &[f32], class: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits.get(class).map_or(0.0, |&l| (l as f64 - max).exp() / sum)
}
