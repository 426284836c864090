//! `netc run`: train a compiled spec, with checkpoints, metrics and resume.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::engine::{Engine, Trainer, trainer};
use super::eval::evaluate;
use super::optim::{StepSettings, learning_rate};
use crate::checkpoint::{self, Progress};
use crate::data::{self, Dataset, Normalize, Split};
use crate::graph::Graph;
use crate::memory;
use crate::recipe::{DataSource, Recipe};
use crate::runtime::{Kernels, Model};

/// Set by the Ctrl-C handler: the run finishes its step, writes a
/// checkpoint and stops.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What the command line sets on top of the spec's recipe.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub profile: Option<String>,
    pub set: Vec<(String, f64)>,
    pub epochs: Option<u32>,
    pub batch_size: Option<u32>,
    pub lr: Option<f64>,
    pub data: Option<DataSource>,
    pub seed: Option<u64>,
    pub train_images: Option<usize>,
    pub test_images: Option<usize>,
    pub skip_bad_images: bool,
}

pub struct RunOptions {
    /// The spec to train; `None` with `resume`.
    pub spec: Option<PathBuf>,
    /// A run directory to continue.
    pub resume: Option<PathBuf>,
    pub settings: Settings,
    /// Where the run directory goes (default `runs/<spec>-<time>`).
    pub out: Option<PathBuf>,
    pub quiet: bool,
    /// Stop as Ctrl-C would after this many optimiser steps (for tests).
    pub stop_after_steps: Option<u64>,
    /// The engine that trains; a run may resume on the other one.
    pub engine: Engine,
    /// Where it trains: the CPU, or a GPU for the candle engine.
    pub device: Device,
}

#[derive(Debug)]
pub enum RunOutcome {
    Finished { dir: PathBuf, final_accuracy: f64, best_accuracy: f64 },
    Interrupted { dir: PathBuf },
}

/// One row of `metrics.csv` / `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: u64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub lr: f64,
    pub images_per_second: f64,
    pub epoch_seconds: f64,
    pub wall_seconds: f64,
}

const CSV_HEADER: &str =
    "epoch,train_loss,train_accuracy,test_loss,test_accuracy,lr,images_per_second,epoch_seconds,wall_seconds";

/// What a run directory holds besides checkpoints and metrics.
#[derive(Serialize, Deserialize)]
struct RunInfo {
    spec: String,
    net: String,
    /// SHA-256 of `graph.json`.
    graph_sha256: String,
    params: u64,
    macs: u64,
    started: String,
    netc: String,
    /// The `--profile` the run was started with, for hints.
    #[serde(default)]
    profile: Option<String>,
}

/// Runs or resumes training. Everything that can fail before the first
/// step (the spec, the data and its classes and image size, the model) is
/// checked before a new run directory exists, so a run that cannot start
/// leaves nothing behind.
pub fn run(opts: &RunOptions) -> Result<RunOutcome, String> {
    match (&opts.resume, &opts.spec) {
        (Some(dir), _) => {
            let (graph, recipe, was) = resume_dir(dir, &opts.settings)?;
            let ready = prepare(&graph, &recipe, &opts.device)?;
            // A new epoch count is written once the run can go on, and said aloud.
            if let Some(was) = was {
                write(&dir.join("recipe.toml"), &toml::to_string(&recipe).expect("serialisable"))?;
                if !opts.quiet {
                    println!(
                        "{}: the run's epochs change from {was} to {} (recipe.toml updated)",
                        dir.display(),
                        recipe.train.epochs
                    );
                }
            }
            train(dir, &graph, &recipe, ready, opts)
        }
        (None, Some(spec)) => {
            let (graph, recipe) = resolve(spec, &opts.settings)?;
            if let Some(out) = &opts.out {
                refuse_existing(out)?;
            }
            let ready = prepare(&graph, &recipe, &opts.device)?;
            let dir = new_dir(spec, &graph, &recipe, &opts.settings, opts.out.as_deref())?;
            train(&dir, &graph, &recipe, ready, opts).map_err(|e| without_checkpoint(&dir, e))
        }
        (None, None) => Err("give a spec to run, or `--resume DIR`".to_string()),
    }
}

