//! `netc compare`: the paper's tables and figures from several runs: one row
//! per run (accuracy, size, speed, heatmap scores) and one figure with the
//! same images in rows and a column per run, on one colour scale.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;

use super::score::{score, summarize};
use super::{grid, heatmap, probe_maps};
use crate::data;
use crate::figure::save_png;
use crate::graph::Graph;
use crate::recipe::{Aggregate, Recipe};

/// One run, read back from its directory.
struct Run {
    name: String,
    graph: Graph,
    recipe: Recipe,
    dir: PathBuf,
}

#[derive(Deserialize)]
struct Metrics {
    test_accuracy: f64,
    images_per_second: f64,
    wall_seconds: f64,
}

fn read_run(dir: &Path) -> Result<Run, String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| format!("`{}`: {e}", dir.join(name).display()))
    };
    let graph: Graph =
        serde_json::from_str(&read("graph.json")?).map_err(|e| format!("`{}/graph.json`: {e}", dir.display()))?;
    let recipe: Recipe =
        toml::from_str(&read("recipe.toml")?).map_err(|e| format!("`{}/recipe.toml`: {e}", dir.display()))?;
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().to_string());
    Ok(Run { name, graph, recipe, dir: dir.to_path_buf() })
}

/// What `netc compare` was asked for.
pub struct CompareRequest<'a> {
    pub runs: &'a [PathBuf],
    /// The probe to draw; by default `mid` if every run has it, else the
    /// first probe they all have.
    pub probe: Option<String>,
    pub count: usize,
    pub aggregate: Aggregate,
    pub out: &'a Path,
    pub device: Device,
}

