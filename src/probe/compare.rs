//! `netc compare`: the paper's tables and figures from several runs: one row
//! per run (accuracy, size, speed, heatmap scores) and one figure with the
//! same images in rows and a column per run, on one colour scale.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;

use super::score::{score, summarize, with_deletion};
use super::stats::{Spread, spread, welch};
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
    let (graph, recipe) = crate::checkpoint::read_run_dir(dir)?;
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().to_string());
    Ok(Run { name, graph, recipe, dir: dir.to_path_buf() })
}

/// What `netc compare` was asked for.
pub struct CompareRequest<'a> {
    pub runs: &'a [PathBuf],
    /// Per run (same length as `runs`, or empty), the group it belongs to,
    /// as a sweep names its cells; runs without one are grouped by their
    /// net and recipe apart from the seed.
    pub groups: &'a [Option<String>],
    /// The probe to draw; by default `mid` if every run has it, else the
    /// first probe they all have.
    pub probe: Option<String>,
    pub count: usize,
    pub aggregate: Aggregate,
    /// Each heatmap of the figure on its own min..max (as the paper's
    /// figures), instead of one scale for every run and image.
    pub own_scale: bool,
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
    if !r.groups.is_empty() && r.groups.len() != r.runs.len() {
        return Err(format!("{} groups for {} runs", r.groups.len(), r.runs.len()));
    }
    // Grouping is checked before anything is drawn or written.
    let groups = group_runs(&runs, r.groups)?;
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
        let mut deletion = Vec::new();
        for batch in data::batches(images.clone(), super::command::PROBE_BATCH, false, &[], norm, 0, 0, Device::Cpu) {
            let batch = batch.map_err(|e| e.to_string())?;
            let got = probe_maps(&mut model, &batch.images, std::slice::from_ref(&probe), r.aggregate, None)
                .map_err(|e| e.to_string())?;
            let labels: Vec<u32> = batch.labels.to_vec1().map_err(|e| e.to_string())?;
            for p in got {
                deletion.extend(
                    super::deletion_scores(&mut model, &batch.images, &labels, &p.maps).map_err(|e| e.to_string())?,
                );
                maps.extend(p.maps);
            }
        }
        let scores: Vec<_> = maps
            .iter()
            .enumerate()
            .map(|(i, m)| score(&heatmap::normalize(m, heatmap::range([m.as_slice()])), images.mask(i)))
            .collect();
        let summary = with_deletion(summarize(&scores), &deletion);
        rows.push((run, summary, last_metrics(&run.dir)));
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
                    let scale = if r.own_scale { heatmap::range([maps[i].as_slice()]) } else { range };
                    heatmap::overlay(images.image(i), [c, h, w], &heatmap::normalize(&maps[i], scale), 0.5)
                }))
                .collect()
        })
        .collect();
    // Columns are runs: the run directory's name (the table gives its net, seed and settings).
    let columns = column_titles(&runs);
    let titles: Vec<String> = std::iter::once("image".to_string()).chain(columns.iter().cloned()).collect();
    let labels: Vec<String> = (0..shown).map(|i| images.classes[images.labels[i] as usize].clone()).collect();
    let bars = std::iter::once(None)
        .chain(runs.iter().map(|_| match r.own_scale {
            true => Some(("min".to_string(), "max".to_string())),
            false => Some((grid::value_label(range.0), grid::value_label(range.1))),
        }))
        .collect();
    let legend = grid::Legend {
        title: format!(
            "probe {probe}: {}; {}; {shown} of {n} test images",
            super::command::aggregate_words(r.aggregate),
            if r.own_scale { "each heatmap on its own min..max" } else { "one scale for every run and image" }
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
    md += "| run | network | seed | test acc | params | mult-adds | train time | img/s | energy in object | pointing game | concentration | deletion | deletion, random order |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    let mut csv = String::from(
        "run,network,test_accuracy,params,macs,train_seconds,images_per_second,energy_in_object,pointing_game,concentration,deletion,deletion_random\n",
    );
    for (run, s, m) in &rows {
        let (acc, secs, speed) = m
            .as_ref()
            .map_or((None, None, None), |m| (Some(m.test_accuracy), Some(m.wall_seconds), Some(m.images_per_second)));
        let _ = writeln!(
            md,
            "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} |",
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
            100.0 * s.concentration,
            pct(s.deletion),
            pct(s.deletion_random)
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{:.6},{},{}",
            run.name,
            run.graph.name,
            opt(acc),
            run.graph.total_params(),
            run.graph.total_macs(),
            opt(secs),
            opt(speed),
            opt(s.energy_in_object),
            opt(s.pointing_game),
            s.concentration,
            opt(s.deletion),
            opt(s.deletion_random)
        );
    }
    md += "\nColumns of the figure, left to right after the image: ";
    md += &runs.iter().zip(&columns).map(|(r, c)| format!("`{c}` ({})", r.name)).collect::<Vec<_>>().join(", ");
    md += ".\n\n![heatmaps](compare.png)\n";
    let per_run: Vec<RunValues> = rows
        .iter()
        .map(|(run, s, m)| RunValues {
            seed: run.recipe.train.seed,
            values: [
                m.as_ref().map(|m| m.test_accuracy),
                s.energy_in_object,
                s.pointing_game,
                Some(s.concentration),
                s.deletion,
                s.deletion_random,
            ],
            curve: accuracy_curve(&run.dir),
        })
        .collect();
    if groups.iter().any(|g| g.members.len() > 1) {
        md += &statistics(&groups, &per_run, r.out)?;
    }
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
    titles(&runs.iter().collect::<Vec<_>>(), true)
}

