//! The run's `report.md` and its training-curve plot, rewritten after each
//! epoch from `metrics.jsonl`.

use std::fmt::Write as _;
use std::path::Path;

use super::run::{EpochMetrics, read_metrics, write};
use crate::figure::{self, Panel, Series, save_png};
use crate::graph::Graph;
use crate::probe::ProbeScores;
use crate::recipe::Recipe;
use crate::summary::group;

pub fn write_report(dir: &Path, graph: &Graph, recipe: &Recipe, probes: Option<&ProbeScores>) -> Result<(), String> {
    let metrics = read_metrics(dir);
    let t = &recipe.train;
    let mut md = format!("# {}\n\n", graph.name);
    let _ = writeln!(
        md,
        "{} parameters, {} multiply-adds per image. Data: `{}`. {} epoch{}, batch {}, {} lr {} ({} schedule), seed {}.\n",
        group(graph.total_params()),
        group(graph.total_macs()),
        String::from(recipe.data.dataset.clone()),
        t.epochs,
        super::run::plural(t.epochs.into()),
        t.batch_size,
        format!("{:?}", t.optimizer.kind).to_lowercase(),
        t.optimizer.lr,
        format!("{:?}", t.schedule).to_lowercase(),
        t.seed
    );
    // The first of equally good epochs, as `best.safetensors` keeps it.
    let best = metrics.iter().fold(None::<&EpochMetrics>, |b, m| match b {
        Some(b) if b.test_accuracy >= m.test_accuracy => Some(b),
        _ => Some(m),
    });
    if let Some(best) = best {
        let last = metrics.last().expect("non-empty");
        let _ = writeln!(
            md,
            "Best test accuracy **{:.2}%** (epoch {}); after epoch {}: {:.2}%. Training speed {:.0} images/s; {:.0} s in all.\n",
            100.0 * best.test_accuracy,
            best.epoch,
            last.epoch,
            100.0 * last.test_accuracy,
            last.images_per_second,
            last.wall_seconds
        );
    }
    plot(dir, &metrics)?;
    md += "![training curves](training_curves.png)\n\n";
    md += "| epoch | train loss | train acc | test loss | test acc | lr | img/s | s |\n|---|---|---|---|---|---|---|---|\n";
    for m in &metrics {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:.2}% | {:.4} | {:.2}% | {:.5} | {:.0} | {:.1} |",
            m.epoch,
            m.train_loss,
            100.0 * m.train_accuracy,
            m.test_loss,
            100.0 * m.test_accuracy,
            m.lr,
            m.images_per_second,
            m.epoch_seconds
        );
    }
    if let Some(scores) = probes {
        let _ = writeln!(
            md,
            "\n## Heatmaps\n\n{} at each probe, on {} test images (a class-balanced subset of the test split with a fixed seed, the same that `netc probe` and `netc compare` draw; `probe/images.csv` lists them), from the final weights ([figure](probe/figure.png)). Energy in object and pointing game need object masks (synthetic data).\n\n![heatmaps](probe/figure.png)\n",
            crate::probe::aggregate_words(recipe.probe.aggregate),
            recipe.probe.count
        );
        md += &crate::probe::scores_table(scores, None);
    }
    md += "\nFiles: `graph.json` (the compiled net), `recipe.toml` (the recipe as run), `metrics.csv`/`metrics.jsonl`, `last.safetensors` and `best.safetensors` (weights; `netc eval` reads them).\n";
    write(&dir.join("report.md"), &md)
}

/// Loss and accuracy per epoch, train and test, as `training_curves.png`.
fn plot(dir: &Path, metrics: &[EpochMetrics]) -> Result<(), String> {
    let series = |label: &str, f: fn(&EpochMetrics) -> f64| Series {
        label: label.to_string(),
        points: metrics.iter().map(|m| (m.epoch as f64, f(m))).collect(),
    };
    let panel = |title: &str, y: &str, train: fn(&EpochMetrics) -> f64, test: fn(&EpochMetrics) -> f64| Panel {
        title: title.to_string(),
        x_label: "epoch".to_string(),
        y_label: y.to_string(),
        series: vec![series("train", train), series("test", test)],
    };
    let panels = [
        panel("Loss", "cross-entropy", |m| m.train_loss, |m| m.test_loss),
        panel("Accuracy", "accuracy", |m| m.train_accuracy, |m| m.test_accuracy),
    ];
    let path = dir.join("training_curves.png");
    save_png(&figure::plot(&panels, 640, 480), &path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
