//! netc: a compiler and runner for `.net` model specs.
//!
//! The phases, each with one job (see ARCHITECTURE.md):
//! [`syntax`] text -> AST; [`compile`] AST -> [`graph::Graph`] + [`recipe::Recipe`];
//! [`summary`] views of a graph. Nothing after the Graph IR reads spec text.
//! [`fmt`] lays out spec text in the canonical layout, on top of [`syntax`].
//! [`export`] writes a compiled graph as an ONNX model.

pub mod bench;
pub mod checkpoint;
pub mod compile;
pub mod data;
pub mod diag;
pub mod export;
pub mod figure;
pub mod fmt;
pub mod graph;
pub mod import;
pub mod lsp;
pub mod memory;
pub mod probe;
pub mod recipe;
pub mod rng;
pub mod runtime;
pub mod summary;
pub mod sweep;
pub mod syntax;
pub mod train;