/// [`column_titles`], with or without the seed among the facets (groups
/// of runs are named without it).
fn titles(runs: &[&Run], with_seed: bool) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = runs.iter().flat_map(|r| r.graph.args.keys()).collect();
    // Per run, the same facets in the same order.
    let facets: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let t = &r.recipe.train;
            keys.iter()
                .map(|k| r.graph.args.get(*k).map_or(String::new(), |v| format!("{k}={v}")))
                .chain([
                    if with_seed { format!("seed {}", t.seed) } else { String::new() },
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

/// Runs of one net and recipe that differ only in their seed: one row of
/// the statistics.
struct Group {
    title: String,
    /// Indices into the runs, in the order given.
    members: Vec<usize>,
}

/// What must be equal for two runs to be one group: the graph (its JSON,
/// so its net, arguments and every shape) and the recipe with the seed set aside.
fn group_key(run: &Run) -> (String, String) {
    let mut recipe = run.recipe.clone();
    recipe.train.seed = 0;
    (crate::summary::json(&run.graph), toml::to_string(&recipe).unwrap_or_default())
}

/// Groups the runs: by the names given (a sweep's cells), checking that a
/// named group holds one net and recipe apart from the seed, and the rest by
/// that key. Groups keep the order of their first run.
fn group_runs(runs: &[Run], names: &[Option<String>]) -> Result<Vec<Group>, String> {
    let keys: Vec<(String, String)> = runs.iter().map(group_key).collect();
    let mut groups: Vec<(Option<String>, usize, Vec<usize>)> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let name = names.get(i).cloned().flatten();
        let found = groups.iter_mut().find(|(n, first, _)| match (&name, n) {
            (Some(a), Some(b)) => a == b,
            (None, None) => keys[*first] == keys[i],
            _ => false,
        });
        match found {
            Some((Some(n), first, members)) => {
                let other = &runs[*first];
                if keys[*first].0 != keys[i].0 {
                    return Err(format!(
                        "`{}` ({}) and `{}` ({}) are both in group `{n}`, but their nets differ; a group holds runs of one \
                         net and recipe that differ only in their seed",
                        other.dir.display(),
                        other.graph.name,
                        run.dir.display(),
                        run.graph.name
                    ));
                }
                if keys[*first].1 != keys[i].1 {
                    return Err(format!(
                        "`{}` and `{}` are both in group `{n}`, but their recipes differ in more than the seed",
                        other.dir.display(),
                        run.dir.display()
                    ));
                }
                members.push(i);
            }
            Some((None, _, members)) => members.push(i),
            None => groups.push((name, i, vec![i])),
        }
    }
    let reps: Vec<&Run> = groups.iter().map(|(_, first, _)| &runs[*first]).collect();
    let derived = titles(&reps, false);
    Ok(groups
        .into_iter()
        .zip(derived)
        .map(|((name, _, members), title)| Group { title: name.unwrap_or(title), members })
        .collect())
}

/// The numbers of one run that the statistics cover.
struct RunValues {
    seed: u64,
    /// In the order of [`METRICS`].
    values: [Option<f64>; 6],
    /// Test accuracy per epoch (epoch, accuracy).
    curve: Vec<(u64, f64)>,
}

/// The metrics over seeds: name, CSV name, and whether they are shown as percentages.
const METRICS: [(&str, &str); 6] = [
    ("test accuracy", "test_accuracy"),
    ("energy in object", "energy_in_object"),
    ("pointing game", "pointing_game"),
    ("concentration", "concentration"),
    ("deletion (lower: better)", "deletion"),
    ("deletion, random order", "deletion_random"),
];

fn accuracy_curve(dir: &Path) -> Vec<(u64, f64)> {
    #[derive(Deserialize)]
    struct Row {
        epoch: u64,
        test_accuracy: f64,
    }
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str::<Row>(l).ok()).map(|r| (r.epoch, r.test_accuracy)).collect()
}