/// Writes `compare.md`, `compare.csv` and `compare.png` into `out`; returns
/// the Markdown table.
pub fn compare(r: &CompareRequest) -> Result<String, String> {
    if r.out.exists() && r.out.read_dir().map_or(true, |mut d| d.next().is_some()) {
        return Err(format!("`{}` already exists; `netc compare` writes a fresh folder", r.out.display()));
    }
    if r.count == 0 {
        return Err("`--count 0`: draw at least 1 image".to_string());
    }
    let runs: Vec<Run> = r.runs.iter().map(|d| read_run(d)).collect::<Result<_, _>>()?;
    // The columns must show the same images, so the runs must share data.
    if let Some(first) = runs.first()
        && let Some(other) = runs.iter().find(|o| o.recipe.data.dataset != first.recipe.data.dataset)
    {
        return Err(format!(
            "`{}` was trained on `{}` but `{}` on `{}`; compare runs of the same data (their heatmaps are drawn on the same test images)",
            first.dir.display(),
            String::from(first.recipe.data.dataset.clone()),
            other.dir.display(),
            String::from(other.recipe.data.dataset.clone())
        ));
    }
    let common: Vec<String> = runs.first().map_or(vec![], |first| {
        first
            .graph
            .probes
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| runs.iter().all(|r| r.graph.probes.iter().any(|p| &p.name == n)))
            .collect()
    });
    let probe = match &r.probe {
        Some(p) if common.contains(p) => p.clone(),
        Some(p) if common.is_empty() => {
            return Err(format!(
                "not every run has probe `{p}`, and the runs have no probe in common: {}",
                probe_lists(&runs)
            ));
        }
        Some(p) => return Err(format!("not every run has probe `{p}`; the common ones are {}", common.join(", "))),
        None if common.iter().any(|p| p == "mid") => "mid".to_string(),
        None => common
            .first()
            .cloned()
            .ok_or_else(|| format!("the runs have no probe in common: {}", probe_lists(&runs)))?,
    };
    let mut rows = Vec::new();
    let mut all_maps = Vec::new();
    let mut shown: Option<std::sync::Arc<data::Dataset>> = None;
    for run in &runs {
        let weights = run.dir.join("best.safetensors");
        let (mut model, norm) = crate::checkpoint::load_model(&run.graph, &weights, &r.device)?;
        let shape = run.graph.image_shape()?;
        // The same images for every run: the one rule of `data::probe_images`.
        let images = data::probe_images(&run.recipe.data, shape, r.count).map_err(|e| e.to_string())?;
        let images = std::sync::Arc::new(images);
        let mut maps = Vec::new();
        for batch in data::batches(images.clone(), super::command::PROBE_BATCH, false, &[], norm, 0, 0, Device::Cpu) {
            let batch = batch.map_err(|e| e.to_string())?;
            let got = probe_maps(&mut model, &batch.images, std::slice::from_ref(&probe), r.aggregate, None)
                .map_err(|e| e.to_string())?;
            maps.extend(got.into_iter().flat_map(|p| p.maps));
        }
        let scores: Vec<_> = maps
            .iter()
            .enumerate()
            .map(|(i, m)| score(&heatmap::normalize(m, heatmap::range([m.as_slice()])), images.mask(i)))
            .collect();
        rows.push((run, summarize(&scores), last_metrics(&run.dir)));
        all_maps.push(maps);
        shown.get_or_insert(images);
    }
    let images = shown.ok_or("no runs to compare")?;
    std::fs::create_dir_all(r.out).map_err(|e| format!("cannot create `{}`: {e}", r.out.display()))?;
    // One colour scale for every run and image, so the columns compare.
    let range = heatmap::range(all_maps.iter().flatten().map(Vec::as_slice));
    let [c, h, w] = images.shape;
    let n = all_maps.iter().map(Vec::len).min().unwrap_or(0);
    // The figure shows the first images; the scores cover them all.
    let shown = n.min(super::command::FIGURE_ROWS);
    let figure_rows: Vec<Vec<image::RgbImage>> = (0..shown)
        .map(|i| {
            std::iter::once(heatmap::to_rgb(images.image(i), [c, h, w]))
                .chain(all_maps.iter().map(|maps| {
                    heatmap::overlay(images.image(i), [c, h, w], &heatmap::normalize(&maps[i], range), 0.5)
                }))
                .collect()
        })
        .collect();
    // Columns are runs: the run directory's name (the table gives its net, seed and settings).
    let columns = column_titles(&runs);
    let titles: Vec<String> = std::iter::once("image".to_string()).chain(columns.iter().cloned()).collect();
    let labels: Vec<String> = (0..shown).map(|i| images.classes[images.labels[i] as usize].clone()).collect();
    let bars = std::iter::once(None)
        .chain(runs.iter().map(|_| Some((grid::value_label(range.0), grid::value_label(range.1)))))
        .collect();
    let legend = grid::Legend {
        title: format!(
            "probe {probe}: {}; one scale for every run and image; {shown} of {n} test images",
            super::command::aggregate_words(r.aggregate)
        ),
        bars,
    };
    let png = r.out.join("compare.png");
    save_png(&grid::grid_with_legend(&figure_rows, &titles, &labels, super::command::zoom(h), &legend), &png)
        .map_err(|e| format!("cannot write `{}`: {e}", png.display()))?;
    let mut images_csv = String::from("row,index,class\n");
    for i in 0..n {
        images_csv += &format!("{i},{},{}\n", images.index[i], images.classes[images.labels[i] as usize]);
    }
    std::fs::write(r.out.join("images.csv"), images_csv).map_err(|e| format!("cannot write images.csv: {e}"))?;

    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut md = format!(
        "Heatmaps at probe `{probe}` ({}), {n} test images (`images.csv`; the figure shows the first {shown}).\n\n",
        super::command::aggregate_words(r.aggregate)
    );
    md += "| run | network | seed | test acc | params | mult-adds | train time | img/s | energy in object | pointing game | concentration |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|\n";
    let mut csv = String::from(
        "run,network,test_accuracy,params,macs,train_seconds,images_per_second,energy_in_object,pointing_game,concentration\n",
    );
    for (run, s, m) in &rows {
        let (acc, secs, speed) = m
            .as_ref()
            .map_or((None, None, None), |m| (Some(m.test_accuracy), Some(m.wall_seconds), Some(m.images_per_second)));
        let _ = writeln!(
            md,
            "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}% |",
            run.name,
            run.graph.name,
            settings_words(&run.graph),
            run.recipe.train.seed,
            pct(acc),
            crate::summary::group(run.graph.total_params()),
            crate::summary::group(run.graph.total_macs()),
            secs.map_or("-".into(), |s| format!("{s:.0} s")),
            speed.map_or("-".into(), |s| format!("{s:.0}")),
            pct(s.energy_in_object),
            pct(s.pointing_game),
            100.0 * s.concentration
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{:.6}",
            run.name,
            run.graph.name,
            opt(acc),
            run.graph.total_params(),
            run.graph.total_macs(),
            opt(secs),
            opt(speed),
            opt(s.energy_in_object),
            opt(s.pointing_game),
            s.concentration
        );
    }
    md += "\nColumns of the figure, left to right after the image: ";
    md += &runs.iter().zip(&columns).map(|(r, c)| format!("`{c}` ({})", r.name)).collect::<Vec<_>>().join(", ");
    md += ".\n\n![heatmaps](compare.png)\n";
    std::fs::write(r.out.join("compare.md"), &md).map_err(|e| format!("cannot write compare.md: {e}"))?;
    std::fs::write(r.out.join("compare.csv"), &csv).map_err(|e| format!("cannot write compare.csv: {e}"))?;
    Ok(md)
}