/// A new run that failed before its first checkpoint (a loss that diverged
/// at once, a full disk) has nothing to resume: its directory goes, so
/// that it is whole or absent and the same `--out` can be used again.
fn without_checkpoint(dir: &Path, error: String) -> String {
    if dir.join("last.safetensors").exists() || std::fs::remove_dir_all(dir).is_err() {
        return error;
    }
    format!("{error}\n(no checkpoint had been written, so the run directory `{}` was removed)", dir.display())
}

/// A run (or compare) never writes into a directory that has files.
pub fn refuse_existing(out: &Path) -> Result<(), String> {
    if out.exists() && out.read_dir().map_or(true, |mut d| d.next().is_some()) {
        return Err(format!("`{}` already exists; netc never writes into another run's directory", out.display()));
    }
    Ok(())
}

/// What training needs besides the graph and recipe, made before the run
/// directory is.
struct Ready {
    train_data: Arc<Dataset>,
    test_data: Arc<Dataset>,
    norm: Normalize,
    model: Model,
}

/// Says on stderr how many images `skip_bad_images` left out, and the first
/// few of them with what was wrong.
pub(super) fn report_skipped(data: &Dataset, split: &str) {
    if data.skipped.is_empty() {
        return;
    }
    let n = data.skipped.len();
    eprintln!(
        "warning: left out {n} {split} image{} that could not be read (skip_bad_images); {} remain",
        if n == 1 { "" } else { "s" },
        data.len()
    );
    for line in data.skipped.iter().take(5) {
        eprintln!("  {line}");
    }
    if n > 5 {
        eprintln!("  ... and {} more", n - 5);
    }
}

fn prepare(graph: &Graph, recipe: &Recipe, device: &Device) -> Result<Ready, String> {
    let t = &recipe.train;
    let shape = graph.image_shape()?;
    // A net that cannot take even one image is refused before its data is
    // made or read; the batch itself once the data's size caps it.
    let batch_option = "`--batch-size`, or `batch_size` in the spec's [train]";
    memory::check_batch_fits(graph, 1, device, batch_option)?;
    let load = |split, limit, seed| {
        data::load_recipe_data(&recipe.data, split, shape, limit, seed).map_err(|e| match &recipe.data.dataset {
            DataSource::Folder(_) => format!(
                "{e}\n(an image folder is PATH/train/<class>/*.png|jpg and PATH/test/<class>/*.png|jpg, or a .tar.gz of them; \
                 `--data folder:PATH` chooses another; README, \"Data\")"
            ),
            _ => e.to_string(),
        })
    };
    let train_data = Arc::new(load(Split::Train, recipe.data.train_images, t.seed)?);
    // The test set does not follow the training seed, so that runs with
    // different seeds, `netc eval` and `netc probe` all see the same images.
    let test_data = Arc::new(load(Split::Test, recipe.data.test_images, TEST_SEED)?);
    report_skipped(&train_data, "training");
    report_skipped(&test_data, "test");
    for split in [&train_data, &test_data] {
        if split.is_empty() {
            return Err(format!("{} has no images in one of its splits", split.source));
        }
        if split.classes.len() < 2 {
            return Err(format!(
                "{} has {} class ({}); a classifier needs at least 2 (PATH/train/<class>/*, one folder per class)",
                split.source,
                split.classes.len(),
                split.classes.join(", ")
            ));
        }
        check_classes(graph, split)?;
    }
    if train_data.classes != test_data.classes {
        return Err(format!(
            "{}: the train split's classes ({}) differ from the test split's ({})",
            train_data.source,
            train_data.classes.join(", "),
            test_data.classes.join(", ")
        ));
    }
    if t.batch_size == 0 {
        return Err("the batch size must be at least 1".to_string());
    }
    memory::check_batch_fits(graph, (t.batch_size as usize).min(train_data.len()), device, batch_option)?;
    let (mean, std) = train_data.channel_stats();
    // The native engine trains on the CPU; candle's model, which gives the
    // initial weights and later draws the probes, lives there too.
    let model = Model::new(graph, &Device::Cpu, t.seed).map_err(|e| e.to_string())?;
    Ok(Ready { train_data, test_data, norm: Normalize { mean, std }, model })
}

