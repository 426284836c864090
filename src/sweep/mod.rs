//! `netc sweep`: a grid of runs (specs x `--set` values x seeds), each an
//! ordinary run directory under one sweep directory, trained one after the
//! other in this process by [`crate::train::run`]; then the grid's summary by
//! `netc compare` (statistics over seeds) in `DIR/summary/`.
//!
//! The sweep directory is `sweep.toml` (the grid, written first and
//! atomically) and one run directory per cell, named
//! `<spec stem>[-<name>=<value>...]-seed<k>`. Running the same command again
//! skips finished cells, resumes interrupted ones with `--resume`'s code, and
//! restarts a cell that was killed before its first checkpoint (its
//! directory then holds only the files a run writes when it starts). A
//! different grid for an existing sweep directory is refused.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::train::{RunOptions, RunOutcome, Settings};

/// Test images the summary draws and scores per run.
pub const SUMMARY_IMAGES: usize = 32;

/// The file that makes a folder a sweep directory.
pub const SWEEP_FILE: &str = "sweep.toml";

/// What `netc sweep` was asked for.
pub struct SweepRequest {
    pub specs: Vec<PathBuf>,
    /// Seeds, in the order given; at least one, no repeats.
    pub seeds: Vec<u64>,
    /// `--set NAME=V1,V2`: every combination of values is a column of the grid.
    pub grid: Vec<(String, Vec<f64>)>,
    /// Every other `netc run` option (its `seed` and `set` are ignored).
    pub settings: Settings,
    pub out: PathBuf,
    pub quiet: bool,
    /// Stop each run as Ctrl-C would after this many steps (for tests).
    pub stop_after_steps: Option<u64>,
    /// The engine and device every run trains on (not part of the grid: a
    /// sweep may be continued on another, as a run may).
    pub engine: crate::train::Engine,
    pub device: candle_core::Device,
}

/// The grid as `sweep.toml` records it: what must be equal for a second
/// `netc sweep` into the same directory to continue it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// The spec files, absolute.
    pub specs: Vec<String>,
    pub seeds: Vec<u64>,
    /// `--set` names and their values, in the order given.
    #[serde(default)]
    pub set: Vec<SetValues>,
    /// The shared `netc run` options, as given (paths absolute).
    pub options: Options,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetValues {
    pub name: String,
    pub values: Vec<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub profile: Option<String>,
    pub epochs: Option<u32>,
    pub batch_size: Option<u32>,
    pub lr: Option<f64>,
    pub data: Option<String>,
    pub train_images: Option<usize>,
    pub test_images: Option<usize>,
    #[serde(default)]
    pub skip_bad_images: bool,
}

/// `sweep.toml`: the grid, then one entry per cell (derived from the grid;
/// written so that a person and `netc compare` can read the cells' groups).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepFile {
    pub netc: String,
    pub grid: Grid,
    #[serde(default)]
    pub cell: Vec<Cell>,
}

/// One run of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The run directory's name inside the sweep directory.
    pub dir: String,
    pub spec: String,
    pub seed: u64,
    /// The `--set` values of this cell.
    #[serde(default)]
    pub set: Vec<(String, f64)>,
    /// Cells that differ only in their seed share a group: one row of the
    /// summary's statistics.
    pub group: String,
}

/// Seeds from `--seeds 0,1,2` (ranges `0-4` too): at least one, each a
/// whole number, none twice.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>, String> {
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("`--seeds {text}`: an empty seed; give whole numbers, e.g. `--seeds 0,1,2`"));
        }
        let number = |s: &str| {
            s.trim().parse::<u64>().map_err(|_| format!("`--seeds {text}`: `{s}` is not a whole number 0 or more"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b || b - a > 10_000 {
                    return Err(format!("`--seeds {text}`: `{part}` is not a range from low to high (at most 10,000)"));
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(number(part)?),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = seeds.iter().find(|s| !seen.insert(**s)) {
        return Err(format!("`--seeds {text}`: seed {twice} is given twice; each seed is one run"));
    }
    Ok(seeds)
}

/// `--set NAME=V1,V2,...` into a name and its values.
pub fn parse_set_values(text: &str) -> Result<(String, Vec<f64>), String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("`--set {text}`: give NAME=VALUE or NAME=V1,V2, e.g. `--set width=0.125,0.25`"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`--set {text}`: the name is empty"));
    }
    let values: Vec<f64> = values
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("`--set {text}`: `{v}` is not a number"))
        })
        .collect::<Result<_, _>>()?;
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(format!("`--set {text}`: {v} is given twice"));
        }
    }
    Ok((name.to_string(), values))
}

/// A number as a directory name and a label show it: `0.125`, `10`.
fn number_words(v: f64) -> String {
    format!("{v}")
}

