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
    }
}
