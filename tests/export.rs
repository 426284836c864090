//! `netc export --format onnx` against an independent ONNX runtime: tract
//! runs the exported model, and its logits and every probe must equal
//! candle's `Model` (the reference the native engine is held to) on the
//! same images, within a relative L2 error of 1e-4 per output. For every
//! paper spec at a small width and for `tests/export/every_op.net`, which
//! uses every op in every variant; with initial weights and with a
//! checkpoint's (non-trivial batch-norm running statistics); at batch 2,
//! then 1 and 3 from the same file (the batch is dynamic). The largest
//! error seen is 5e-5 (googlenet's probe); `NETC_EXPORT_ERRORS=1` with
//! `--nocapture` prints each.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use netc::graph::{Graph, Op};
use netc::runtime::{Mode, Model};
use prost::Message;
use tract_onnx::prelude::{Datum, Framework, InferenceModelExt, IntoRunnable, IntoTValue, tvec};

use common::Rng;

/// Relative L2 error allowed between tract's outputs and candle's.
const TOLERANCE: f64 = 1e-4;

fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let diff = norm(&mut a.iter().zip(b).map(|(x, y)| (x - y) as f64));
    diff / norm(&mut b.iter().map(|y| *y as f64)).max(1e-6)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The exported model, loaded by tract for one batch size. (tract cannot
/// yet run a `Resize` whose sizes hold a symbolic batch, so each batch
/// size is a fresh load of the same bytes: the file itself says `N`.)
struct Onnx {
    plan: std::sync::Arc<tract_onnx::prelude::TypedRunnableModel>,
}

impl Onnx {
    fn load(bytes: &[u8], dims: &[usize]) -> Onnx {
        let model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).expect("tract reads the model");
        let fact = tract_onnx::prelude::InferenceFact::dt_shape(f32::datum_type(), dims);
        let model = model.with_input_fact(0, fact).expect("tract takes the input shape");
        let plan = model.into_optimized().expect("tract optimises the model").into_runnable().expect("runnable");
        Onnx { plan }
    }

    /// Every output, as its shape and values.
    fn run(&self, images: &[f32], dims: &[usize]) -> Vec<(Vec<usize>, Vec<f32>)> {
        let input = tract_onnx::prelude::Tensor::from_shape(dims, images).unwrap();
        let outputs = self.plan.run(tvec!(input.into_tvalue())).expect("tract runs the model");
        outputs
            .iter()
            .map(|t| (t.shape().to_vec(), t.to_plain_array_view::<f32>().unwrap().iter().copied().collect()))
            .collect()
    }
}

fn random_images(graph: &Graph, n: usize, rng: &mut Rng) -> (Vec<f32>, Vec<usize>) {
    let mut dims = vec![n];
    dims.extend(graph.input_shape());
    let images = (0..dims.iter().product::<usize>()).map(|_| rng.uniform() as f32).collect();
    (images, dims)
}

/// Runs `n` random images through tract and candle and compares logits
/// and every probe.
fn outputs_agree(graph: &Graph, bytes: &[u8], model: &mut Model, n: usize, seed: u64) {
    let (images, dims) = random_images(graph, n, &mut Rng(seed | 1));
    let onnx = Onnx::load(bytes, &dims);
    let x = Tensor::from_slice(&images, dims.as_slice(), &Device::Cpu).unwrap();
    let names: Vec<&str> = graph.probes.iter().map(|p| p.name.as_str()).collect();
    let reference = model.forward(&x, Mode::Eval, &names, 0).unwrap();
    let ours = onnx.run(&images, &dims);
    let wanted = netc::export::outputs(graph);
    assert_eq!(ours.len(), wanted.len(), "{}: outputs", graph.name);
    for (name, (shape, values)) in wanted.iter().zip(&ours) {
        let theirs = if name == "logits" { &reference.logits } else { &reference.probes[name] };
        assert_eq!(shape.as_slice(), theirs.dims(), "{}: the shape of `{name}` at batch {n}", graph.name);
        let err = relative_error(values, &flat(theirs));
        if std::env::var("NETC_EXPORT_ERRORS").is_ok() {
            eprintln!("{} {name} at batch {n}: {err:e}", graph.name);
        }
        assert!(err < TOLERANCE, "{}: `{name}` differs by {err:e} at batch {n}", graph.name);
    }
}

