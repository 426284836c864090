//! `netc probe`: heatmaps of test images at a net's probes, written as
//! overlays, raw maps, a figure and scores. `netc run` calls [`draw`] at the
//! end of training.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;

use super::score::{Scores, Summary, score, summarize, with_deletion};
use super::{grid, heatmap, probe_maps};
use crate::data::{self, Dataset, Normalize};
use crate::figure::save_png;
use crate::recipe::{Aggregate, HeatmapScale, ProbeSettings};
use crate::runtime::Model;

/// Per probe, the score summary of its heatmaps.
pub type ProbeScores = BTreeMap<String, Summary>;

/// Set by the Ctrl-C handler of `netc probe`: drawing stops after the
/// current batch and the unfinished folder is removed.
pub static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Images per forward pass when drawing heatmaps: memory does not grow
/// with the number of images.
pub const PROBE_BATCH: usize = 16;

/// Rows of `figure.png`: the first images drawn (every image gets its
/// overlays, raw maps and scores).
pub const FIGURE_ROWS: usize = 16;

/// Draws the heatmaps of every image of `images` (chosen by
/// [`data::probe_images`]) at `probes` into `out`: `<probe>/<i>.png`
/// overlays, `heatmaps.safetensors` (the raw maps, `[N, H, W]` per probe),
/// `images.csv` (which test images, by their position in the split),
/// `figure.png` (rows: the first [`FIGURE_ROWS`] images; columns: the
/// image, then each probe; a title and a colour bar per probe) and
/// `scores.json`. Images go through the net [`PROBE_BATCH`] at a time, and
/// the raw maps straight to disk, so memory does not depend on the count.
pub fn draw(
    model: &mut Model,
    images: &Arc<Dataset>,
    norm: Normalize,
    probes: &[String],
    settings: &ProbeSettings,
    out: &Path,
) -> Result<ProbeScores, String> {
    draw_titled(model, images, norm, probes, settings, out, "")
}

/// [`draw`], with `prefix` at the start of the figure's title (`untrained
/// weights: ` for `--sanity`).
fn draw_titled(
    model: &mut Model,
    images: &Arc<Dataset>,
    norm: Normalize,
    probes: &[String],
    settings: &ProbeSettings,
    out: &Path,
    prefix: &str,
) -> Result<ProbeScores, String> {
    let err = |e: candle_core::Error| e.to_string();
    let n = images.len();
    if n == 0 {
        return Err("no test images to draw heatmaps of".to_string());
    }
    let [c, h, w] = images.shape;
    for p in probes {
        let dir = out.join(p);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let mut raw = RawMaps::create(&out.join("heatmaps.safetensors"), probes, [n, h, w])?;
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); probes.len()];
    let mut per_image: Vec<Vec<Scores>> = vec![Vec::with_capacity(n); probes.len()];
    let mut deletion: Vec<Vec<(f64, f64)>> = vec![Vec::with_capacity(n); probes.len()];
    let mut columns: Vec<Vec<image::RgbImage>> = vec![Vec::new(); probes.len()];
    let shown = n.min(FIGURE_ROWS);
    let overlay = |k: usize, i: usize, heat: &[f32], columns: &mut Vec<Vec<image::RgbImage>>| {
        let tile = heatmap::overlay(images.image(i), [c, h, w], heat, 0.5);
        let path = out.join(&probes[k]).join(format!("{i}.png"));
        save_png(&tile, &path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        if i < shown {
            columns[k].push(tile);
        }
        Ok::<(), String>(())
    };
    let mut first = 0;
    // Made on the CPU (on a background thread) and moved to the model's device.
    for batch in data::batches(images.clone(), PROBE_BATCH, false, &[], norm, 0, 0, Device::Cpu) {
        if STOP.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("interrupted; nothing was written".to_string());
        }
        let batch = batch.map_err(err)?;
        let got = probe_maps(model, &batch.images, probes, settings.aggregate, None).map_err(err)?;
        let labels: Vec<u32> = batch.labels.to_vec1().map_err(err)?;
        for (k, p) in got.iter().enumerate() {
            deletion[k].extend(super::deletion_scores(model, &batch.images, &labels, &p.maps).map_err(err)?);
            for (j, map) in p.maps.iter().enumerate() {
                let i = first + j;
                raw.write(k, i, map)?;
                let own = heatmap::range([map.as_slice()]);
                ranges[k] = (ranges[k].0.min(own.0), ranges[k].1.max(own.1));
                // Scores read each map on its own scale, so they do not depend on the display scale.
                per_image[k].push(score(&heatmap::normalize(map, own), images.mask(i)));
                if settings.scale == HeatmapScale::Image {
                    overlay(k, i, &heatmap::normalize(map, own), &mut columns)?;
                }
            }
        }
        first += got.first().map_or(0, |p| p.maps.len());
    }
    if settings.scale == HeatmapScale::Shared {
        // One scale per probe (probes of different kinds have different
        // ranges), over all its images: read the maps back from disk.
        for (k, range) in ranges.iter().enumerate() {
            for i in 0..n {
                overlay(k, i, &heatmap::normalize(&raw.read(k, i)?, *range), &mut columns)?;
            }
        }
    }
    raw.finish()?;
    let scores: ProbeScores = probes
        .iter()
        .cloned()
        .zip(per_image.iter().zip(&deletion).map(|(s, d)| with_deletion(summarize(s), d)))
        .collect();
    let rows: Vec<Vec<image::RgbImage>> = (0..shown)
        .map(|i| {
            std::iter::once(heatmap::to_rgb(images.image(i), [c, h, w]))
                .chain(columns.iter().map(|col| col[i].clone()))
                .collect()
        })
        .collect();
    let titles: Vec<String> = std::iter::once("image".to_string()).chain(probes.iter().cloned()).collect();
    let labels: Vec<String> = (0..shown).map(|i| images.classes[images.labels[i] as usize].clone()).collect();
    let bars = std::iter::once(None)
        .chain(ranges.iter().map(|&(lo, hi)| {
            Some(match settings.scale {
                HeatmapScale::Image => ("min".to_string(), "max".to_string()),
                HeatmapScale::Shared => (grid::value_label(lo.min(hi)), grid::value_label(hi.max(lo))),
            })
        }))
        .collect();
    let legend = grid::Legend {
        title: format!(
            "{prefix}probes {}: {}; {}; {} of {n} test images",
            probes.join(", "),
            aggregate_words(settings.aggregate),
            scale_words(settings.scale),
            shown
        ),
        bars,
    };
    let figure = grid::grid_with_legend(&rows, &titles, &labels, zoom(h), &legend);
    let fig_path = out.join("figure.png");
    save_png(&figure, &fig_path).map_err(|e| format!("cannot write `{}`: {e}", fig_path.display()))?;
    let mut csv = String::from("row,index,class\n");
    for i in 0..n {
        csv += &format!("{i},{},{}\n", images.index[i], images.classes[images.labels[i] as usize]);
    }
    std::fs::write(out.join("images.csv"), csv).map_err(|e| format!("cannot write images.csv: {e}"))?;
    let json = serde_json::to_string_pretty(&scores).expect("serialisable");
    std::fs::write(out.join("scores.json"), json).map_err(|e| format!("cannot write scores: {e}"))?;
    Ok(scores)
}

