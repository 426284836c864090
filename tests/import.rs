//! `netc import`: a PyTorch state_dict (safetensors) into a netc
//! checkpoint by a mapping file. Without torch: the fixture in
//! `tests/import/` was made once by `tests/import/make_fixture.py` (a tiny
//! torch CNN whose module names differ from `tiny.net`'s, its state_dict,
//! a fixed input and torch's logits in eval mode; and the names and shapes
//! of torchvision GoogLeNet's state_dict).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use netc::runtime::Mode;

const DIR: &str = "tests/import";
const SPEC: &str = "tests/import/tiny.net";
const STATE: &str = "tests/import/tiny_state_dict.safetensors";
const MAPPING: &str = "tests/import/tiny_torch.toml";
const NORM: [&str; 4] = ["--mean", "0.5,0.4,0.3", "--std", "0.2,0.25,0.3"];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-import-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn netc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc")).args(args).output().expect("netc runs")
}

fn import(spec: &str, state: &str, mapping: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["import", spec, "--state-dict", state, "--mapping", mapping, "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    netc(&args)
}

/// Exit 1, nothing written, and stderr says each of `needles`.
fn assert_refused(out: &Output, written: &Path, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(!written.exists(), "a refused import wrote {}", written.display());
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`:\n{err}");
    }
}

#[test]
fn tiny_import_gives_torchs_logits() {
    let dir = scratch("tiny");
    let ckpt = dir.join("tiny.ckpt");
    let out = import(SPEC, STATE, MAPPING, &ckpt, &NORM);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("imported 13 tensors") && said.contains("2 ignored"), "{said}");

    let graph = netc::compile::compile_file(Path::new(SPEC), &[]).unwrap().graph;
    let (mut model, normalize) = netc::checkpoint::load_model(&graph, &ckpt, &Device::Cpu).unwrap();
    assert_eq!(normalize.mean, [0.5, 0.4, 0.3]);
    assert_eq!(normalize.std, [0.2, 0.25, 0.3]);
    let io = candle_core::safetensors::load(Path::new(DIR).join("tiny_io.safetensors"), &Device::Cpu).unwrap();
    let got = model.forward(&io["input"], Mode::Eval, &[], 0).unwrap().logits;
    let got: Vec<Vec<f32>> = got.to_vec2().unwrap();
    let want: Vec<Vec<f32>> = io["logits"].to_vec2().unwrap();
    let diff = got.iter().flatten().zip(want.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-4, "netc {got:?}\ntorch {want:?}\nmax difference {diff}");

    // `netc eval`'s loader and the native engine read the same file: the
    // checkpoint holds the model under IR names and nothing else of torch.
    let cp = netc::checkpoint::load(&ckpt, &Device::Cpu).unwrap();
    assert!(cp.model.keys().all(|k| !k.contains("num_batches_tracked") && !k.starts_with("features")));
}

#[test]
fn normalisation_is_required_off_imagenet() {
    let dir = scratch("norm");
    let ckpt = dir.join("tiny.ckpt");
    let out = import(SPEC, STATE, MAPPING, &ckpt, &[]);
    assert_refused(&out, &ckpt, &["--mean", "[3, 8, 8]"]);
}

/// A copy of the tiny mapping with `edit` applied to its text.
fn edited_mapping(dir: &Path, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(MAPPING).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    let path = dir.join("map.toml");
    std::fs::write(&path, edited).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_mapping_that_misses_a_tensor_is_refused() {
    let dir = scratch("missing");
    let ckpt = dir.join("out.ckpt");
    let map = edited_mapping(&dir, |t| t.replace("torch = \"head.weight\"", "torch = \"head.wieght\""));
    let out = import(SPEC, STATE, &map, &ckpt, &NORM);
    assert_refused(
        &out,
        &ckpt,
        &["without a source", "`logits.linear.weight`", "head.wieght", "left over", "`head.weight`"],
    );
}

#[test]
fn a_leftover_tensor_is_refused() {
    let dir = scratch("leftover");
    let ckpt = dir.join("out.ckpt");
    let map = edited_mapping(&dir, |t| t.replace("ignore = [\"*.num_batches_tracked\"]", "ignore = []"));
    let out = import(SPEC, STATE, &map, &ckpt, &NORM);
    assert_refused(
        &out,
        &ckpt,
        &["left over, neither mapped nor under `ignore` (2)", "`features.1.num_batches_tracked`"],
    );
}

#[test]
fn a_shape_mismatch_is_refused() {
    let dir = scratch("shape");
    let ckpt = dir.join("out.ckpt");
    let map = MAPPING.to_string();
    let mut extra = NORM.to_vec();
    extra.extend(["--set", "classes=4"]);
    let out = import(SPEC, STATE, &map, &ckpt, &extra);
    assert_refused(
        &out,
        &ckpt,
        &["shapes that differ (2)", "`logits.linear.weight` is [4, 96]", "`head.weight` is [5, 96]"],
    );
}

#[test]
fn a_state_dict_that_is_not_safetensors_is_refused() {
    let dir = scratch("notsafetensors");
    let ckpt = dir.join("out.ckpt");
    let out = import(SPEC, MAPPING, MAPPING, &ckpt, &NORM);
    assert_refused(&out, &ckpt, &["tiny_torch.toml", "not a readable safetensors file"]);
    let out = import(SPEC, "tests/import/no-such.safetensors", MAPPING, &ckpt, &NORM);
    assert_refused(&out, &ckpt, &["no-such.safetensors", "no such file"]);
}

/// The shipped GoogLeNet mapping maps every tensor of torchvision's
/// GoogLeNet(aux_logits=False) state_dict once, with equal shapes (the
/// names and shapes committed as JSON; the values do not matter here).
#[test]
fn googlenet_mapping_covers_torchvisions_state_dict() {
    let keys: BTreeMap<String, Vec<usize>> =
        serde_json::from_str(&std::fs::read_to_string("tests/import/googlenet_torchvision_keys.json").unwrap())
            .unwrap();
    assert_eq!(keys.len(), 344);
    let torch: BTreeMap<String, Tensor> = keys
        .iter()
        .map(|(k, shape)| (k.clone(), Tensor::zeros(shape.as_slice(), candle_core::DType::F32, &Device::Cpu).unwrap()))
        .collect();
    let mapping = netc::import::Mapping::parse(
        &std::fs::read_to_string("specs/mappings/googlenet_imagenet_torchvision.toml").unwrap(),
    )
    .unwrap();
    let graph = netc::compile::compile_file(Path::new("specs/googlenet_imagenet.net"), &[]).unwrap().graph;
    let model = netc::import::map_tensors(&graph, &torch, &mapping).unwrap_or_else(|e| panic!("{e}"));
    let ignored = keys.keys().filter(|k| mapping.ignored(k)).count();
    assert_eq!(ignored, 57, "only BN's num_batches_tracked is ignored");
    assert_eq!(model.len() + ignored, keys.len());
}
