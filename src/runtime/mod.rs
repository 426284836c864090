//! Phase 4, runtime: a Graph IR becomes a model on a device.

pub mod ops;
