//! One-line helpers shared by the data-driven tests.
#![allow(dead_code)] // Each test crate uses some of them.

pub mod generate;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use netc::compile::{compile_file, compile_source};

/// Runs the netc binary: its exit code, stdout and stderr.
pub fn netc(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netc")).args(args).output().expect("netc runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

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

/// Every paper spec at the smallest width its tests use (googlenet has no
/// width: the full net, with 10 classes), for tests that go over all of them.
pub const PAPER_SPECS_SMALL: &[(&str, &[(&str, f64)])] = &[
    ("specs/inception_v1.net", &[("width", 0.125)]),
    ("specs/ours.net", &[("width", 0.125)]),
    ("specs/ran92.net", &[("width", 0.0625)]),
    ("specs/attention_early.net", &[("width", 0.125)]),
    ("specs/attention_middle.net", &[("width", 0.125)]),
    ("specs/attention_later.net", &[("width", 0.125)]),
    ("specs/googlenet_imagenet.net", &[("classes", 10.0)]),
];

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

/// A seeded xorshift64 generator for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    pub fn uniforms(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform()).collect()
    }

    /// `n` distinct values in [-1, 1), at least 1/n apart, shuffled.
    pub fn distinct(&mut self, n: usize) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n).map(|i| (2 * i) as f64 / n as f64 - 1.0).collect();
        for i in (1..n).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
        v
    }

    /// A tensor of uniform values in [-1, 1).
    pub fn tensor(&mut self, dims: [usize; 4], dtype: DType) -> Tensor {
        Tensor::from_vec(self.uniforms(dims.iter().product()), &dims, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }
}

/// `[n, c, h, w]` filled with 0, 1, 2, ... in row-major order.
pub fn arange(dims: [usize; 4]) -> Tensor {
    let n = dims.iter().product::<usize>();
    Tensor::arange(0f64, n as f64, &Device::Cpu).unwrap().reshape(&dims).unwrap()
}

pub fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

/// Element-wise closeness, relative to the wanted value (absolute below 1).
pub fn assert_close(got: &Tensor, want: &[f64], tol: f64) {
    let got = values(got);
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "element {i}: got {g}, want {w}\ngot {got:?}\nwant {want:?}");
    }
}