/// Compiles the spec with the profile and command line applied, and makes
/// a fresh run directory holding the graph and the resolved recipe.
/// Compiles `spec` with a profile and the command line applied: the graph
/// and the recipe as they will run (the command line wins over the profile,
/// the profile over the spec's recipe).
pub fn resolve(spec: &Path, s: &Settings) -> Result<(Graph, Recipe), String> {
    check_settings(s)?;
    let first = crate::compile::compile_file(spec, &s.set).map_err(|e| e.render())?;
    let mut recipe = first.recipe.clone();
    let mut graph = first.graph;
    if let Some(name) = &s.profile {
        let p = recipe.profile.get(name).cloned().ok_or_else(|| {
            let known: Vec<&String> = recipe.profile.keys().collect();
            format!("`{}` has no profile `{name}`; it has {known:?}", spec.display())
        })?;
        let mut set: Vec<(String, f64)> = p.set.iter().map(|(k, v)| (k.clone(), *v)).collect();
        set.retain(|(k, _)| !s.set.iter().any(|(c, _)| c == k));
        set.extend(s.set.iter().cloned());
        graph = crate::compile::compile_file(spec, &set).map_err(|e| e.render())?.graph;
        let t = &mut recipe.train;
        t.epochs = p.epochs.unwrap_or(t.epochs);
        t.batch_size = p.batch_size.unwrap_or(t.batch_size);
        t.optimizer = p.optimizer.clone().unwrap_or(t.optimizer.clone());
        t.optimizer.lr = p.lr.unwrap_or(t.optimizer.lr);
        let d = &mut recipe.data;
        d.dataset = p.data.clone().unwrap_or(d.dataset.clone());
        d.train_images = p.train_images.or(d.train_images);
        d.test_images = p.test_images.or(d.test_images);
    }
    // Paths in a spec are relative to the spec file, as `use` is; `--data`
    // is relative to the current directory. The run records them absolute.
    let spec_dir = spec.parent().unwrap_or(Path::new(""));
    recipe.data.dataset = anchored(&recipe.data.dataset, spec_dir);
    apply_settings(&mut recipe, s);
    recipe.data.dataset = anchored(&recipe.data.dataset, Path::new(""));
    if let (Some(epochs), Some(m)) =
        (s.epochs, crate::recipe::warmup_problem(recipe.train.warmup_epochs, recipe.train.epochs))
    {
        return Err(format!("`--epochs {epochs}`: {m} (`warmup_epochs` is in the spec's [train])"));
    }
    recipe.profile.clear();
    Ok((graph, recipe))
}

