//! Checkpoints: one safetensors file holding the model (parameters and
//! batch-norm statistics under their IR names), the optimiser state
//! (`netc/optim/*`) and where training stands (`netc/train/*`), so one atomic write
//! keeps them consistent. Any safetensors reader can open it.
//!
//! `train` writes them and resumes from them; `train` (for `netc eval`) and
//! `probe` load a model from them with [`load_model`], and read the net and
//! recipe of the run directory around them with [`read_run_dir`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::data::Normalize;
use crate::runtime::Model;

/// Where a run stands, saved with its weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// The epoch being trained (0-based).
    pub epoch: u64,
    /// Batches of that epoch already done.
    pub batch: u64,
    /// Optimiser steps over the whole run.
    pub step: u64,
    /// Best test accuracy so far (-1 before the first evaluation).
    pub best_accuracy: f64,
    /// Running sums of the unfinished epoch: loss, correct, seen, seconds.
    pub sums: [f64; 4],
}

pub struct Checkpoint {
    pub model: HashMap<String, Tensor>,
    pub optimizer: BTreeMap<String, Tensor>,
    pub progress: Option<Progress>,
    /// The input normalisation the model was trained with.
    pub normalize: Option<Normalize>,
}

// Node names are identifiers joined by dots, so a `/` keeps these apart
// from every model tensor (a node may well be called `train`).
const OPTIM: &str = "netc/optim/";
const TRAIN: &str = "netc/train/";
const DATA: &str = "netc/data/";

/// The prefixes of what is not the model, for loading the model alone.
pub const NOT_MODEL: [&str; 3] = [OPTIM, TRAIN, DATA];

/// Writes `path` atomically: a temporary file in the same folder, synced,
/// then renamed over the old one. A crash leaves the old file intact.
pub fn save(
    path: &Path,
    model: &BTreeMap<String, Tensor>,
    optimizer: &BTreeMap<String, Tensor>,
    progress: &Progress,
    normalize: &Normalize,
) -> Result<(), String> {
    let mut all: HashMap<String, Tensor> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.extend(optimizer.iter().map(|(k, v)| (format!("{OPTIM}{k}"), v.clone())));
    let p = progress;
    let scalars = [
        ("epoch", p.epoch as f64),
        ("batch", p.batch as f64),
        ("step", p.step as f64),
        ("best_accuracy", p.best_accuracy),
    ];
    for (k, v) in scalars {
        all.insert(format!("{TRAIN}{k}"), scalar(v)?);
    }
    all.insert(format!("{TRAIN}sums"), Tensor::new(&p.sums, &Device::Cpu).map_err(|e| e.to_string())?);
    for (k, v) in [("mean", normalize.mean), ("std", normalize.std)] {
        all.insert(format!("{DATA}{k}"), Tensor::new(&v, &Device::Cpu).map_err(|e| e.to_string())?);
    }
    let tmp = temp_path(path);
    let written = candle_core::safetensors::save(&all, &tmp)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| e.to_string()))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
    written.map_err(|e| {
        // A full disk fails the write part-way: the previous checkpoint is
        // untouched, and the torn copy must not take the space it needs.
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write checkpoint `{}`: {e}; the previous checkpoint is kept", path.display())
    })
}

fn scalar(v: f64) -> Result<Tensor, String> {
    Tensor::new(&[v], &Device::Cpu).map_err(|e| e.to_string())
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Reads a checkpoint (or any safetensors file of weights). Errors name the
/// file and say what is wrong with it.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint, String> {
    let fail = |what: String| format!("checkpoint `{}`: {what}", path.display());
    if !path.exists() {
        return Err(fail("no such file".to_string()));
    }
    let tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| fail(format!("not a readable safetensors file ({e})")))?;
    let mut cp = Checkpoint { model: HashMap::new(), optimizer: BTreeMap::new(), progress: None, normalize: None };
    let mut train = HashMap::new();
    let mut data = HashMap::new();
    for (name, t) in tensors {
        if let Some(k) = name.strip_prefix(OPTIM) {
            cp.optimizer.insert(k.to_string(), t);
        } else if let Some(k) = name.strip_prefix(TRAIN) {
            train.insert(k.to_string(), t);
        } else if let Some(k) = name.strip_prefix(DATA) {
            data.insert(k.to_string(), t);
        } else {
            cp.model.insert(name, t);
        }
    }
    if let (Some(mean), Some(std)) = (data.get("mean"), data.get("std")) {
        let three = |t: &Tensor, k: &str| -> Result<[f32; 3], String> {
            let v = t.to_dtype(DType::F32).and_then(|t| t.to_vec1::<f32>()).map_err(|e| fail(e.to_string()))?;
            v.try_into().map_err(|_| fail(format!("`{DATA}{k}` does not hold 3 numbers")))
        };
        cp.normalize = Some(Normalize { mean: three(mean, "mean")?, std: three(std, "std")? });
    }
    if !train.is_empty() {
        let get = |k: &str| -> Result<Vec<f64>, String> {
            let t = train.get(k).ok_or_else(|| fail(format!("`{TRAIN}{k}` is missing")))?;
            t.to_dtype(DType::F64).and_then(|t| t.flatten_all()?.to_vec1::<f64>()).map_err(|e| fail(e.to_string()))
        };
        let one = |k: &str| -> Result<f64, String> {
            get(k)?.first().copied().ok_or_else(|| fail(format!("`{TRAIN}{k}` is empty")))
        };
        let sums = get("sums")?;
        let sums: [f64; 4] = sums.try_into().map_err(|_| fail(format!("`{TRAIN}sums` does not hold 4 numbers")))?;
        cp.progress = Some(Progress {
            epoch: one("epoch")? as u64,
            batch: one("batch")? as u64,
            step: one("step")? as u64,
            best_accuracy: one("best_accuracy")?,
            sums,
        });
    }
    Ok(cp)
}

