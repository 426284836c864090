//! Phase 6, probe: heatmaps at a net's probes, the paper's figures, and
//! scores of how much of each heatmap lies on the object.
//!
//! `heatmap`, `score` and `grid` are pure functions on plain arrays;
//! `maps` runs a model to get a probe's heatmaps; `command` and `compare`
//! are `netc probe` and `netc compare`.

mod command;
mod compare;
pub mod grid;
pub mod heatmap;
mod maps;
pub mod score;
pub mod stats;

pub use command::{
    ProbeRequest, ProbeScores, STOP, aggregate_words, draw, fresh_probe_dir, partial_path, probe_command, scores_table,
};
pub use compare::{CompareRequest, compare};
pub use maps::{ProbeMaps, deletion_scores, probe_maps};