/// The command line's values, by the rules the spec's recipe keeps
/// (`Recipe::problems`), named as the options they came from.
pub fn check_settings(s: &Settings) -> Result<(), String> {
    let mut problems = Vec::new();
    if s.epochs == Some(0) {
        problems.push("`--epochs 0`: a run trains at least 1 epoch".to_string());
    }
    if s.batch_size == Some(0) {
        problems.push("`--batch-size 0`: a batch holds at least 1 image".to_string());
    }
    if let Some(lr) = s.lr
        && !(lr > 0.0 && lr.is_finite())
    {
        problems.push(format!("`--lr {lr}`: the learning rate must be above 0"));
    }
    for (option, n) in [("--train-images", s.train_images), ("--test-images", s.test_images)] {
        if n == Some(0) {
            problems.push(format!("`{option} 0`: use at least 1 image (leave the option out to use every image)"));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\nerror: ")),
    }
}

fn new_dir(spec: &Path, graph: &Graph, recipe: &Recipe, s: &Settings, out: Option<&Path>) -> Result<PathBuf, String> {
    let stem = spec.file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string());
    let dir = match out {
        Some(out) => {
            refuse_existing(out)?;
            out.to_path_buf()
        }
        None => unique_dir(&stem, s.profile.as_deref())?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let json = crate::summary::json(graph);
    write(&dir.join("graph.json"), &json)?;
    let toml = toml::to_string(recipe).map_err(|e| format!("cannot write the recipe: {e}"))?;
    write(&dir.join("recipe.toml"), &toml)?;
    let info = RunInfo {
        spec: absolute(spec).display().to_string(),
        net: graph.name.clone(),
        graph_sha256: sha256(json.as_bytes()),
        params: graph.total_params(),
        macs: graph.total_macs(),
        started: utc_now(),
        netc: env!("CARGO_PKG_VERSION").to_string(),
        profile: s.profile.clone(),
    };
    write(&dir.join("run.json"), &serde_json::to_string_pretty(&info).expect("serialisable"))?;
    write(&dir.join("metrics.csv"), &format!("{CSV_HEADER}\n"))?;
    write(&dir.join("metrics.jsonl"), "")?;
    Ok(dir)
}

/// Reads a run directory back: its graph and recipe, never the spec, with
/// `--epochs` applied; and the epochs it had, if `--epochs` changed them.
fn resume_dir(dir: &Path, s: &Settings) -> Result<(Graph, Recipe, Option<u32>), String> {
    check_settings(s)?;
    let (graph, mut recipe) = checkpoint::read_run_dir(dir)?;
    let changed = !s.set.is_empty()
        || s.profile.is_some()
        || s.data.is_some()
        || s.lr.is_some()
        || s.batch_size.is_some()
        || s.seed.is_some()
        || s.train_images.is_some()
        || s.test_images.is_some();
    if changed {
        return Err("`--resume` continues a run as it was; only `--epochs` may change".to_string());
    }
    if let Some(epochs) = s.epochs.filter(|e| *e != recipe.train.epochs) {
        let last = dir.join("last.safetensors");
        let done = match last.exists() {
            true => checkpoint::load(&last, &Device::Cpu)?.progress.map_or(0, |p| p.epoch),
            false => 0,
        };
        if u64::from(epochs) < done {
            return Err(format!(
                "`--epochs {epochs}`: {} has already trained {done} epoch{}; give at least {done}, or leave `--epochs` out to finish its {}",
                dir.display(),
                plural(done),
                recipe.train.epochs
            ));
        }
        if let Some(m) = crate::recipe::warmup_problem(recipe.train.warmup_epochs, epochs) {
            return Err(format!("`--epochs {epochs}`: {m}"));
        }
        let was = std::mem::replace(&mut recipe.train.epochs, epochs);
        return Ok((graph, recipe, Some(was)));
    }
    Ok((graph, recipe, None))
}

/// A data source with its path made absolute against `base` (relative
/// itself to the current directory); `..` is resolved in the text.
pub fn anchored(source: &DataSource, base: &Path) -> DataSource {
    let at = |p: &str| {
        let joined = absolute(&base.join(p));
        let mut out = PathBuf::new();
        for c in joined.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                c => out.push(c),
            }
        }
        out.display().to_string()
    };
    match source {
        DataSource::Synthetic => DataSource::Synthetic,
        DataSource::Cifar10(dir) => DataSource::Cifar10(at(dir)),
        DataSource::Folder(path) => DataSource::Folder(at(path)),
    }
}

/// "s" for every count but 1.
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `path` made absolute against the current directory (not resolving
/// links), so that what a run records works from anywhere.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn apply_settings(recipe: &mut Recipe, s: &Settings) {
    let t = &mut recipe.train;
    t.epochs = s.epochs.unwrap_or(t.epochs);
    t.batch_size = s.batch_size.unwrap_or(t.batch_size);
    t.optimizer.lr = s.lr.unwrap_or(t.optimizer.lr);
    t.seed = s.seed.unwrap_or(t.seed);
    let d = &mut recipe.data;
    d.dataset = s.data.clone().unwrap_or(d.dataset.clone());
    d.train_images = s.train_images.or(d.train_images);
    d.test_images = s.test_images.or(d.test_images);
    d.skip_bad_images |= s.skip_bad_images;
}