/// How many mismatches an error lists: a checkpoint of another width
/// mismatches in every tensor, and the first few say what is wrong.
pub const MISMATCHES_SHOWN: usize = 5;

/// The first [`MISMATCHES_SHOWN`] mismatches, one per line, and how many
/// more there are.
pub fn first_mismatches(mismatches: &[crate::runtime::Mismatch]) -> String {
    let mut lines: Vec<String> = mismatches.iter().take(MISMATCHES_SHOWN).map(|m| format!("  {m}")).collect();
    if mismatches.len() > MISMATCHES_SHOWN {
        lines.push(format!("  ... and {} more", mismatches.len() - MISMATCHES_SHOWN));
    }
    lines.join("\n")
}

/// When the weights sit in a run directory, what its `graph.json` and
/// `run.json` recorded that differs from `graph`: the net arguments and
/// the profile to give so that the spec compiles to the run's net.
fn run_hint(graph: &crate::graph::Graph, weights: &Path) -> String {
    let Some(dir) = weights.parent() else { return String::new() };
    let Ok((run, _)) = read_run_dir(dir) else { return String::new() };
    let differ: Vec<String> =
        run.args.iter().filter(|(k, v)| graph.args.get(*k) != Some(*v)).map(|(k, v)| format!("{k}={v}")).collect();
    let profile = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("profile").and_then(|p| p.as_str()).map(str::to_string));
    let mut hint = format!("\nhint: the run in `{}` recorded net `{}`", dir.display(), run.name);
    if !differ.is_empty() {
        hint += &format!(" with {} (its graph.json)", differ.join(", "));
    }
    match (profile, differ.is_empty()) {
        (Some(p), _) => hint += &format!("; it was trained with `--profile {p}`: give the same"),
        (None, false) => {
            hint += &format!("; give {}", differ.iter().map(|d| format!("`--set {d}`")).collect::<Vec<_>>().join(" "))
        }
        (None, true) => {}
    }
    hint
}

/// A run directory's net and recipe as `netc run` wrote them
/// (`graph.json`, `recipe.toml`), never the spec's. A directory without a
/// `graph.json` is said not to be a run directory at all.
pub fn read_run_dir(dir: &Path) -> Result<(crate::graph::Graph, crate::recipe::Recipe), String> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| match dir.is_dir() {
            false if !dir.exists() => format!("`{}` does not exist", dir.display()),
            false => format!("`{}` is a file, not a run directory", dir.display()),
            true if name == "graph.json" && e.kind() == std::io::ErrorKind::NotFound => format!(
                "`{}` is not a run directory: it has no graph.json (`netc run` writes one first)",
                dir.display()
            ),
            true => format!("`{}`: {e}", path.display()),
        })
    };
    let graph =
        serde_json::from_str(&read("graph.json")?).map_err(|e| format!("`{}/graph.json`: {e}", dir.display()))?;
    let recipe = toml::from_str(&read("recipe.toml")?).map_err(|e| format!("`{}/recipe.toml`: {e}", dir.display()))?;
    Ok((graph, recipe))
}

/// The net of `graph` with the weights of a checkpoint, and the input
/// normalisation it was trained with. A checkpoint that does not fit is an
/// error that lists every mismatch.
pub fn load_model(graph: &crate::graph::Graph, weights: &Path, device: &Device) -> Result<(Model, Normalize), String> {
    let cp = load(weights, device)?;
    let mut model = Model::new(graph, device, 0).map_err(|e| e.to_string())?;
    let tensors = cp.model;
    if let Err(mismatches) = model.load_state(&tensors, &NOT_MODEL) {
        return Err(format!(
            "checkpoint `{}` does not fit net `{}` ({} mismatch{}):\n{}{}",
            weights.display(),
            graph.name,
            mismatches.len(),
            if mismatches.len() == 1 { "" } else { "es" },
            first_mismatches(&mismatches),
            run_hint(graph, weights)
        ));
    }
    let norm = cp.normalize.ok_or_else(|| {
        format!(
            "checkpoint `{}` has no data normalisation (`netc/data/mean`, `netc/data/std`); was it written by netc run?",
            weights.display()
        )
    })?;
    Ok((model, norm))
}
