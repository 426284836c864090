//! Phase 4, runtime: a Graph IR becomes a model on a device.
//!
//! [`Model`] holds the parameters (candle `Var`s, under the IR's
//! hierarchical names) and the batch-norm running statistics, and runs the
//! graph's nodes in order. It reads only the [`Graph`](crate::graph::Graph).

mod model;
pub mod native;
pub mod ops;
pub mod portable;

pub use model::{Kernels, Mismatch, Mode, Model, Output, device_name, error_text, parse_device};
