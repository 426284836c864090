//! A model's heatmaps at its probes.

use candle_core::{D, DType, Result, Tensor};

use super::{heatmap, score};
use crate::recipe::Aggregate;
use crate::runtime::{Mode, Model};

/// The heatmaps of one probe: for each image, an `[H, W]` map at the
/// input's size, before any normalisation.
#[derive(Clone, Debug)]
pub struct ProbeMaps {
    pub probe: String,
    pub maps: Vec<Vec<f32>>,
}

/// Runs `model` in evaluation mode on `images` `[N, C, H, W]` (normalised
/// as in training; on any device, moved to the model's) and returns the heatmaps of each probe. Grad-CAM weighs
/// the channels by the gradient of `class`'s logit, or of each image's
/// predicted class.
pub fn probe_maps(
    model: &mut Model,
    images: &Tensor,
    probes: &[String],
    how: Aggregate,
    class: Option<usize>,
) -> Result<Vec<ProbeMaps>> {
    let names: Vec<&str> = probes.iter().map(String::as_str).collect();
    let images = &images.to_device(model.device())?;
    let (out, taps) = if how == Aggregate::Gradcam {
        model.forward_tapped(images, &names)?
    } else {
        (model.forward(images, Mode::Eval, &names, 0)?, Default::default())
    };
    let grads = if how == Aggregate::Gradcam {
        let target = match class {
            Some(c) => Tensor::full(c as u32, images.dim(0)?, images.device())?,
            None => out.logits.argmax(D::Minus1)?,
        };
        Some(out.logits.gather(&target.unsqueeze(1)?, 1)?.sum_all()?.backward()?)
    } else {
        None
    };
    let (n, _, h, w) = images.dims4()?;
    probes
        .iter()
        .map(|name| {
            let act = out
                .probes
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("the net has no probe `{name}`")))?;
            let (_, c, ph, pw) = act.dims4().map_err(|_| {
                candle_core::Error::Msg(format!(
                    "probe `{name}` is {:?}, not a feature map [C, H, W]",
                    &act.dims()[1..]
                ))
            })?;
            let grad = match &grads {
                Some(g) => Some(
                    taps.get(name)
                        .and_then(|t| g.get(t.as_tensor()))
                        .ok_or_else(|| candle_core::Error::Msg(format!("no gradient reaches probe `{name}`")))?
                        .to_dtype(DType::F32)?
                        .flatten_all()?
                        .to_vec1::<f32>()?,
                ),
                None => None,
            };
            let act = act.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let per_image = c * ph * pw;
            let maps = (0..n)
                .map(|i| {
                    let one = &act[i * per_image..(i + 1) * per_image];
                    let g = grad.as_ref().map(|g| &g[i * per_image..(i + 1) * per_image]);
                    let small = heatmap::aggregate(one, g, [c, ph, pw], how).map_err(candle_core::Error::Msg)?;
                    Ok(heatmap::resize(&small, [ph, pw], [h, w]))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ProbeMaps { probe: name.clone(), maps })
        })
        .collect()
}

/// The deletion score of each image of a batch (`images` `[N, C, H, W]`,
/// normalised; `labels` their classes) for its heatmap in `maps`: the area
/// under the true-class probability as the hottest pixels are set to the
/// mean colour (0 after normalisation) in [`score::DELETION_STEPS`] steps
/// ([`score::curve_area`]); lower is better. Needs no object mask. Each
/// comes with the same score for the pixels in a random order (seeded by
/// the image's place in the batch), the baseline a heatmap must beat.
pub fn deletion_scores(
    model: &mut Model,
    images: &Tensor,
    labels: &[u32],
    maps: &[Vec<f32>],
) -> Result<Vec<(f64, f64)>> {
    let (n, c, h, w) = images.dims4()?;
    let steps = score::DELETION_STEPS;
    (0..n.min(maps.len()).min(labels.len()))
        .map(|j| {
            let image = images.get(j)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let hot = score::hottest_first(&maps[j]);
            let mut random: Vec<usize> = (0..h * w).collect();
            crate::rng::Rng::new(crate::rng::mix(&[DELETION_SEED, j as u64])).shuffle(&mut random);
            let variants: Vec<f32> = [hot, random]
                .iter()
                .flat_map(|order| score::deletion_images(&image, [c, h, w], order, steps, 0.0))
                .flatten()
                .collect();
            let batch = Tensor::from_vec(variants, (2 * (steps + 1), c, h, w), model.device())?;
            let logits = model.forward(&batch, Mode::Eval, &[], 0)?.logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            let curve: Vec<f64> = logits.iter().map(|l| score::class_probability(l, labels[j] as usize)).collect();
            Ok((score::curve_area(&curve[..=steps]), score::curve_area(&curve[steps + 1..])))
        })
        .collect()
}

/// The seed of the random pixel order that deletion is compared with.
const DELETION_SEED: u64 = 0xde1e7e;
