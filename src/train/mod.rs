//! Phase 5, train: runs, evaluation, optimisers, checkpoints.
//!
//! A run lives in its own directory: the compiled graph and the resolved
//! recipe are written there first, and everything later (resume included)
//! reads them from there, never the spec.

mod candle;
mod engine;
mod eval;
mod optim;
mod report;
mod run;

pub use candle::{CandleTrainer, cross_entropy};
pub use engine::{Engine, StepLoss, Trainer, trainer};
pub use eval::{Evaluation, evaluate, evaluate_command};
pub use optim::{Loss, Optimizer, StepSettings, learning_rate, softmax_cross_entropy, train_step};
pub use run::{
    EpochMetrics, INTERRUPTED, RunOptions, RunOutcome, Settings, absolute, anchored, check_settings, plural,
    read_metrics, resolve, run, unique_dir,
};