/// The initial weights of `graph`, with batch-norm running statistics
/// measured on a batch of random images, as training would leave them.
/// With the initial statistics (mean 0, variance 1) nothing normalises a
/// deep net's activations, and they grow to 1e5 in ran92; the sigmoid
/// masks there take differences of such numbers, where the two engines'
/// f32 rounding alone differs by more than 1e-4.
fn calibrated(graph: &Graph, seed: u64) -> Model {
    let mut measuring = graph.clone();
    for node in &mut measuring.nodes {
        if let Op::BatchNorm { momentum, .. } = &mut node.op {
            *momentum = 1.0;
        }
    }
    let mut m = Model::new(&measuring, &Device::Cpu, seed).unwrap();
    let (images, dims) = random_images(graph, 4, &mut Rng(seed * 31 + 1));
    let x = Tensor::from_slice(&images, dims.as_slice(), &Device::Cpu).unwrap();
    m.forward(&x, Mode::Train, &[], 0).unwrap();
    let mut model = Model::new(graph, &Device::Cpu, seed).unwrap();
    model.load_state(&m.state().into_iter().collect(), &[]).unwrap();
    model
}

/// Exports `model` and holds tract to candle at batch 2, 1 and 3.
fn check(graph: &Graph, mut model: Model) {
    let bytes = netc::export::to_onnx(graph, &model.state(), None).unwrap_or_else(|e| panic!("{e}"));
    for (n, seed) in [(2, 3), (1, 5), (3, 9)] {
        outputs_agree(graph, &bytes, &mut model, n, seed);
    }
}

/// A paper spec with its initial weights and measured running statistics.
fn check_spec(path: &str, set: &[(&str, f64)]) {
    let graph = common::compiled(path, set).graph;
    let model = calibrated(&graph, 7);
    check(&graph, model);
}

#[test]
fn every_op_in_its_variants() {
    let graph = common::compiled("tests/export/every_op.net", &[]).graph;
    check(&graph, Model::new(&graph, &Device::Cpu, 7).unwrap());
    check(&graph, calibrated(&graph, 8));
}

#[test]
fn every_paper_spec() {
    for (spec, set) in common::PAPER_SPECS_SMALL {
        check_spec(spec, set);
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn netc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netc")).args(args).output().expect("netc runs")
}

/// A checkpoint of `graph` with random weights and running statistics far
/// from their initial zeros and ones, and a data normalisation.
fn random_checkpoint(graph: &Graph, path: &Path) -> netc::data::Normalize {
    let mut model = Model::new(graph, &Device::Cpu, 1).unwrap();
    let mut rng = Rng(99);
    let state: HashMap<String, Tensor> = model
        .state()
        .into_iter()
        .map(|(name, t)| {
            let values: Vec<f32> = (0..t.elem_count())
                .map(|_| {
                    let u = rng.uniform() as f32;
                    if name.ends_with(".running_var") { 0.25 + u * u * 2.0 } else { u * 0.5 }
                })
                .collect();
            (name, Tensor::from_vec(values, t.dims(), &Device::Cpu).unwrap())
        })
        .collect();
    model.load_state(&state, &[]).unwrap();
    let normalize = netc::data::Normalize { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] };
    let progress = netc::checkpoint::Progress::default();
    netc::checkpoint::save(path, &model.state(), &BTreeMap::new(), &progress, &normalize).unwrap();
    normalize
}