/// How the heatmaps were made, for figure titles.
pub fn aggregate_words(a: Aggregate) -> &'static str {
    match a {
        Aggregate::Mean => "mean over channels",
        Aggregate::Max => "max over channels",
        Aggregate::L2 => "L2 norm over channels",
        Aggregate::Gradcam => "Grad-CAM of the predicted class",
    }
}

fn scale_words(s: HeatmapScale) -> &'static str {
    match s {
        HeatmapScale::Image => "each map scaled to its own min..max",
        HeatmapScale::Shared => "one scale per probe over all images",
    }
}

/// `heatmaps.safetensors`, written map by map as the images stream
/// through: a safetensors header with every tensor's place, then the
/// tensors (`[N, H, W]` f32 per probe), each map written at its offset.
struct RawMaps {
    file: std::fs::File,
    path: std::path::PathBuf,
    /// Where the data starts, and the bytes of one map.
    data: u64,
    map_bytes: u64,
    per_probe: u64,
}

impl RawMaps {
    fn create(path: &Path, probes: &[String], [n, h, w]: [usize; 3]) -> Result<RawMaps, String> {
        let fail = |e: std::io::Error| format!("cannot write `{}`: {e}", path.display());
        let map_bytes = (h * w * 4) as u64;
        let per_probe = map_bytes * n as u64;
        let mut header = serde_json::Map::new();
        for (k, p) in probes.iter().enumerate() {
            let start = per_probe * k as u64;
            header.insert(
                p.clone(),
                serde_json::json!({"dtype": "F32", "shape": [n, h, w], "data_offsets": [start, start + per_probe]}),
            );
        }
        let mut text = serde_json::Value::Object(header).to_string();
        while !text.len().is_multiple_of(8) {
            text.push(' ');
        }
        // Read as well as written: a shared scale reads the maps back.
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).map_err(fail)?;
        file.write_all(&(text.len() as u64).to_le_bytes()).map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        let data = 8 + text.len() as u64;
        file.set_len(data + per_probe * probes.len() as u64).map_err(fail)?;
        Ok(RawMaps { file, path: path.to_path_buf(), data, map_bytes, per_probe })
    }

    fn at(&self, k: usize, i: usize) -> u64 {
        self.data + self.per_probe * k as u64 + self.map_bytes * i as u64
    }

    fn write(&mut self, k: usize, i: usize, map: &[f32]) -> Result<(), String> {
        let bytes: Vec<u8> = map.iter().flat_map(|v| v.to_le_bytes()).collect();
        let at = self.at(k, i);
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.write_all(&bytes))
            .map_err(|e| format!("cannot write `{}`: {e}", self.path.display()))
    }

    fn read(&mut self, k: usize, i: usize) -> Result<Vec<f32>, String> {
        let mut bytes = vec![0u8; self.map_bytes as usize];
        let at = self.at(k, i);
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| format!("cannot read `{}`: {e}", self.path.display()))?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn finish(self) -> Result<(), String> {
        self.file.sync_all().map_err(|e| format!("cannot write `{}`: {e}", self.path.display()))
    }
}

