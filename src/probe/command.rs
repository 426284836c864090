//! `netc probe`: heatmaps of test images at a net's probes, written as
//! overlays, raw maps, a figure and scores. `netc run` calls [`draw`] at the
//! end of training.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::score::{Scores, Summary, score, summarize};
use super::{grid, heatmap, probe_maps};
use crate::data::{self, Dataset, Normalize};
use crate::figure::save_png;
use crate::recipe::{HeatmapScale, ProbeSettings};
use crate::runtime::Model;

/// Per probe, the score summary of its heatmaps.
pub type ProbeScores = BTreeMap<String, Summary>;

/// Draws the heatmaps of the first `settings.count` images of `images` at
/// `probes` into `out`: `<probe>/<i>.png` overlays, `heatmaps.safetensors`
/// (the raw maps, `[N, H, W]` per probe), `figure.png` (rows: images;
/// columns: the image, then each probe) and `scores.json`.
pub fn draw(
    model: &mut Model,
    images: &Arc<Dataset>,
    norm: Normalize,
    probes: &[String],
    settings: &ProbeSettings,
    out: &Path,
) -> Result<ProbeScores, String> {
    let err = |e: candle_core::Error| e.to_string();
    let count = settings.count.min(images.len()).max(1);
    let batch = data::batches(images.clone(), count, false, &[], norm, 0, 0, model.device().clone())
        .next()
        .ok_or("no images to draw heatmaps of")?
        .map_err(err)?;
    let all = probe_maps(model, &batch.images, probes, settings.aggregate, None).map_err(err)?;
    let [c, h, w] = images.shape;
    let shared = heatmap::range(all.iter().flat_map(|p| p.maps.iter().map(Vec::as_slice)));
    let mut scores = ProbeScores::new();
    let mut raw = HashMap::new();
    let mut columns: Vec<Vec<image::RgbImage>> = Vec::new();
    for p in &all {
        let dir = out.join(&p.probe);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        let mut per_image: Vec<Scores> = Vec::new();
        let mut tiles = Vec::new();
        for (i, map) in p.maps.iter().enumerate() {
            let range = match settings.scale {
                HeatmapScale::Image => heatmap::range([map.as_slice()]),
                HeatmapScale::Shared => shared,
            };
            let heat = heatmap::normalize(map, range);
            // Scores read each map on its own scale, so they do not depend on the display scale.
            per_image.push(score(&heatmap::normalize(map, heatmap::range([map.as_slice()])), images.mask(i)));
            let tile = heatmap::overlay(images.image(i), [c, h, w], &heat, 0.5);
            let path = dir.join(format!("{i}.png"));
            save_png(&tile, &path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
            tiles.push(tile);
        }
        scores.insert(p.probe.clone(), summarize(&per_image));
        let flat: Vec<f32> = p.maps.iter().flatten().copied().collect();
        raw.insert(p.probe.clone(), Tensor::from_vec(flat, (p.maps.len(), h, w), &Device::Cpu).map_err(err)?);
        columns.push(tiles);
    }
    let maps_path = out.join("heatmaps.safetensors");
    candle_core::safetensors::save(&raw, &maps_path)
        .map_err(|e| format!("cannot write `{}`: {e}", maps_path.display()))?;
    let rows: Vec<Vec<image::RgbImage>> = (0..count)
        .map(|i| {
            std::iter::once(heatmap::to_rgb(images.image(i), [c, h, w]))
                .chain(columns.iter().map(|col| col[i].clone()))
                .collect()
        })
        .collect();
    let titles: Vec<String> = std::iter::once("image".to_string()).chain(probes.iter().cloned()).collect();
    let labels: Vec<String> = (0..count).map(|i| images.classes[images.labels[i] as usize].clone()).collect();
    let figure = grid::grid(&rows, &titles, &labels, zoom(h));
    let fig_path = out.join("figure.png");
    save_png(&figure, &fig_path).map_err(|e| format!("cannot write `{}`: {e}", fig_path.display()))?;
    let json = serde_json::to_string_pretty(&scores).expect("serialisable");
    std::fs::write(out.join("scores.json"), json).map_err(|e| format!("cannot write scores: {e}"))?;
    Ok(scores)
}

/// Small images are magnified so that a person can see them.
pub(super) fn zoom(side: usize) -> u32 {
    (128 / side.max(1)).clamp(1, 4) as u32
}

/// The scores as a Markdown table, with the untrained network's beside
/// them when given (`--sanity`).
pub fn scores_table(trained: &ProbeScores, untrained: Option<&ProbeScores>) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut out = String::from("| probe | energy in object | pointing game | concentration (top 10%) |");
    if untrained.is_some() {
        out += " untrained: energy | pointing | concentration |";
    }
    out += "\n|---|---|---|---|";
    if untrained.is_some() {
        out += "---|---|---|";
    }
    out.push('\n');
    for (probe, s) in trained {
        out += &format!(
            "| {probe} | {} | {} | {:.1}% |",
            pct(s.energy_in_object),
            pct(s.pointing_game),
            100.0 * s.concentration
        );
        if let Some(u) = untrained.and_then(|u| u.get(probe)) {
            out +=
                &format!(" {} | {} | {:.1}% |", pct(u.energy_in_object), pct(u.pointing_game), 100.0 * u.concentration);
        }
        out.push('\n');
    }
    out
}

/// What `netc probe` was asked for.
pub struct ProbeRequest<'a> {
    pub graph: &'a crate::graph::Graph,
    pub weights: &'a Path,
    pub source: &'a crate::recipe::DataSource,
    /// Probe names; all of the net's when empty.
    pub probes: Vec<String>,
    pub settings: ProbeSettings,
    pub out: &'a Path,
    /// Also draw and score the same net with fresh, untrained weights.
    pub sanity: bool,
    pub device: Device,
}

/// `netc probe`: returns the scores table.
pub fn probe_command(r: &ProbeRequest) -> Result<String, String> {
    let (mut model, norm) = crate::checkpoint::load_model(r.graph, r.weights, &r.device)?;
    let known: Vec<String> = r.graph.probes.iter().map(|p| p.name.clone()).collect();
    let probes = if r.probes.is_empty() { known.clone() } else { r.probes.clone() };
    if let Some(bad) = probes.iter().find(|p| !known.contains(p)) {
        return Err(format!("net `{}` has no probe `{bad}`; its probes are {}", r.graph.name, known.join(", ")));
    }
    if probes.is_empty() {
        return Err(format!("net `{}` has no probes; add `probe name = value` to the spec", r.graph.name));
    }
    let shape = r.graph.image_shape()?;
    let images =
        data::load(r.source, data::Split::Test, shape, Some(r.settings.count), 0).map_err(|e| e.to_string())?;
    let images = Arc::new(images);
    let trained = draw(&mut model, &images, norm, &probes, &r.settings, r.out)?;
    let untrained = if r.sanity {
        let mut fresh = Model::new(r.graph, &r.device, 1).map_err(|e| e.to_string())?;
        Some(draw(&mut fresh, &images, norm, &probes, &r.settings, &r.out.join("untrained"))?)
    } else {
        None
    };
    let table = scores_table(&trained, untrained.as_ref());
    std::fs::write(r.out.join("scores.md"), &table).map_err(|e| format!("cannot write scores: {e}"))?;
    Ok(table)
}
