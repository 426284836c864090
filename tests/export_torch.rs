//! `netc export --format torch`: every paper spec at a small width (and
//! `tests/export/every_op.net`, every op in every variant) exports to a
//! Python file that `python3 -m py_compile` accepts, and that names every
//! tensor of the net's checkpoint (in `CHECKPOINT_TENSORS`, and so in the
//! module's `state_dict()`). Needs python3, not torch: that the module
//! computes what netc computes is `scripts/check_torch_export.py`'s job
//! (docs/interop.md).

mod common;

use std::path::PathBuf;
use std::process::Command;

use candle_core::Device;
use netc::runtime::Model;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-export-torch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn netc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netc")).args(args).output().expect("netc runs")
}

fn check_spec(spec: &str, set: &[(&str, f64)]) {
    let name = std::path::Path::new(spec).file_stem().unwrap().to_str().unwrap().to_string();
    let dir = scratch(&name);
    let out = dir.join(format!("{name}.py"));
    let mut args = vec!["export".to_string(), spec.to_string(), "--format".into(), "torch".into()];
    for (k, v) in set {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    args.push("-o".into());
    args.push(out.to_str().unwrap().into());
    let o = netc(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{spec}: {}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();

    let compiled = Command::new("python3").args(["-m", "py_compile"]).arg(&out).output().expect("python3 runs");
    assert!(compiled.status.success(), "{spec}: py_compile:\n{}", String::from_utf8_lossy(&compiled.stderr));

    let graph = common::compiled(spec, set).graph;
    let state = Model::new(&graph, &Device::Cpu, 0).unwrap().state();
    assert!(!state.is_empty(), "{spec}: no tensors");
    for (tensor, t) in &state {
        let dims: Vec<String> = t.dims().iter().map(|d| d.to_string()).collect();
        let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
        let entry = format!("(\"{tensor}\", {shape}),");
        assert!(text.contains(&entry), "{spec}: the file does not name tensor `{tensor}` {shape}");
    }
    // Every parameterised node is put under its IR name.
    for node in &graph.nodes {
        if !node.params.is_empty() {
            assert!(text.contains(&format!("_put(self, \"{}\",", node.name)), "{spec}: no module `{}`", node.name);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_paper_spec() {
    for (spec, set) in common::PAPER_SPECS_SMALL {
        check_spec(spec, set);
    }
}

#[test]
fn every_op() {
    check_spec("tests/export/every_op.net", &[]);
}

#[test]
fn weights_are_refused() {
    let dir = scratch("weights");
    let out = dir.join("net.py");
    let o = netc(&[
        "export",
        "specs/ours.net",
        "--format",
        "torch",
        "--weights",
        "none.safetensors",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("load_netc_checkpoint"));
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