/// What every part of a run reads.
struct Context<'a> {
    dir: &'a Path,
    graph: &'a Graph,
    recipe: &'a Recipe,
    opts: &'a RunOptions,
    /// `last.safetensors`: the checkpoint a run resumes from.
    last: PathBuf,
    norm: Normalize,
    steps_per_epoch: u64,
}

impl Context<'_> {
    fn say(&self, line: &str) {
        if !self.opts.quiet {
            println!("{line}");
        }
    }

    fn save(&self, path: &Path, net: &dyn Trainer, progress: &Progress, with_optimizer: bool) -> Result<(), String> {
        let optimizer = if with_optimizer { net.optimizer_state()? } else { Default::default() };
        checkpoint::save(path, &net.model_state()?, &optimizer, progress, &self.norm)
    }
}

/// How an epoch's batches ended.
enum EpochEnd {
    /// Every batch ran: `sums` of loss, correct images, images, seconds.
    Done {
        sums: [f64; 4],
    },
    Interrupted,
}

fn train(dir: &Path, graph: &Graph, recipe: &Recipe, ready: Ready, opts: &RunOptions) -> Result<RunOutcome, String> {
    let t = &recipe.train;
    let Ready { train_data, test_data, norm, mut model } = ready;
    let steps_per_epoch = train_data.len().div_ceil(t.batch_size as usize) as u64;
    let cx = Context { dir, graph, recipe, opts, last: dir.join("last.safetensors"), norm, steps_per_epoch };
    let (mut progress, optimizer_state) = restore(&cx, &mut model)?;
    // A run killed while drawing its heatmaps has trained every epoch but
    // has no `probe/`: it goes on to draw them.
    let drawn = graph.probes.is_empty() || dir.join("probe").join("scores.json").exists();
    if progress.epoch >= t.epochs as u64 && !drawn {
        cx.say(&format!("{}: trained; drawing its heatmaps", dir.display()));
    }
    if progress.epoch >= t.epochs as u64 && drawn {
        cx.say(&format!(
            "{} already finished its {} epoch{}; give `--epochs` to train longer",
            dir.display(),
            t.epochs,
            plural(t.epochs.into())
        ));
        let final_accuracy = read_metrics(dir).last().map_or(0.0, |m| m.test_accuracy);
        return Ok(RunOutcome::Finished {
            dir: dir.to_path_buf(),
            final_accuracy,
            best_accuracy: progress.best_accuracy,
        });
    }
    let restored = optimizer_state.as_ref().map(|state| (state, progress.step));
    let mut net = trainer(opts.engine, &opts.device, &model, &t.optimizer, restored)?;
    // Metrics past the checkpoint come from an epoch that will run again.
    trim_metrics(dir, progress.epoch)?;
    if progress.step == 0 {
        cx.say(&format!(
            "training {} ({} parameters) on {} ({} train / {} test images), {}; run directory {}",
            graph.name,
            crate::summary::group(graph.total_params()),
            train_data.source,
            train_data.len(),
            test_data.len(),
            engine_words(opts.engine, net.device()),
            dir.display()
        ));
    }
    let run_start = Instant::now();
    let wall_before = previous_wall_seconds(dir);
    let mut final_accuracy = read_metrics(dir).last().map_or(0.0, |m| m.test_accuracy);
    for epoch in progress.epoch..t.epochs as u64 {
        let epoch_start = Instant::now();
        let sums = match train_epoch(&cx, net.as_mut(), &train_data, &mut progress, epoch)? {
            EpochEnd::Done { sums } => sums,
            EpochEnd::Interrupted => return Ok(RunOutcome::Interrupted { dir: dir.to_path_buf() }),
        };
        let train_seconds = sums[3] + epoch_start.elapsed().as_secs_f64();
        let test = evaluate(net.as_mut(), test_data.clone(), t.batch_size as usize, norm)?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss: sums[0] / sums[2].max(1.0),
            train_accuracy: sums[1] / sums[2].max(1.0),
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            lr: learning_rate(t, t.optimizer.lr, progress.step.saturating_sub(1), steps_per_epoch),
            images_per_second: sums[2] / train_seconds.max(1e-9),
            epoch_seconds: train_seconds,
            wall_seconds: wall_before + run_start.elapsed().as_secs_f64(),
        };
        end_epoch(&cx, net.as_ref(), &mut progress, &metrics)?;
        final_accuracy = test.accuracy;
    }
    draw_probes(&cx, net.as_ref(), model)?;
    Ok(RunOutcome::Finished { dir: dir.to_path_buf(), final_accuracy, best_accuracy: progress.best_accuracy })
}

