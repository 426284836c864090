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
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
        set: Vec<(String, f64)>,
        /// What to print.
        #[arg(long, value_enum, default_value_t = Format::Summary)]
        format: Format,
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
        /// `cpu` or `cuda[:N]`.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// No progress bars, no per-epoch lines.
        #[arg(long)]
        quiet: bool,
        /// Stop as Ctrl-C would after this many steps (for testing resume).
        #[arg(long, hide = true)]
        stop_after_steps: Option<u64>,
    },
    /// Evaluate weights on the test split: accuracy, per-class accuracy and
    /// the confusion matrix, as a table and as CSV.
    Eval {
        /// The spec file (`.net`) the weights belong to.
        spec: PathBuf,
        /// A checkpoint (`best.safetensors` or `last.safetensors` of a run).
        #[arg(long, value_name = "CKPT")]
        weights: PathBuf,
        /// The profile the weights were trained with, e.g. `quick`.
        #[arg(long)]
        profile: Option<String>,
        /// Override a net parameter, as the run did (e.g. `--set width=0.25`).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
        set: Vec<(String, f64)>,
        /// Data source (default: the spec's, or its profile's).
        #[arg(long, value_parser = parse_data)]
        data: Option<DataSource>,
        /// Use only N test images.
        #[arg(long, value_name = "N")]
        test_images: Option<usize>,
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// Write the confusion matrix as CSV here.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// `cpu` or `cuda[:N]`.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

/// What `netc run` may override in the recipe.
#[derive(clap::Args)]
struct RunArgs {
    /// A named profile from the spec's front matter, e.g. `quick`.
    #[arg(long)]
    profile: Option<String>,
    /// Override a net parameter, e.g. `--set width=0.25` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    set: Vec<(String, f64)>,
    #[arg(long)]
    epochs: Option<u32>,
    #[arg(long)]
    batch_size: Option<u32>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// `synthetic`, `cifar10:DIR` or `folder:PATH` (a folder or .tar.gz).
    #[arg(long, value_parser = parse_data)]
    data: Option<DataSource>,
    #[arg(long)]
    seed: Option<u64>,
    /// Use only N training images.
    #[arg(long, value_name = "N")]
    train_images: Option<usize>,
    /// Use only N test images.
    #[arg(long, value_name = "N")]
    test_images: Option<usize>,
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

fn parse_set(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    let v: f64 = v.trim().parse().map_err(|_| format!("`{v}` is not a number"))?;
    Ok((k.trim().to_string(), v))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Run { spec, settings: a, resume, out, device, quiet, stop_after_steps } => {
            let device = match netc::runtime::parse_device(&device) {
                Ok(d) => d,
                Err(e) => return fail(&e),
            };
            let settings = netc::train::Settings {
                profile: a.profile,
                set: a.set,
                epochs: a.epochs,
                batch_size: a.batch_size,
                lr: a.lr,
                data: a.data,
                seed: a.seed,
                train_images: a.train_images,
                test_images: a.test_images,
            };
            let _ = ctrlc::set_handler(|| netc::train::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst));
            let opts = netc::train::RunOptions { spec, resume, settings, out, device, quiet, stop_after_steps };
            match netc::train::run(&opts) {
                Ok(netc::train::RunOutcome::Finished { dir, final_accuracy, best_accuracy }) => {
                    if !quiet {
                        println!(
                            "done: test accuracy {:.2}% (best {:.2}%); see {}/report.md",
                            100.0 * final_accuracy,
                            100.0 * best_accuracy,
                            dir.display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Ok(netc::train::RunOutcome::Interrupted { .. }) => ExitCode::from(130),
                Err(e) => fail(&e),
            }
        }
        Command::Eval { spec, weights, profile, set, data, test_images, batch_size, csv, device } => {
            let device = match netc::runtime::parse_device(&device) {
                Ok(d) => d,
                Err(e) => return fail(&e),
            };
            let settings = netc::train::Settings { profile, set, data, test_images, ..Default::default() };
            let (graph, recipe) = match netc::train::resolve(&spec, &settings) {
                Ok(r) => r,
                Err(e) => return fail(&e),
            };
            let (source, limit) = (recipe.data.dataset, recipe.data.test_images);
            match netc::train::evaluate_command(&graph, &weights, &source, limit, batch_size, &device) {
                Ok(e) => {
                    print!("{}", e.table());
                    if let Some(path) = csv {
                        if let Err(err) = std::fs::write(&path, e.csv()) {
                            return fail(&format!("cannot write `{}`: {err}", path.display()));
                        }
                        println!("confusion matrix written to {}", path.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Compile { spec, set, format } => match netc::compile::compile_file(&spec, &set) {
            Ok(c) => {
                let text = match format {
                    Format::Summary => netc::summary::table(&c.graph),
                    Format::Json => netc::summary::json(&c.graph),
                    Format::Dot => netc::summary::dot(&c.graph),
                };
                // A closed pipe (`| head`) is not an error worth a panic.
                let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(1)
            }
        },
    }
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