/// The statistics over seeds: Markdown for `compare.md`, and `groups.csv`,
/// `differences.csv` and `curves.png` in `out`.
fn statistics(groups: &[Group], runs: &[RunValues], out: &Path) -> Result<String, String> {
    let pct = |v: f64| format!("{:.1}", 100.0 * v);
    let spreads: Vec<Vec<Option<Spread>>> = groups
        .iter()
        .map(|g| {
            (0..METRICS.len())
                .map(|k| {
                    let values: Vec<f64> = g.members.iter().filter_map(|&i| runs[i].values[k]).collect();
                    spread(&values)
                })
                .collect()
        })
        .collect();
    let shown: Vec<usize> = (0..METRICS.len()).filter(|&k| spreads.iter().any(|s| s[k].is_some())).collect();
    let mut md = String::from(
        "\n## Over seeds\n\nEach row is the runs of one net and recipe that differ only in their seed: mean ± standard \
         deviation (n - 1), with min–max in brackets, in percent; test accuracy is the last epoch's; the scores are \
         at the probe above, over its images.\n\n",
    );
    md += "| group | n | seeds |";
    for &k in &shown {
        md += &format!(" {} |", METRICS[k].0);
    }
    md += "\n|---|---|---|";
    md += &"---|".repeat(shown.len());
    md.push('\n');
    let mut csv = String::from("group,metric,n,mean,std,min,max,seeds\n");
    for (g, s) in groups.iter().zip(&spreads) {
        let seeds: Vec<u64> = g.members.iter().map(|&i| runs[i].seed).collect();
        let seed_words = seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        let _ = write!(md, "| {} | {} | {} |", g.title, g.members.len(), seed_words);
        for &k in &shown {
            match &s[k] {
                Some(v) => {
                    let _ = write!(md, " {} ± {} ({}–{}) |", pct(v.mean), pct(v.std), pct(v.min), pct(v.max));
                    let _ = writeln!(
                        csv,
                        "{},{},{},{:.6},{:.6},{:.6},{:.6},{}",
                        csv_field(&g.title),
                        METRICS[k].1,
                        v.n,
                        v.mean,
                        v.std,
                        v.min,
                        v.max,
                        seed_words
                    );
                }
                None => md += " - |",
            }
        }
        md.push('\n');
    }
    let repeated: Vec<&Group> = groups
        .iter()
        .filter(|g| {
            let mut seen = std::collections::BTreeSet::new();
            !g.members.iter().all(|&i| seen.insert(runs[i].seed))
        })
        .collect();
    for g in repeated {
        let _ = writeln!(
            md,
            "\nNote: group `{}` holds the same seed more than once; such runs repeat one experiment and are not independent samples.",
            g.title
        );
    }
    // Pairwise differences.
    md += "\n## Differences\n\nFor each pair of groups, the difference of the means (A − B, in points) with its 95% \
           confidence interval by Welch's t (unequal variances; docs/decisions.md, 36), and what it shows: `A > B` or \
           `A < B` when the interval excludes 0, else no difference shown.\n\n";
    md += "| A | B | metric | A − B | 95% interval | verdict |\n|---|---|---|---|---|---|\n";
    let mut dcsv = String::from("a,b,metric,difference,low,high,df,verdict\n");
    for a in 0..groups.len() {
        for b in a + 1..groups.len() {
            for &k in &shown {
                let (Some(sa), Some(sb)) = (&spreads[a][k], &spreads[b][k]) else { continue };
                let d = welch(sa, sb);
                let verdict = d.verdict.words(&groups[a].title, &groups[b].title);
                let interval =
                    d.interval.map_or("-".to_string(), |(lo, hi)| format!("[{}, {}]", signed(lo), signed(hi)));
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    groups[a].title,
                    groups[b].title,
                    METRICS[k].0,
                    signed(d.diff),
                    interval,
                    verdict
                );
                let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
                let _ = writeln!(
                    dcsv,
                    "{},{},{},{:.6},{},{},{},{}",
                    csv_field(&groups[a].title),
                    csv_field(&groups[b].title),
                    METRICS[k].1,
                    d.diff,
                    opt(d.interval.map(|i| i.0)),
                    opt(d.interval.map(|i| i.1)),
                    opt(d.df),
                    csv_field(&verdict)
                );
            }
        }
    }
    // Test accuracy per epoch: mean line, min–max band, one colour per group.
    let mut series = Vec::new();
    let mut bands = Vec::new();
    for g in groups {
        let mut by_epoch: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for &i in &g.members {
            for &(e, a) in &runs[i].curve {
                by_epoch.entry(e).or_default().push(100.0 * a);
            }
        }
        let stats: Vec<(f64, Spread)> =
            by_epoch.iter().filter_map(|(e, v)| spread(v).map(|s| (*e as f64, s))).collect();
        series.push(crate::figure::Series {
            label: format!("{} (n={})", g.title, g.members.len()),
            points: stats.iter().map(|(e, s)| (*e, s.mean)).collect(),
        });
        bands.push(stats.iter().map(|(e, s)| (*e, s.min, s.max)).collect());
    }
    let panel = crate::figure::Panel {
        title: "test accuracy: mean over seeds, band min-max".to_string(),
        x_label: "epoch".to_string(),
        y_label: "test accuracy (%)".to_string(),
        series,
    };
    let png = out.join("curves.png");
    save_png(&crate::figure::plot_with_bands(&panel, &bands, 900, 560), &png)
        .map_err(|e| format!("cannot write `{}`: {e}", png.display()))?;
    md += "\n![test accuracy per epoch: mean over seeds, band from min to max](curves.png)\n";
    std::fs::write(out.join("groups.csv"), csv).map_err(|e| format!("cannot write groups.csv: {e}"))?;
    std::fs::write(out.join("differences.csv"), dcsv).map_err(|e| format!("cannot write differences.csv: {e}"))?;
    Ok(md)
}

/// A difference in points (percent), with its sign.
fn signed(v: f64) -> String {
    format!("{:+.2}", 100.0 * v)
}

/// A CSV field, quoted when it holds a comma or quote.
fn csv_field(s: &str) -> String {
    match s.contains([',', '"']) {
        true => format!("\"{}\"", s.replace('"', "\"\"")),
        false => s.to_string(),
    }
}