/// The progress and optimiser state of the run's last checkpoint, whose
/// weights go into `model`; a fresh start without one.
fn restore(cx: &Context, model: &mut Model) -> Result<(Progress, Option<BTreeMap<String, Tensor>>), String> {
    let last = &cx.last;
    if !last.exists() {
        return Ok((Progress { best_accuracy: -1.0, ..Progress::default() }, None));
    }
    let cp = checkpoint::load(last, &Device::Cpu)?;
    model.load_state(&cp.model, &checkpoint::NOT_MODEL).map_err(|m| {
        format!("`{}` does not fit the run's graph:\n{}", last.display(), checkpoint::first_mismatches(&m))
    })?;
    let progress = cp.progress.ok_or_else(|| format!("`{}` holds no training progress", last.display()))?;
    if progress.epoch < cx.recipe.train.epochs as u64 {
        cx.say(&format!("resuming {} at epoch {}, batch {}", cx.dir.display(), progress.epoch + 1, progress.batch));
    }
    Ok((progress, Some(cp.optimizer)))
}

/// The training steps of one epoch, from the checkpoint's batch when the
/// run resumes inside it. Ctrl-C (or `--stop-after-steps`) writes a
/// checkpoint after the step and ends the run; a loss that is not finite
/// ends it with an error, the last checkpoint intact.
fn train_epoch(
    cx: &Context,
    net: &mut dyn Trainer,
    data: &Arc<Dataset>,
    progress: &mut Progress,
    epoch: u64,
) -> Result<EpochEnd, String> {
    let t = &cx.recipe.train;
    let skip = if epoch == progress.epoch { progress.batch } else { 0 };
    let mut sums = if skip > 0 { progress.sums } else { [0.0; 4] };
    let epoch_start = Instant::now();
    let bar = progress_bar(!cx.opts.quiet && std::io::stderr().is_terminal(), cx.steps_per_epoch, epoch, t.epochs);
    bar.set_position(skip);
    let batch_size = t.batch_size as usize;
    let batches = data::batches(data.clone(), batch_size, true, &t.augment, cx.norm, t.seed, epoch, Device::Cpu);
    for (index, batch) in batches.enumerate().skip(skip as usize) {
        let batch = batch.map_err(|e| e.to_string())?;
        let lr = learning_rate(t, t.optimizer.lr, progress.step, cx.steps_per_epoch);
        let dropout_seed = crate::rng::mix(&[t.seed, progress.step]);
        let settings = StepSettings { lr, label_smoothing: t.label_smoothing, grad_clip: t.grad_clip, dropout_seed };
        let loss = net.step(&batch, &settings)?;
        if !loss.value.is_finite() {
            bar.abandon();
            let kept = if cx.last.exists() {
                format!("the last good checkpoint, {}, is intact", cx.last.display())
            } else {
                "no checkpoint was written yet".to_string()
            };
            return Err(format!(
                "the loss became {} at epoch {}, step {}: training stopped; {kept}. Try a lower learning rate (`--lr`) or `grad_clip` in [train].",
                loss.value,
                epoch + 1,
                progress.step + 1
            ));
        }
        progress.step += 1;
        let n = batch.indices.len() as f64;
        sums[0] += loss.value * n;
        sums[1] += loss.correct as f64;
        sums[2] += n;
        bar.inc(1);
        let secs = sums[3] + epoch_start.elapsed().as_secs_f64();
        bar.set_message(format!(
            "loss {:.3} acc {:.1}% {:.0} img/s",
            sums[0] / sums[2],
            100.0 * sums[1] / sums[2],
            sums[2] / secs.max(1e-9)
        ));
        let stop = INTERRUPTED.load(Ordering::SeqCst) || cx.opts.stop_after_steps.is_some_and(|s| progress.step >= s);
        if stop {
            bar.abandon();
            sums[3] = secs;
            let here = Progress { epoch, batch: index as u64 + 1, sums, ..progress.clone() };
            cx.save(&cx.last, net, &here, true)?;
            cx.say(&format!("interrupted: checkpoint written; continue with `netc run --resume {}`", cx.dir.display()));
            return Ok(EpochEnd::Interrupted);
        }
    }
    bar.finish_and_clear();
    Ok(EpochEnd::Done { sums })
}