/// `netc export --weights`: the checkpoint's weights and running
/// statistics reach the ONNX model, and its normalisation and netc's
/// version its metadata; the input's batch is the symbol `N`.
#[test]
fn cli_export_with_a_checkpoint() {
    let dir = scratch("ckpt");
    let spec = "tests/export/every_op.net";
    let graph = common::compiled(spec, &[]).graph;
    let weights = dir.join("best.safetensors");
    let normalize = random_checkpoint(&graph, &weights);
    let out = dir.join("every_op.onnx");
    let o = netc(&[
        "export",
        spec,
        "--weights",
        weights.to_str().unwrap(),
        "--format",
        "onnx",
        "-o",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{stdout}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("every_op.onnx"), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();

    let (mut model, _) = netc::checkpoint::load_model(&graph, &weights, &Device::Cpu).unwrap();
    for (n, seed) in [(2, 13), (1, 15), (3, 17)] {
        outputs_agree(&graph, &bytes, &mut model, n, seed);
    }

    let proto = netc::export::proto::ModelProto::decode(bytes.as_slice()).unwrap();
    let meta: HashMap<&str, &str> = proto.metadata_props.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
    assert_eq!(meta["netc_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["normalize_mean"], format!("{:?}", normalize.mean));
    assert_eq!(meta["normalize_std"], format!("{:?}", normalize.std));
    assert_eq!(proto.opset_import[0].version, 17);
    let g = proto.graph.unwrap();
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, "input");
    let batch = &g.input[0].r#type.as_ref().unwrap().tensor_type.as_ref().unwrap().shape.as_ref().unwrap().dim[0];
    assert_eq!(batch.value, Some(netc::export::proto::DimensionValue::DimParam("N".into())));
    let outputs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["logits", "mid", "mask", "pooled"]);
    // Initializers and nodes keep the IR's names.
    assert!(g.initializer.iter().any(|t| t.name == "b.bn.running_var"));
    assert!(g.node.iter().any(|n| n.name == "b.conv" && n.op_type == "Conv"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without `--weights` there is no normalisation to record, and the
/// weights are the recipe seed's initial ones.
#[test]
fn cli_export_with_initial_weights() {
    let dir = scratch("init");
    let out = dir.join("small.onnx");
    let spec = "tests/fixtures/small_cnn.net";
    let o = netc(&["export", spec, "--set", "width=0.5", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let c = common::compiled(spec, &[("width", 0.5)]);
    let mut model = Model::new(&c.graph, &Device::Cpu, c.recipe.train.seed).unwrap();
    outputs_agree(&c.graph, &bytes, &mut model, 2, 21);
    let proto = netc::export::proto::ModelProto::decode(bytes.as_slice()).unwrap();
    assert!(proto.metadata_props.iter().all(|e| !e.key.starts_with("normalize")));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Weights that do not exist or belong to another net: exit 1, naming the
/// file (and the mismatch), and no output file.
#[test]
fn bad_weights_are_named() {
    let dir = scratch("bad");
    let out = dir.join("x.onnx");
    let out_arg = out.to_str().unwrap();
    let missing = dir.join("nope.safetensors");
    let o = netc(&["export", "tests/export/every_op.net", "--weights", missing.to_str().unwrap(), "-o", out_arg]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nope.safetensors") && stderr.contains("no such file"), "{stderr}");
    assert!(!out.exists());

    let other = dir.join("small.safetensors");
    random_checkpoint(&common::compiled("tests/fixtures/small_cnn.net", &[]).graph, &other);
    let o = netc(&["export", "tests/export/every_op.net", "--weights", other.to_str().unwrap(), "-o", out_arg]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("small.safetensors") && stderr.contains("does not fit net `every_op`"), "{stderr}");
    assert!(!out.exists());

    let nowhere = dir.join("no/such/dir/x.onnx");
    let o = netc(&["export", "tests/export/every_op.net", "-o", nowhere.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no/such/dir/x.onnx"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A node the mapping cannot write is an error that names it, not a panic:
/// here a second input, and a pool whose input is not a feature map.
#[test]
fn an_unexportable_node_is_named() {
    let graph = common::compiled("tests/export/every_op.net", &[]).graph;
    let state = Model::new(&graph, &Device::Cpu, 0).unwrap().state();
    let mut second_input = graph.clone();
    second_input.nodes[3].op = Op::Input;
    let err = netc::export::to_onnx(&second_input, &state, None).unwrap_err();
    assert!(err.contains("`a.relu`"), "{err}");

    let mut pool_on_vector = graph.clone();
    let id = pool_on_vector.nodes.iter().position(|n| n.name == "logits.relu").unwrap();
    pool_on_vector.nodes[id].op = Op::MaxPool { kernel: 2, stride: 2, padding: 0, ceil_mode: false };
    let err = netc::export::to_onnx(&pool_on_vector, &state, None).unwrap_err();
    assert!(err.contains("`logits.relu`") && err.contains("no ONNX form"), "{err}");
}

/// `--profile` applies the profile's net parameters, as `netc eval` does,
/// so the weights of a `--profile quick` run fit.
#[test]
fn cli_profile_sets_the_net() {
    let dir = scratch("profile");
    let out = dir.join("early.onnx");
    let o = netc(&["export", "specs/attention_early.net", "--profile", "quick", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let proto = netc::export::proto::ModelProto::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let args = proto.metadata_props.iter().find(|e| e.key == "net_args").unwrap();
    assert!(args.value.contains("\"width\":0.125"), "{}", args.value);
    std::fs::remove_dir_all(&dir).unwrap();
}
