//! The `netc` command line. All work happens in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use netc::compile::Checked;

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