/// An epoch's line, its metrics row, the report, and its checkpoints:
/// `best.safetensors` when the test accuracy is the best so far, then
/// `last.safetensors`.
fn end_epoch(cx: &Context, net: &dyn Trainer, progress: &mut Progress, m: &EpochMetrics) -> Result<(), String> {
    cx.say(&format!(
        "epoch {:>3}/{}  loss {:.4}  acc {:5.1}%  test loss {:.4}  test acc {:5.1}%  lr {:.4}  {:.0} img/s  {:.1}s",
        m.epoch,
        cx.recipe.train.epochs,
        m.train_loss,
        100.0 * m.train_accuracy,
        m.test_loss,
        100.0 * m.test_accuracy,
        m.lr,
        m.images_per_second,
        m.epoch_seconds
    ));
    append_metrics(cx.dir, m)?;
    let best = m.test_accuracy > progress.best_accuracy;
    if best {
        progress.best_accuracy = m.test_accuracy;
    }
    let done = Progress { epoch: m.epoch, batch: 0, sums: [0.0; 4], ..progress.clone() };
    // `best` first: a kill between the two writes then loses nothing.
    if best {
        cx.save(&cx.dir.join("best.safetensors"), net, &done, false)?;
    }
    cx.save(&cx.last, net, &done, true)?;
    *progress = done;
    super::report::write_report(cx.dir, cx.graph, cx.recipe, None)
}

/// Heatmaps at the net's own probes from the final weights, into
/// `probe/` (built beside it and renamed when complete), and the report
/// with their scores. On a GPU they are drawn there, by the portable kernels.
fn draw_probes(cx: &Context, net: &dyn Trainer, mut model: Model) -> Result<(), String> {
    let (graph, recipe) = (cx.graph, cx.recipe);
    let probes: Vec<String> = graph.probes.iter().map(|p| p.name.clone()).collect();
    if probes.is_empty() {
        return Ok(());
    }
    let weights: std::collections::HashMap<String, Tensor> = net.model_state()?.into_iter().collect();
    model.load_state(&weights, &[]).map_err(|m| format!("the trained weights do not load: {m:?}"))?;
    if !net.device().is_cpu() {
        model = model.to(net.device(), Kernels::Portable).map_err(|e| e.to_string())?;
    }
    // The images of `data::probe_images`, as `netc probe` and `netc compare` draw.
    let shown =
        data::probe_images(&recipe.data, graph.image_shape()?, recipe.probe.count.max(1)).map_err(|e| e.to_string())?;
    let out = cx.dir.join("probe");
    let tmp = crate::probe::partial_path(&out);
    let _ = std::fs::remove_dir_all(&tmp);
    let scores =
        crate::probe::draw(&mut model, &Arc::new(shown), cx.norm, &probes, &recipe.probe, &tmp).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&tmp);
        })?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot move `{}` to `{}`: {e}", tmp.display(), out.display()))?;
    super::report::write_report(cx.dir, graph, recipe, Some(&scores))
}