/// Small images are magnified so that a person can see them.
pub(super) fn zoom(side: usize) -> u32 {
    (128 / side.max(1)).clamp(1, 4) as u32
}

/// The scores as a Markdown table, with the untrained network's beside
/// them when given (`--sanity`).
pub fn scores_table(trained: &ProbeScores, untrained: Option<&ProbeScores>) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut out = String::from(
        "| probe | energy in object | pointing game | concentration (top 10%) | deletion (lower: better) | deletion, random order |",
    );
    if untrained.is_some() {
        out += " untrained: energy | pointing | concentration | deletion |";
    }
    out += "\n|---|---|---|---|---|---|";
    if untrained.is_some() {
        out += "---|---|---|---|";
    }
    out.push('\n');
    for (probe, s) in trained {
        out += &format!(
            "| {probe} | {} | {} | {:.1}% | {} | {} |",
            pct(s.energy_in_object),
            pct(s.pointing_game),
            100.0 * s.concentration,
            pct(s.deletion),
            pct(s.deletion_random)
        );
        if let Some(u) = untrained.and_then(|u| u.get(probe)) {
            out += &format!(
                " {} | {} | {:.1}% | {} |",
                pct(u.energy_in_object),
                pct(u.pointing_game),
                100.0 * u.concentration,
                pct(u.deletion)
            );
        }
        out.push('\n');
    }
    out
}

/// What `netc probe` was asked for.
pub struct ProbeRequest<'a> {
    pub graph: &'a crate::graph::Graph,
    pub weights: &'a Path,
    /// The recipe's `[data]`: where the test images come from.
    pub data: &'a crate::recipe::Data,
    /// Probe names; all of the net's when empty.
    pub probes: Vec<String>,
    pub settings: ProbeSettings,
    pub out: &'a Path,
    /// Also draw and score the same net with fresh, untrained weights.
    pub sanity: bool,
    pub device: Device,
}

/// `netc probe`: returns the scores table. The output folder is built
/// under a temporary name beside `out` and renamed when complete, so an
/// error or Ctrl-C leaves no half-written folder; `out` must not hold files.
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
    if r.settings.count == 0 {
        return Err("`--count 0`: draw at least 1 image".to_string());
    }
    if r.out.exists() && r.out.read_dir().map_or(true, |mut d| d.next().is_some()) {
        return Err(format!(
            "`{}` already exists; `netc probe` writes a fresh folder (leave `--out` out for a new one beside the weights)",
            r.out.display()
        ));
    }
    let shape = r.graph.image_shape()?;
    let images = data::probe_images(r.data, shape, r.settings.count).map_err(|e| e.to_string())?;
    let images = Arc::new(images);
    let tmp = partial_path(r.out);
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| {
        let trained = draw(&mut model, &images, norm, &probes, &r.settings, &tmp)?;
        let untrained = if r.sanity {
            let mut fresh = Model::new(r.graph, &r.device, 1).map_err(|e| e.to_string())?;
            let out = tmp.join("untrained");
            Some(draw_titled(&mut fresh, &images, norm, &probes, &r.settings, &out, "untrained weights: ")?)
        } else {
            None
        };
        let table = scores_table(&trained, untrained.as_ref());
        std::fs::write(tmp.join("scores.md"), &table).map_err(|e| format!("cannot write scores: {e}"))?;
        Ok::<String, String>(table)
    })();
    let table = result.inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })?;
    if r.out.exists() {
        // Empty (checked above): make room for the rename.
        let _ = std::fs::remove_dir(r.out);
    }
    std::fs::rename(&tmp, r.out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        format!("cannot write `{}` (another process may have made it meanwhile): {e}", r.out.display())
    })?;
    Ok(table)
}

/// The temporary name a folder is built under before it is renamed to
/// `out`: hidden, beside it, with the process id.
pub fn partial_path(out: &Path) -> PathBuf {
    let name = out.file_name().map_or("out".into(), |n| n.to_string_lossy().to_string());
    out.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// The default output of `netc probe`: a new folder `probe-<N>` beside the
/// weights (N from 2 up, the first free), never the run's own `probe/`.
pub fn fresh_probe_dir(weights: &Path) -> PathBuf {
    let dir = weights.parent().unwrap_or(Path::new("."));
    (2..).map(|n| dir.join(format!("probe-{n}"))).find(|d| !d.exists()).expect("some number is free")
}