impl SweepRequest {
    fn grid(&self) -> Grid {
        let s = &self.settings;
        Grid {
            specs: self.specs.iter().map(|p| crate::train::absolute(p).display().to_string()).collect(),
            seeds: self.seeds.clone(),
            set: self
                .grid
                .iter()
                .map(|(name, values)| SetValues { name: name.clone(), values: values.clone() })
                .collect(),
            options: Options {
                profile: s.profile.clone(),
                epochs: s.epochs,
                batch_size: s.batch_size,
                lr: s.lr,
                data: s.data.as_ref().map(|d| String::from(crate::train::anchored(d, Path::new("")))),
                train_images: s.train_images,
                test_images: s.test_images,
                skip_bad_images: s.skip_bad_images,
            },
        }
    }
}

/// The cells of a grid, seed-major: every spec and setting at the first
/// seed, then at the second, ..., so that a sweep stopped early has the
/// same number of seeds of each (give or take one).
pub fn cells(grid: &Grid) -> Result<Vec<Cell>, String> {
    let mut stems = std::collections::BTreeMap::new();
    for spec in &grid.specs {
        let stem = Path::new(spec).file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string());
        if let Some(other) = stems.insert(stem.clone(), spec.clone()) {
            return Err(format!(
                "`{other}` and `{spec}` are both named `{stem}`; a sweep names its runs by the spec's file name"
            ));
        }
    }
    // Every combination of the `--set` values, in the order given.
    let mut combos: Vec<Vec<(String, f64)>> = vec![vec![]];
    for SetValues { name, values } in &grid.set {
        combos = combos
            .iter()
            .flat_map(|c| values.iter().map(move |v| [c.clone(), vec![(name.clone(), *v)]].concat()))
            .collect();
    }
    // Names show only what varies; a name set to one value is in sweep.toml.
    let varies = |name: &str| grid.set.iter().any(|s| s.name == name && s.values.len() > 1);
    let mut out = Vec::new();
    for &seed in &grid.seeds {
        for spec in &grid.specs {
            let stem = Path::new(spec).file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string());
            for combo in &combos {
                let words: Vec<String> =
                    combo.iter().filter(|(n, _)| varies(n)).map(|(n, v)| format!("{n}={}", number_words(*v))).collect();
                let group = std::iter::once(stem.clone()).chain(words.iter().cloned()).collect::<Vec<_>>().join(" ");
                let dir = std::iter::once(stem.clone())
                    .chain(words.iter().cloned())
                    .chain([format!("seed{seed}")])
                    .collect::<Vec<_>>()
                    .join("-");
                out.push(Cell { dir, spec: spec.clone(), seed, set: combo.clone(), group });
            }
        }
    }
    Ok(out)
}

/// Per run, the group a sweep put it in (None for a run given on its own).
pub type Groups = Vec<Option<String>>;

/// What the sweep did.
#[derive(Debug)]
pub enum SweepOutcome {
    /// Every cell finished; the summary is in `summary`.
    Finished { dir: PathBuf, trained: usize, skipped: usize, summary: Result<PathBuf, String> },
    /// A run was interrupted (Ctrl-C); the same command continues.
    Interrupted { dir: PathBuf, done: usize, total: usize },
}

/// The files a run writes when it starts, before its first checkpoint.
const START_FILES: [&str; 5] = ["graph.json", "recipe.toml", "run.json", "metrics.csv", "metrics.jsonl"];

/// Where a cell's run directory stands.
#[derive(Debug, PartialEq)]
enum State {
    /// No directory: a new run.
    New,
    /// Killed before its first checkpoint: only the start files; nothing
    /// trained, so it starts again.
    Unstarted,
    /// Has a checkpoint, not finished (or its heatmaps are missing): resume.
    Partial,
    /// Trained all its epochs and drew its heatmaps.
    Done,
}

fn state(dir: &Path) -> Result<State, String> {
    if !dir.exists() {
        return Ok(State::New);
    }
    let last = dir.join("last.safetensors");
    if !last.exists() {
        let names: Vec<String> = dir
            .read_dir()
            .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        let known = |n: &&String| START_FILES.contains(&n.as_str()) || n.ends_with(".tmp");
        let mut others: Vec<&String> = names.iter().filter(|n| !known(n)).collect();
        if !others.is_empty() {
            others.sort();
            let list = others.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
            return Err(format!(
                "`{}` has no checkpoint (`last.safetensors`) but holds {list}, which a run does not write before \
                 its first checkpoint; netc leaves it alone: move it away and run the sweep again",
                dir.display()
            ));
        }
        return Ok(State::Unstarted);
    }
    let cp = crate::checkpoint::load(&last, &candle_core::Device::Cpu)?;
    let (graph, recipe) = crate::checkpoint::read_run_dir(dir)?;
    let epochs_done = cp.progress.map_or(0, |p| p.epoch);
    let drawn = graph.probes.is_empty() || dir.join("probe").join("scores.json").exists();
    Ok(if epochs_done >= u64::from(recipe.train.epochs) && drawn { State::Done } else { State::Partial })
}

