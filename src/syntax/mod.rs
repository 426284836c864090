//! Phase 1, syntax: text -> [`ast::File`]. Knows nothing of ops or shapes.

pub mod ast;
mod parse;

pub use parse::parse;