/// The net's arguments, as ` (width 0.125)`, so runs of one spec at
/// different settings read apart.
fn settings_words(graph: &Graph) -> String {
    match graph.args.is_empty() {
        true => String::new(),
        false => format!(" ({})", graph.args.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")),
    }
}

/// A column title per run: the net, and what differs between the runs
/// (net arguments, seed, learning rate, epochs, data size), e.g.
/// `ours width=0.125 seed 2`; the run directories' names when that does not
/// tell every run apart.
fn column_titles(runs: &[Run]) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = runs.iter().flat_map(|r| r.graph.args.keys()).collect();
    // Per run, the same facets in the same order.
    let facets: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let t = &r.recipe.train;
            keys.iter()
                .map(|k| r.graph.args.get(*k).map_or(String::new(), |v| format!("{k}={v}")))
                .chain([
                    format!("seed {}", t.seed),
                    format!("lr {}", t.optimizer.lr),
                    format!("{} ep", t.epochs),
                    r.recipe.data.train_images.map_or(String::new(), |n| format!("{n} img")),
                ])
                .collect()
        })
        .collect();
    let differs = |i: usize| facets.iter().any(|f| f[i] != facets[0][i]);
    let titles: Vec<String> = runs
        .iter()
        .zip(&facets)
        .map(|(r, f)| {
            std::iter::once(r.graph.name.clone())
                .chain((0..f.len()).filter(|&i| differs(i) && !f[i].is_empty()).map(|i| f[i].clone()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let unique: std::collections::HashSet<&String> = titles.iter().collect();
    match unique.len() == titles.len() {
        true => titles,
        false => runs.iter().map(|r| r.name.clone()).collect(),
    }
}

/// Each run's probes, for saying that they have none in common.
fn probe_lists(runs: &[Run]) -> String {
    runs.iter()
        .map(|r| {
            let names: Vec<&str> = r.graph.probes.iter().map(|p| p.name.as_str()).collect();
            format!("{} has {}", r.name, if names.is_empty() { "none".to_string() } else { names.join(", ") })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn last_metrics(dir: &Path) -> Option<Metrics> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).ok()?;
    text.lines().last().and_then(|l| serde_json::from_str(l).ok())
}