/// Checks the request, writes or checks `sweep.toml`, and trains the cells
/// that are not done, one after the other; then writes the summary.
pub fn sweep(r: &SweepRequest) -> Result<SweepOutcome, String> {
    if r.specs.is_empty() {
        return Err("give at least one spec to sweep".to_string());
    }
    if r.seeds.is_empty() {
        return Err("`--seeds`: give at least one seed, e.g. `--seeds 0,1,2`".to_string());
    }
    crate::train::check_settings(&r.settings)?;
    for (i, (name, values)) in r.grid.iter().enumerate() {
        if values.is_empty() {
            return Err(format!("`--set {name}=`: give at least one value"));
        }
        if r.grid[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("`--set {name}` is given twice; list its values in one: `--set {name}=V1,V2`"));
        }
    }
    for spec in &r.specs {
        if !spec.is_file() {
            return Err(format!("`{}`: no such spec file; nothing was trained or created", spec.display()));
        }
    }
    let grid = r.grid();
    let cells = cells(&grid)?;
    // Every cell compiles with its settings (and its profile exists) before
    // anything is written.
    let mut checked = std::collections::BTreeSet::new();
    for cell in &cells {
        if checked.insert((cell.spec.clone(), format!("{:?}", cell.set))) {
            crate::train::resolve(Path::new(&cell.spec), &cell_settings(r, cell))
                .map_err(|e| format!("{e}\n(in the sweep's cell `{}`; nothing was trained or created)", cell.dir))?;
        }
    }
    let file = SweepFile { netc: env!("CARGO_PKG_VERSION").to_string(), grid: grid.clone(), cell: cells.clone() };
    let path = r.out.join(SWEEP_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let old: SweepFile = toml::from_str(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
        if old.grid != grid {
            return Err(format!(
                "`{}` holds another sweep: {}.\nA sweep directory holds one grid; rerun with the same specs, seeds, \
                 `--set` values and options to continue it, or give another `--out`",
                r.out.display(),
                grid_difference(&old.grid, &grid)
            ));
        }
    } else if r.out.exists() && r.out.read_dir().map_or(true, |mut d| d.next().is_some()) {
        return Err(format!(
            "`{}` has files but no {SWEEP_FILE}; netc never writes into another folder's files: give a new `--out`",
            r.out.display()
        ));
    } else {
        std::fs::create_dir_all(&r.out).map_err(|e| format!("cannot create `{}`: {e}", r.out.display()))?;
        write_atomic(&path, &toml::to_string(&file).map_err(|e| format!("cannot write the sweep file: {e}"))?)?;
    }

    let total = cells.len();
    let states: Vec<State> = cells.iter().map(|c| state(&r.out.join(&c.dir))).collect::<Result<_, _>>()?;
    let mut done = states.iter().filter(|s| **s == State::Done).count();
    let skipped = done;
    let say = |line: &str| {
        if !r.quiet {
            eprintln!("{line}");
        }
    };
    if skipped > 0 {
        say(&format!("sweep {}: {skipped} of {total} runs already finished", r.out.display()));
    }
    let start = Instant::now();
    let mut trained = 0usize;
    let terminal = std::io::stderr().is_terminal();
    for (cell, st) in cells.iter().zip(&states) {
        if *st == State::Done {
            continue;
        }
        let dir = r.out.join(&cell.dir);
        let eta = match trained {
            0 => String::new(),
            n => {
                let per = start.elapsed().as_secs_f64() / n as f64;
                format!(", about {} left", minutes(per * (total - done) as f64))
            }
        };
        let bold = |s: String| if terminal { format!("\x1b[1m{s}\x1b[0m") } else { s };
        say(&bold(format!(
            "sweep [{}/{total}] {} ({done} done, {} elapsed{eta})",
            done + 1,
            cell.dir,
            minutes(start.elapsed().as_secs_f64())
        )));
        if *st == State::Unstarted {
            // Nothing trained: only the start files (checked by `state`).
            std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove `{}`: {e}", dir.display()))?;
        }
        let opts = match st {
            State::Partial => RunOptions {
                spec: None,
                resume: Some(dir.clone()),
                settings: Settings::default(),
                out: None,
                quiet: r.quiet,
                stop_after_steps: r.stop_after_steps,
                engine: r.engine,
                device: r.device.clone(),
            },
            _ => RunOptions {
                spec: Some(PathBuf::from(&cell.spec)),
                resume: None,
                settings: cell_settings(r, cell),
                out: Some(dir.clone()),
                quiet: r.quiet,
                stop_after_steps: r.stop_after_steps,
                engine: r.engine,
                device: r.device.clone(),
            },
        };
        match crate::train::run(&opts).map_err(|e| format!("{e}\n(in the sweep's run `{}`)", dir.display()))? {
            RunOutcome::Finished { .. } => {
                done += 1;
                trained += 1;
            }
            RunOutcome::Interrupted { .. } => {
                return Ok(SweepOutcome::Interrupted { dir: r.out.clone(), done, total });
            }
        }
    }
    say(&format!("sweep {}: all {total} runs finished; writing the summary", r.out.display()));
    let summary = write_summary(&r.out, &file);
    Ok(SweepOutcome::Finished { dir: r.out.clone(), trained, skipped, summary })
}

