//! The `netc` command line. All work happens in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use netc::compile::Checked;
use netc::recipe::DataSource;

#[derive(Parser)]
#[command(name = "netc", version, about = "Compile, check and run .net model specs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs for mistakes; print every error with its line and column.
    ///
    /// A file without a net is checked as a library of blocks. Exits 0 when
    /// every file is clean, 1 when any has errors.
    Check {
        /// Spec files (`.net`).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
    /// Compile a spec and show the network: a table, the Graph IR as JSON,
    /// or Graphviz.
    Compile {
        /// The spec file (`.net`).
        spec: PathBuf,
        /// Override a net parameter, e.g. `--set width=0.25` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// What to print.
        #[arg(long, value_enum, default_value_t = Format::Summary)]
        format: Format,
    },
    /// Time a spec's training and inference steps on random data.
    ///
    /// Prints images/s, milliseconds per step and GFLOP/s (medians after
    /// warm-up) and the peak memory; a training step is forward, loss,
    /// backward and an SGD update, as in `netc run`.
    Bench {
        /// The spec file (`.net`).
        spec: PathBuf,
        /// Override a net parameter, e.g. `--set width=0.25` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Images per step.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Timed steps of each kind.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Untimed steps before them.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Worker threads (default: one per core; at most 4 per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[command(flatten)]
        on: EngineArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also show where a training step spends its time, by op kind.
        #[arg(long)]
        breakdown: bool,
        /// First take one training step with the candle engine (on
        /// `--device`) and with the native engine on the CPU, from the same
        /// weights on the same batch, and compare the loss and the update;
        /// exit 1 after the report if they differ past rounding.
        #[arg(long)]
        verify: bool,
    },
    /// Train a spec with the recipe in its front matter, into a run
    /// directory (graph, recipe, metrics, checkpoints, plot, report).
    ///
    /// Ctrl-C finishes the current step, writes a checkpoint and stops;
    /// `--resume DIR` continues.
    Run {
        /// The spec file (`.net`); not needed with `--resume`.
        #[arg(required_unless_present = "resume")]
        spec: Option<PathBuf>,
        #[command(flatten)]
        settings: RunArgs,
        /// Continue the interrupted run in this directory.
        #[arg(long, value_name = "DIR", conflicts_with = "spec")]
        resume: Option<PathBuf>,
        /// The run directory (default: runs/<spec>-<time>); never overwritten.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        on: EngineArgs,
        /// No progress bars, no per-epoch lines.
        #[arg(long)]
        quiet: bool,
        /// Stop as Ctrl-C would after this many steps (for testing resume).
        #[arg(long, hide = true)]
        stop_after_steps: Option<u64>,
    },
    /// Train a grid of runs: every spec x every `--set` value x every seed,
    /// each an ordinary run directory under `--out`, one after the other;
    /// then `netc compare` over them into `OUT/summary/` (statistics over
    /// seeds).
    ///
    /// `OUT/sweep.toml` records the grid. Running the same command again
    /// skips finished runs and resumes interrupted ones (Ctrl-C, kill -9);
    /// a different grid for the same `--out` is refused.
    Sweep {
        /// The spec files (`.net`).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Seeds, comma-separated, ranges allowed: `0,1,2` or `0-4`.
        #[arg(long, default_value = "0,1,2")]
        seeds: String,
        /// A net parameter and its values, e.g. `--set width=0.125,0.25`
        /// (repeatable; every combination is run).
        #[arg(long = "set", value_name = "NAME=V1,V2")]
        set: Vec<String>,
        #[command(flatten)]
        recipe: RecipeArgs,
        /// The sweep directory (created; or an earlier sweep's, to continue it).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        on: EngineArgs,
        /// Runs at once: only 1. Each run already uses every core (the native
        /// engine splits its work over all threads), so on a small machine
        /// two at once would be no faster.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// No progress bars, no per-epoch lines.
        #[arg(long)]
        quiet: bool,
        /// Stop each run as Ctrl-C would after this many steps (for testing resume).
        #[arg(long, hide = true)]
        stop_after_steps: Option<u64>,
    },
    /// Evaluate weights on the test split: accuracy, per-class accuracy and
    /// the confusion matrix, as a table and as CSV.
    Eval {
        #[command(flatten)]
        trained: TrainedArgs,
        /// Use only N test images.
        #[arg(long, value_name = "N")]
        test_images: Option<usize>,
        /// Images per evaluation step.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// Write the confusion matrix as CSV here.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        #[command(flatten)]
        on: EngineArgs,
    },
    /// Draw heatmaps of test images at a net's probes: one overlay per image
    /// and probe, the raw maps (safetensors), a figure (rows: images;
    /// columns: the image, then each probe) and scores.
    Probe {
        #[command(flatten)]
        trained: TrainedArgs,
        /// Probes to draw, comma-separated (default: all of the net's).
        #[arg(long, value_delimiter = ',')]
        probes: Vec<String>,
        #[command(flatten)]
        heatmaps: HeatmapArgs,
        /// One colour scale for every image and probe, instead of one per heatmap.
        #[arg(long)]
        shared_scale: bool,
        /// Also draw and score the net with untrained weights: a sound
        /// heatmap method must score clearly worse there.
        #[arg(long)]
        sanity: bool,
        /// Output folder, which must not hold files (default: a new
        /// `probe-N` beside the weights; never the run's own `probe/`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// `cpu`, or `cuda[:N]`: an NVIDIA GPU, in a netc built with
        /// `--features cuda` (docs/gpu.md).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Rewrite specs in the one canonical layout, keeping every comment.
    ///
    /// Files are rewritten in place (atomically) and named when they change;
    /// `-` formats stdin to stdout. A file with syntax errors is left as it
    /// is, with the errors `netc check` prints. Exits 1 on errors, or with
    /// `--check` when any file would change.
    Fmt {
        /// Change nothing; name the files that would change.
        #[arg(long)]
        check: bool,
        /// Spec files (`.net`), or `-` for stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Serve the Language Server Protocol on stdin and stdout, for editors:
    /// diagnostics, hover, definitions, completion, shape hints.
    Lsp,
    /// Write a compiled net as an ONNX model (opset 17) for inference:
    /// input `input` (normalised images [N, C, H, W], N dynamic), outputs
    /// `logits` and every probe; or, with `--format torch`, as one PyTorch
    /// file (module, checkpoint loader, training entry point).
    Export {
        /// The spec file (`.net`).
        spec: PathBuf,
        /// The profile the weights were trained with, e.g. `quick` (its net
        /// parameters apply).
        #[arg(long)]
        profile: Option<String>,
        /// Override a net parameter, e.g. `--set width=0.25` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// A checkpoint to take the weights (and data normalisation) from;
        /// default: the initial weights of the recipe's seed.
        #[arg(long, value_name = "CKPT")]
        weights: Option<PathBuf>,
        /// The file format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Onnx)]
        format: ExportFormat,
        /// The file to write.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: PathBuf,
    },
    /// Convert a PyTorch `state_dict` (saved as safetensors) into a netc
    /// checkpoint for a spec, by an explicit mapping of tensor names
    /// (docs/interop.md). The mapping is checked in full first: on any
    /// missing, left-over or mis-shaped tensor nothing is written.
    Import {
        /// The spec file (`.net`).
        spec: PathBuf,
        /// A profile whose net parameters apply, e.g. `quick`.
        #[arg(long)]
        profile: Option<String>,
        /// Override a net parameter, e.g. `--set classes=10` (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// The PyTorch state_dict: `safetensors.torch.save_file(model.state_dict(), FILE)`.
        #[arg(long = "state-dict", value_name = "FILE")]
        state_dict: PathBuf,
        /// The mapping from netc's tensor names to PyTorch's (TOML).
        #[arg(long, value_name = "MAP")]
        mapping: PathBuf,
        /// The per-channel mean the weights were trained with, `R,G,B`
        /// (default: the mapping's, else ImageNet's for 224x224 inputs).
        #[arg(long, value_name = "R,G,B", value_parser = parse_three)]
        mean: Option<[f32; 3]>,
        /// The per-channel std, `R,G,B` (default as for `--mean`).
        #[arg(long, value_name = "R,G,B", value_parser = parse_three)]
        std: Option<[f32; 3]>,
        /// The checkpoint to write.
        #[arg(short = 'o', long = "out", value_name = "CKPT")]
        out: PathBuf,
    },
    /// Fetch a data set: `netc data get cifar10`.
    #[command(subcommand)]
    Data(DataCommand),
    /// Compare runs: a table (Markdown and CSV) of accuracy, size, speed and
    /// heatmap scores, and a figure of the same images at one probe, a column
    /// per run, on one colour scale.
    Compare {
        /// Run directories (from `netc run`), or sweep directories (from
        /// `netc sweep`: their finished runs). Runs of one net and recipe
        /// that differ only in their seed are also summarised as one group:
        /// mean, std, min-max, and 95% intervals of the differences (Welch).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The probe to draw (default: `mid` if all runs have it).
        #[arg(long)]
        probe: Option<String>,
        #[command(flatten)]
        heatmaps: HeatmapArgs,
        /// Draw each heatmap of the figure on its own min..max, as the
        /// paper's figures do (default: one scale for every run and image,
        /// so that the columns compare in strength too).
        #[arg(long)]
        own_scale: bool,
        /// Output folder (default: `runs/compare-<time>`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// `cpu`, or `cuda[:N]`: an NVIDIA GPU, in a netc built with
        /// `--features cuda` (docs/gpu.md).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// ONNX, opset 17.
    Onnx,
    /// One PyTorch file: an `nn.Module` with netc's tensor names, a
    /// checkpoint loader and a training `main()` (torchrun/DDP ready).
    Torch,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download a data set's official archive, check its checksum and
    /// unpack it, then print the `--data` that reads it.
    ///
    /// An interrupted download continues where it stopped when the same
    /// command runs again; nothing is left in DIR's data folder unless the
    /// whole archive arrived and checked out.
    Get {
        /// The data set: `cifar10` (the binary version, 170 MB).
        name: String,
        /// The folder to unpack into; the paper's specs read the repository's
        /// `data/cifar-10-batches-bin`, so run this from the repository's root.
        #[arg(long, value_name = "DIR", default_value = "data")]
        dir: PathBuf,
        /// Download from this address instead (a mirror of the same archive).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The SHA-256 the archive must have (default: the official archive's).
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
    },
}

fn parse_archive(name: &str) -> Result<netc::data::get::Archive, String> {
    let known = netc::data::get::ARCHIVES;
    known
        .iter()
        .find(|a| a.name == name)
        .copied()
        .ok_or_else(|| format!("unknown data set `{name}`; netc can get {}", known.map(|a| a.name).join(", ")))
}

/// Where training and evaluation run, for `netc run`, `eval` and `bench`.
#[derive(clap::Args)]
struct EngineArgs {
    /// `cpu`, or `cuda[:N]`: an NVIDIA GPU, in a netc built with
    /// `--features cuda` (docs/gpu.md). A GPU runs the candle engine.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// `native`: netc's own CPU engine, the default on the CPU. `candle`:
    /// candle's portable ops, which a GPU runs; on the CPU, the check of
    /// that path against the native engine (slower).
    #[arg(long, value_enum)]
    engine: Option<netc::train::Engine>,
}

impl EngineArgs {
    /// The engine and the opened device; the native engine on a GPU is refused.
    fn resolve(&self) -> Result<(netc::train::Engine, candle_core::Device), String> {
        use netc::train::Engine;
        let device = netc::runtime::parse_device(&self.device)?;
        let engine = match (self.engine, device.is_cpu()) {
            (Some(Engine::Native), false) => {
                return Err(format!(
                    "`--engine native --device {}`: the native engine runs on the CPU only; \
                     leave `--engine` out (a GPU runs the candle engine)",
                    self.device
                ));
            }
            (Some(engine), _) => engine,
            (None, true) => Engine::Native,
            (None, false) => Engine::Candle,
        };
        Ok((engine, device))
    }
}

/// A spec and the weights trained from it, for `netc eval` and `netc probe`.
#[derive(clap::Args)]
struct TrainedArgs {
    /// The spec file (`.net`) the weights belong to.
    spec: PathBuf,
    /// A checkpoint (`best.safetensors` or `last.safetensors` of a run).
    #[arg(long, value_name = "CKPT")]
    weights: PathBuf,
    /// The profile the weights were trained with, e.g. `quick`.
    #[arg(long)]
    profile: Option<String>,
    /// Override a net parameter, as the run did (e.g. `--set width=0.25`).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Data source (default: the spec's, or its profile's).
    #[arg(long, value_parser = parse_data)]
    data: Option<DataSource>,
    /// Leave out images that cannot be read or decoded, and say how many.
    #[arg(long)]
    skip_bad_images: bool,
}

impl TrainedArgs {
    /// The graph and recipe the weights were trained with.
    fn resolve(&self, test_images: Option<usize>) -> Result<(netc::graph::Graph, netc::recipe::Recipe), String> {
        let settings = netc::train::Settings {
            profile: self.profile.clone(),
            set: parse_sets(&self.set)?,
            data: self.data.clone(),
            test_images,
            skip_bad_images: self.skip_bad_images,
            ..Default::default()
        };
        netc::train::resolve(&self.spec, &settings)
    }
}

/// How heatmaps are made, for `netc probe` and `netc compare`.
#[derive(clap::Args)]
struct HeatmapArgs {
    /// How a feature map becomes a heatmap (default: the spec's `[probe]`,
    /// else `mean`, the paper's choice).
    #[arg(long, value_enum)]
    aggregate: Option<AggregateArg>,
    /// How many test images to draw (default: the spec's `[probe]`, else 8):
    /// a class-balanced subset of the test split with a fixed seed, the same
    /// for every run of the same data (`images.csv` lists them).
    #[arg(long, value_name = "N")]
    count: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum AggregateArg {
    /// Mean of the activations over channels (the paper's).
    Mean,
    /// Maximum over channels.
    Max,
    /// L2 norm over channels.
    L2,
    /// Grad-CAM: channels weighted by the gradient of the predicted class.
    Gradcam,
}

impl From<AggregateArg> for netc::recipe::Aggregate {
    fn from(a: AggregateArg) -> Self {
        match a {
            AggregateArg::Mean => Self::Mean,
            AggregateArg::Max => Self::Max,
            AggregateArg::L2 => Self::L2,
            AggregateArg::Gradcam => Self::Gradcam,
        }
    }
}

/// What `netc run` may override in the recipe.
#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Override a net parameter, e.g. `--set width=0.25` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Seed of initialisation, data order, augmentation and dropout.
    #[arg(long)]
    seed: Option<u64>,
}

/// What `netc run` and `netc sweep` (for every run) may override in the
/// recipe, besides the net's parameters and the seed.
#[derive(clap::Args)]
struct RecipeArgs {
    /// A named profile from the spec's front matter, e.g. `quick`.
    #[arg(long)]
    profile: Option<String>,
    /// Epochs to train (with `netc run --resume`: extend the run to this many).
    #[arg(long)]
    epochs: Option<u32>,
    /// Images per training step.
    #[arg(long)]
    batch_size: Option<u32>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// `synthetic`, `cifar10:DIR` or `folder:PATH` (a folder or .tar.gz).
    #[arg(long, value_parser = parse_data)]
    data: Option<DataSource>,
    /// Use only N training images.
    #[arg(long, value_name = "N")]
    train_images: Option<usize>,
    /// Use only N test images.
    #[arg(long, value_name = "N")]
    test_images: Option<usize>,
    /// Leave out images of a folder or archive that cannot be read or
    /// decoded (or have the wrong size), and say how many, instead of
    /// stopping at the first; `skip_bad_images = true` in `[data]` does the same.
    #[arg(long)]
    skip_bad_images: bool,
}

impl RecipeArgs {
    /// These overrides as `train::Settings`, with no `--set` and no seed.
    fn settings(self) -> netc::train::Settings {
        let RecipeArgs { profile, epochs, batch_size, lr, data, train_images, test_images, skip_bad_images } = self;
        netc::train::Settings {
            profile,
            epochs,
            batch_size,
            lr,
            data,
            train_images,
            test_images,
            skip_bad_images,
            ..Default::default()
        }
    }
}

fn parse_data(s: &str) -> Result<DataSource, String> {
    DataSource::try_from(s.to_string())
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// A table of nodes with shapes, parameters, multiply-adds, receptive fields.
    Summary,
    /// The Graph IR, as read by every later phase.
    Json,
    /// Graphviz (`netc compile x.net --format dot | dot -Tpng > x.png`).
    Dot,
}

/// `--set` values, read here rather than by clap, so that a bad one is a
/// user error (exit 1) like every other, not a usage error (exit 2).
fn parse_sets(sets: &[String]) -> Result<Vec<(String, f64)>, String> {
    sets.iter()
        .map(|s| {
            let (k, v) =
                s.split_once('=').ok_or_else(|| format!("`--set {s}`: give NAME=VALUE, e.g. `--set width=0.25`"))?;
            let v: f64 = v.trim().parse().map_err(|_| format!("`--set {s}`: `{v}` is not a number"))?;
            Ok((k.trim().to_string(), v))
        })
        .collect()
}

fn main() -> ExitCode {
    restore_sigpipe();
    execute(Cli::parse().command).unwrap_or_else(|e| fail(&e))
}

/// Rust starts programs with SIGPIPE ignored, so that writing to a closed
/// pipe is an error, and `println!` panics on that error. A command-line
/// tool should end quietly instead when its reader goes away
/// (`netc eval ... | head -1`), as `cat` and `grep` do: the default action
/// ends the process with SIGPIPE (status 141 in a shell). Checkpoints are
/// written atomically, so a run ended this way loses at most its last step.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal to its default action at the start of
    // `main`, before any thread starts, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs one command; an `Err` is printed by `fail` with exit code 1.
fn execute(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Lsp => netc::lsp::run().map(|()| ExitCode::SUCCESS),
        Command::Check { specs } => {
            let mut failed = 0;
            for spec in &specs {
                match netc::compile::check_file(spec) {
                    Ok(Checked::Net(c)) => println!(
                        "ok: {} (net {}, {} parameters)",
                        spec.display(),
                        c.graph.name,
                        netc::summary::group(c.graph.total_params())
                    ),
                    Ok(Checked::Library { blocks }) => {
                        println!(
                            "ok: {} (library, {blocks} block{})",
                            spec.display(),
                            if blocks == 1 { "" } else { "s" }
                        )
                    }
                    Err(e) => {
                        failed += 1;
                        eprint!("{e}");
                    }
                }
            }
            if failed > 0 {
                eprintln!("{failed} of {} spec{} failed", specs.len(), if specs.len() == 1 { "" } else { "s" });
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { spec, settings: a, resume, out, on, quiet, stop_after_steps } => {
            let (engine, device) = on.resolve()?;
            let settings = netc::train::Settings { set: parse_sets(&a.set)?, seed: a.seed, ..a.recipe.settings() };
            let _ = ctrlc::set_handler(|| netc::train::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst));
            let opts = netc::train::RunOptions { spec, resume, settings, out, quiet, stop_after_steps, engine, device };
            match netc::train::run(&opts)? {
                netc::train::RunOutcome::Finished { dir, final_accuracy, best_accuracy } => {
                    if !quiet {
                        println!(
                            "done: test accuracy {:.2}% (best {:.2}%); see {}/report.md",
                            100.0 * final_accuracy,
                            100.0 * best_accuracy,
                            dir.display()
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                netc::train::RunOutcome::Interrupted { .. } => Ok(ExitCode::from(130)),
            }
        }
        Command::Sweep { specs, seeds, set, recipe, out, on, jobs, quiet, stop_after_steps } => {
            let (engine, device) = on.resolve()?;
            if jobs != 1 {
                return Err(format!(
                    "`--jobs {jobs}`: netc sweep runs one run at a time (each uses every core); leave `--jobs` out"
                ));
            }
            let seeds = netc::sweep::parse_seeds(&seeds)?;
            let grid = set.iter().map(|s| netc::sweep::parse_set_values(s)).collect::<Result<Vec<_>, _>>()?;
            let settings = recipe.settings();
            let _ = ctrlc::set_handler(|| netc::train::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst));
            let request = netc::sweep::SweepRequest {
                specs,
                seeds,
                grid,
                settings,
                out,
                quiet,
                stop_after_steps,
                engine,
                device,
            };
            match netc::sweep::sweep(&request)? {
                netc::sweep::SweepOutcome::Finished { dir, trained, skipped, summary } => {
                    println!(
                        "sweep {}: {trained} run{} trained, {skipped} already finished",
                        dir.display(),
                        if trained == 1 { "" } else { "s" }
                    );
                    match summary {
                        Ok(s) => {
                            println!("summary (statistics over seeds): {}/compare.md", s.display());
                            Ok(ExitCode::SUCCESS)
                        }
                        Err(e) => Err(format!(
                            "every run finished, but the summary failed: {e}
(`netc compare {}` writes it)",
                            dir.display()
                        )),
                    }
                }
                netc::sweep::SweepOutcome::Interrupted { dir, done, total } => {
                    eprintln!(
                        "sweep interrupted with {done} of {total} runs finished; run the same command again to continue ({})",
                        dir.display()
                    );
                    Ok(ExitCode::from(130))
                }
            }
        }
        Command::Eval { trained, test_images, batch_size, csv, on } => {
            let (engine, device) = on.resolve()?;
            let (graph, recipe) = trained.resolve(test_images)?;
            let e = netc::train::evaluate_command(&graph, &trained.weights, &recipe.data, batch_size, engine, &device)?;
            print!("{}", e.table());
            if let Some(path) = csv {
                std::fs::write(&path, e.csv()).map_err(|err| format!("cannot write `{}`: {err}", path.display()))?;
                println!("confusion matrix written to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { trained, probes, heatmaps, shared_scale, sanity, out, device } => {
            let device = netc::runtime::parse_device(&device)?;
            let (graph, recipe) = trained.resolve(None)?;
            let weights = trained.weights;
            let mut probe = recipe.probe.clone();
            probe.aggregate = heatmaps.aggregate.map_or(probe.aggregate, Into::into);
            probe.count = heatmaps.count.unwrap_or(probe.count);
            if shared_scale {
                probe.scale = netc::recipe::HeatmapScale::Shared;
            }
            let out = out.unwrap_or_else(|| netc::probe::fresh_probe_dir(&weights));
            // Ctrl-C stops after the current batch and removes the unfinished folder.
            let _ = ctrlc::set_handler(|| netc::probe::STOP.store(true, std::sync::atomic::Ordering::SeqCst));
            let request = netc::probe::ProbeRequest {
                graph: &graph,
                weights: &weights,
                data: &recipe.data,
                probes,
                settings: probe,
                out: &out,
                sanity,
                device,
            };
            print!("{}", netc::probe::probe_command(&request)?);
            println!("heatmaps, figure.png and scores written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Fmt { check, files } => Ok(ExitCode::from(netc::fmt::command(&files, check))),
        Command::Data(DataCommand::Get { name, dir, url, sha256 }) => {
            let name = parse_archive(&name)?;
            let opts = netc::data::get::GetOptions { dir, url, sha256, progress: true };
            let (dir, note) = match netc::data::get::get(&name, &opts)? {
                netc::data::get::Got::Fetched(dir) => (dir, "downloaded, checked and unpacked into"),
                netc::data::get::Got::AlreadyThere(dir) => (dir, "is already complete in"),
            };
            println!("{}: {note} {}", name.name, dir.display());
            println!("train on it with `--data {}:{}`", name.name, dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare { runs, probe, heatmaps, own_scale, out, device } => {
            let device = netc::runtime::parse_device(&device)?;
            let out = match out {
                Some(out) => out,
                None => netc::train::unique_dir("compare", None)?,
            };
            // A sweep directory stands for its finished runs, grouped by its cells.
            let (runs, groups) = netc::sweep::expand_runs(&runs)?;
            let request = netc::probe::CompareRequest {
                runs: &runs,
                groups: &groups,
                probe,
                count: heatmaps.count.unwrap_or(8),
                aggregate: heatmaps.aggregate.map_or(netc::recipe::Aggregate::Mean, Into::into),
                own_scale,
                out: &out,
                device,
            };
            print!("{}", netc::probe::compare(&request)?);
            println!(
                "compare.md, compare.csv and compare.png (with groups.csv, differences.csv and curves.png when runs share a group) written to {}",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { spec, set, batch, steps, warmup, threads, on, json, breakdown, verify } => {
            let (engine, device) = on.resolve()?;
            let c = netc::compile::compile_file(&spec, &parse_sets(&set)?).map_err(|e| e.render())?;
            let report = netc::bench::bench(
                &c.graph,
                &netc::bench::BenchOptions { batch, steps, warmup, threads, breakdown, engine, device, verify },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            } else {
                print!("{}", report.text());
            }
            if report.verify.as_ref().is_some_and(|v| !v.passed) {
                return Err(
                    "`--verify`: the candle engine's step differs from the native engine's past the bounds".into()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { spec, profile, set, weights, format, out } => {
            let settings = netc::train::Settings { profile, set: parse_sets(&set)?, ..Default::default() };
            let (graph, recipe) = netc::train::resolve(&spec, &settings)?;
            if let ExportFormat::Torch = format {
                if weights.is_some() {
                    return Err("`--format torch` writes no weights: give the checkpoint to the file's \
                                `load_netc_checkpoint(model, path)` instead of `--weights`"
                        .to_string());
                }
                print!("{}", netc::export::torch_command(&graph, &recipe.train, &out)?);
                return Ok(ExitCode::SUCCESS);
            }
            let request = netc::export::ExportRequest {
                graph: &graph,
                weights: weights.as_deref(),
                seed: recipe.train.seed,
                out: &out,
            };
            print!("{}", netc::export::export_command(&request)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { spec, profile, set, state_dict, mapping, mean, std, out } => {
            let settings = netc::train::Settings { profile, set: parse_sets(&set)?, ..Default::default() };
            let (graph, _) = netc::train::resolve(&spec, &settings)?;
            let request = netc::import::ImportRequest {
                graph: &graph,
                state_dict: &state_dict,
                mapping: &mapping,
                mean,
                std,
                out: &out,
            };
            print!("{}", netc::import::import_command(&request)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Compile { spec, set, format } => {
            let c = netc::compile::compile_file(&spec, &parse_sets(&set)?).map_err(|e| e.render())?;
            let text = match format {
                Format::Summary => netc::summary::table(&c.graph),
                Format::Json => netc::summary::json(&c.graph),
                Format::Dot => netc::summary::dot(&c.graph),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Three numbers, `R,G,B`, for `--mean` and `--std`.
fn parse_three(text: &str) -> Result<[f32; 3], String> {
    let v: Vec<f32> = text
        .split(',')
        .map(|x| x.trim().parse::<f32>().map_err(|e| format!("`{x}`: {e}")))
        .collect::<Result<_, _>>()?;
    v.try_into().map_err(|v: Vec<f32>| format!("expected 3 numbers R,G,B, found {}", v.len()))
}

/// Prints an error and gives exit code 1. Compiler diagnostics arrive
/// rendered (with their own `error[...]` lines); other errors get a prefix.
fn fail(message: &str) -> ExitCode {
    if message.starts_with("error[") {
        eprint!("{message}");
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(1)
}
