//! One-line helpers shared by the data-driven tests.
#![allow(dead_code)] // Each test crate uses some of them.

use std::path::{Path, PathBuf};

use netc::compile::{compile_file, compile_source};

/// A path relative to the crate root, so that snapshots do not depend on
/// where the checkout lives.
pub fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).to_path_buf()
}

/// Compiles spec text (as if it were `tests/inline.net`) and returns the
/// summary table, or the rendered diagnostics.
pub fn check(spec: &str) -> String {
    match compile_source(Path::new("tests/inline.net"), spec.to_string(), &[]) {
        Ok(c) => netc::summary::table(&c.graph),
        Err(e) => e.render(),
    }
}

/// The rendered diagnostics of a spec that must fail.
pub fn errors(spec: &str) -> String {
    match compile_source(Path::new("tests/inline.net"), spec.to_string(), &[]) {
        Ok(_) => panic!("expected errors, but the spec compiled:\n{spec}"),
        Err(e) => e.render(),
    }
}

/// Compiles a spec file with `--set` overrides; panics with the diagnostics.
pub fn compiled(path: &str, set: &[(&str, f64)]) -> netc::compile::Compiled {
    let set: Vec<(String, f64)> = set.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    compile_file(Path::new(path), &set).unwrap_or_else(|e| panic!("{path} failed:\n{e}"))
}

/// Settings that keep every snapshot in the top-level `snapshots/` folder.
pub fn snapshots(folder: &str) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots").join(folder));
    s.set_prepend_module_to_snapshot(false);
    s
}