/// The settings of one cell's run: the shared options, its seed and `--set` values.
fn cell_settings(r: &SweepRequest, cell: &Cell) -> Settings {
    Settings { seed: Some(cell.seed), set: cell.set.clone(), ..r.settings.clone() }
}

/// `netc compare` over the sweep's runs into `DIR/summary/` (built under a
/// hidden folder, then put in place of the previous summary).
fn write_summary(dir: &Path, file: &SweepFile) -> Result<PathBuf, String> {
    let out = dir.join("summary");
    let tmp = crate::probe::partial_path(&out);
    let _ = std::fs::remove_dir_all(&tmp);
    let runs: Vec<PathBuf> = file.cell.iter().map(|c| dir.join(&c.dir)).collect();
    let groups: Vec<Option<String>> = file.cell.iter().map(|c| Some(c.group.clone())).collect();
    let request = crate::probe::CompareRequest {
        runs: &runs,
        groups: &groups,
        probe: None,
        count: SUMMARY_IMAGES,
        aggregate: crate::recipe::Aggregate::Mean,
        own_scale: false,
        out: &tmp,
        device: candle_core::Device::Cpu,
    };
    crate::probe::compare(&request).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot move `{}` to `{}`: {e}", tmp.display(), out.display()))?;
    Ok(out)
}

/// A sweep directory's runs and their groups, for `netc compare DIR`: the
/// cells that have finished (trained and drawn), in the grid's order, and
/// how many have not.
pub fn finished_cells(dir: &Path) -> Result<(Vec<PathBuf>, Groups, usize), String> {
    let path = dir.join(SWEEP_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let file: SweepFile = toml::from_str(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
    let mut runs = Vec::new();
    let mut groups = Vec::new();
    let mut missing = 0;
    for cell in &file.cell {
        let run = dir.join(&cell.dir);
        // A cell that cannot be continued as it is (see `state`) is not finished either.
        if matches!(state(&run), Ok(State::Done)) {
            runs.push(run);
            groups.push(Some(cell.group.clone()));
        } else {
            missing += 1;
        }
    }
    Ok((runs, groups, missing))
}

/// Expands sweep directories among `paths` into their finished runs (with
/// their groups); other paths are single runs. Says on stderr how many of a
/// sweep's runs are not finished and left out.
pub fn expand_runs(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Groups), String> {
    let mut runs = Vec::new();
    let mut groups = Vec::new();
    for p in paths {
        if p.join(SWEEP_FILE).is_file() {
            let (r, g, missing) = finished_cells(p)?;
            if missing > 0 {
                eprintln!(
                    "note: the sweep `{}` has {missing} unfinished run{}, left out",
                    p.display(),
                    if missing == 1 { "" } else { "s" }
                );
            }
            if r.is_empty() {
                return Err(format!("the sweep `{}` has no finished run yet", p.display()));
            }
            runs.extend(r);
            groups.extend(g);
        } else {
            runs.push(p.clone());
            groups.push(None);
        }
    }
    Ok((runs, groups))
}

/// What differs between two grids, in words.
fn grid_difference(old: &Grid, new: &Grid) -> String {
    let mut parts = Vec::new();
    if old.specs != new.specs {
        parts.push(format!("specs {:?} there, {:?} now", old.specs, new.specs));
    }
    if old.seeds != new.seeds {
        parts.push(format!("seeds {:?} there, {:?} now", old.seeds, new.seeds));
    }
    if old.set != new.set {
        let words = |s: &[SetValues]| {
            s.iter()
                .map(|s| {
                    format!("{}={}", s.name, s.values.iter().map(|v| number_words(*v)).collect::<Vec<_>>().join(","))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        parts.push(format!("`--set` {{{}}} there, {{{}}} now", words(&old.set), words(&new.set)));
    }
    if old.options != new.options {
        parts.push(format!("options {:?} there, {:?} now", old.options, new.options));
    }
    parts.join("; ")
}

fn minutes(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s => format!("{:.0} min", s / 60.0),
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::File::open(&tmp).and_then(|f| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