/// "native engine" or "candle engine on cuda:0", for messages.
fn engine_words(engine: Engine, device: &Device) -> String {
    match engine {
        Engine::Native => "native engine".to_string(),
        Engine::Candle => format!("candle engine on {}", crate::runtime::device_name(device)),
    }
}

/// The seed of the test split's subset (and, for synthetic data, images).
pub const TEST_SEED: u64 = 0;

/// The net's output must be one logit per class of the data.
pub fn check_classes(graph: &Graph, data: &Dataset) -> Result<(), String> {
    let output = &graph.nodes[graph.output].shape;
    let k = data.classes.len();
    if output.as_slice() != [k] {
        return Err(format!(
            "net `{}` outputs {output:?}, but {} has {k} classes ({}); the net must end in `linear({k})` (set its class count, e.g. `--set classes={k}`)",
            graph.name,
            data.source,
            data.classes.join(", ")
        ));
    }
    Ok(())
}

fn progress_bar(show: bool, len: u64, epoch: u64, epochs: u32) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "epoch {}/{epochs} [{{bar:30}}] {{pos}}/{{len}} {{msg}} eta {{eta}}",
        epoch + 1
    ))
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Rewrites both metrics files from the readable `metrics.jsonl` rows up
/// to the checkpoint's epoch: a run killed after writing an epoch's row but
/// before its checkpoint redoes that epoch, and a kill mid-write may have
/// left a torn line or a row in only one file.
fn trim_metrics(dir: &Path, epochs_done: u64) -> Result<(), String> {
    let rows = read_metrics(dir);
    let kept: Vec<&EpochMetrics> = rows.iter().filter(|m| m.epoch <= epochs_done).collect();
    write(
        &dir.join("metrics.csv"),
        &(format!("{CSV_HEADER}\n") + &kept.iter().map(|m| csv_row(m)).collect::<String>()),
    )?;
    let jsonl: String = kept.iter().map(|m| serde_json::to_string(m).expect("serialisable") + "\n").collect();
    write(&dir.join("metrics.jsonl"), &jsonl)
}

fn append_metrics(dir: &Path, m: &EpochMetrics) -> Result<(), String> {
    append(&dir.join("metrics.csv"), &csv_row(m))?;
    append(&dir.join("metrics.jsonl"), &(serde_json::to_string(m).expect("serialisable") + "\n"))
}

fn csv_row(m: &EpochMetrics) -> String {
    format!(
        "{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.2},{:.3},{:.3}\n",
        m.epoch,
        m.train_loss,
        m.train_accuracy,
        m.test_loss,
        m.test_accuracy,
        m.lr,
        m.images_per_second,
        m.epoch_seconds,
        m.wall_seconds
    )
}

/// The metrics so far, from `metrics.jsonl`.
pub fn read_metrics(dir: &Path) -> Vec<EpochMetrics> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn previous_wall_seconds(dir: &Path) -> f64 {
    read_metrics(dir).last().map_or(0.0, |m| m.wall_seconds)
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// Writes a file atomically (temporary file + rename).
pub(super) fn write(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// A new directory `runs/<stem>[-<profile>]-<UTC time>`, with `-2`, `-3`,
/// ... if taken; creating it claims it, so two runs started in the same
/// second do not share one.
pub fn unique_dir(stem: &str, profile: Option<&str>) -> Result<PathBuf, String> {
    let stamp = utc_now().replace([':', '-'], "").replace('T', "-");
    let base = match profile {
        Some(p) => format!("{stem}-{p}-{stamp}"),
        None => format!("{stem}-{stamp}"),
    };
    let root = PathBuf::from("runs");
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create `{}`: {e}", root.display()))?;
    for n in 1.. {
        let dir = if n == 1 { root.join(&base) } else { root.join(format!("{base}-{n}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create `{}`: {e}", dir.display())),
        }
    }
    unreachable!("some suffix is free")
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`, without a date crate.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
