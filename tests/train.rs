//! Training end to end: steps lower the loss, checkpoints round-trip,
//! resume equals an uninterrupted run, and bad weights or data are named.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use netc::checkpoint;
use netc::data::{self, Normalize, Split};
use netc::runtime::native::Net;
use netc::runtime::{Mode, Model};
use netc::train::{Optimizer, RunOptions, RunOutcome, Settings, StepSettings, train_step};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A few SGD steps on one synthetic batch lower its loss.
fn steps_lower_the_loss(spec: &str, set: &[(&str, f64)]) {
    let graph = common::compiled(spec, set).graph;
    let shape: [usize; 3] = graph.input_shape().try_into().expect("an image net");
    let ds = std::sync::Arc::new(
        data::load(&netc::recipe::DataSource::Synthetic, Split::Train, shape, Some(16), 3).expect("synthetic"),
    );
    let norm = Normalize { mean: [0.5; 3], std: [0.25; 3] };
    let batch = data::batches(ds, 16, false, &[], norm, 0, 0, Device::Cpu).next().expect("one batch").expect("batch");
    let mut net = Net::from_model(&Model::new(&graph, &Device::Cpu, 7).expect("model")).expect("engine");
    let images: Vec<f32> = batch.images.flatten_all().and_then(|t| t.to_vec1()).expect("images");
    let labels: Vec<u32> = batch.labels.to_vec1().expect("labels");
    let settings = netc::recipe::Optimizer { lr: 0.05, ..Default::default() };
    let mut opt = Optimizer::new(&settings);
    let mut losses = Vec::new();
    for step in 0..4 {
        let settings = StepSettings { lr: 0.05, label_smoothing: 0.0, grad_clip: None, dropout_seed: step };
        losses.push(train_step(&mut net, &mut opt, &images, &labels, &settings).expect("a step").value);
    }
    assert!(losses[3] < losses[0], "{spec}: losses {losses:?} did not fall");
}

#[test]
fn a_few_steps_lower_the_loss_of_inception_v1() {
    steps_lower_the_loss("specs/inception_v1.net", &[("width", 0.125)]);
}

#[test]
fn a_few_steps_lower_the_loss_of_ours() {
    steps_lower_the_loss("specs/ours.net", &[("width", 0.125)]);
}

#[test]
fn a_few_steps_lower_the_loss_of_ran92() {
    steps_lower_the_loss("specs/ran92.net", &[("width", 0.0625)]);
}

#[test]
fn a_few_steps_lower_the_loss_with_attention_early_middle_and_later() {
    for stage in ["early", "middle", "later"] {
        steps_lower_the_loss(&format!("specs/attention_{stage}.net"), &[("width", 0.125)]);
    }
}

fn run(spec: &str, out: &Path, stop_after_steps: Option<u64>, resume: bool) -> RunOutcome {
    let opts = RunOptions {
        spec: (!resume).then(|| PathBuf::from(spec)),
        resume: resume.then(|| out.to_path_buf()),
        settings: Settings {
            epochs: (!resume).then_some(2),
            train_images: (!resume).then_some(256),
            test_images: (!resume).then_some(128),
            ..Settings::default()
        },
        out: (!resume).then(|| out.to_path_buf()),
        quiet: true,
        stop_after_steps,
        engine: netc::train::Engine::Native,
        device: Device::Cpu,
    };
    netc::train::run(&opts).unwrap_or_else(|e| panic!("{e}"))
}

fn tensors(path: &Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).expect("readable checkpoint")
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let spec = "tests/fixtures/small_cnn.net";
    let (straight, resumed) = (temp_dir("straight"), temp_dir("resumed"));
    assert!(matches!(run(spec, &straight, None, false), RunOutcome::Finished { .. }));
    // 256 images in batches of 64: stop in the middle of the first epoch.
    assert!(matches!(run(spec, &resumed, Some(2), false), RunOutcome::Interrupted { .. }));
    assert!(matches!(run(spec, &resumed, None, true), RunOutcome::Finished { .. }));
    let (a, b) = (tensors(&straight.join("last.safetensors")), tensors(&resumed.join("last.safetensors")));
    assert_eq!(a.len(), b.len());
    for (name, ta) in &a {
        let diff = (ta.to_dtype(DType::F64).unwrap() - b[name].to_dtype(DType::F64).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(diff == 0.0, "`{name}` differs by {diff}");
    }
    for file in
        ["graph.json", "recipe.toml", "run.json", "metrics.csv", "metrics.jsonl", "report.md", "best.safetensors"]
    {
        assert!(resumed.join(file).exists(), "no {file} in the run directory");
    }
    let csv = std::fs::read_to_string(resumed.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "a header and one row per epoch:\n{csv}");
}

#[test]
fn a_checkpoint_round_trips_the_model() {
    let graph = common::compiled("tests/fixtures/small_cnn.net", &[]).graph;
    let mut model = Model::new(&graph, &Device::Cpu, 1).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
    model.forward(&x, Mode::Train, &[], 0).unwrap(); // moves the BN statistics
    let dir = temp_dir("roundtrip");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    let norm = Normalize { mean: [0.1, 0.2, 0.3], std: [0.4, 0.5, 0.6] };
    checkpoint::save(&path, &model.state(), &Default::default(), &Default::default(), &norm).unwrap();
    let cp = checkpoint::load(&path, &Device::Cpu).unwrap();
    let mut other = Model::new(&graph, &Device::Cpu, 2).unwrap();
    other.load_state(&cp.model, &checkpoint::NOT_MODEL).unwrap();
    let (a, b) =
        (model.forward(&x, Mode::Eval, &[], 0).unwrap().logits, other.forward(&x, Mode::Eval, &[], 0).unwrap().logits);
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
    assert_eq!(cp.normalize, Some(norm));
}

#[test]
fn a_corrupt_checkpoint_is_named() {
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    std::fs::write(&path, b"not a safetensors file at all").unwrap();
    let e = checkpoint::load(&path, &Device::Cpu).err().expect("an error");
    assert!(e.contains("bad.safetensors") && e.contains("not a readable safetensors file"), "{e}");
}

#[test]
fn weights_that_do_not_fit_the_spec_list_every_mismatch() {
    let small = common::compiled("tests/fixtures/small_cnn.net", &[]).graph;
    let wide = common::compiled("tests/fixtures/small_cnn.net", &[("width", 2.0)]).graph;
    let model = Model::new(&wide, &Device::Cpu, 1).unwrap();
    let tensors = model.state().into_iter().collect();
    let mut target = Model::new(&small, &Device::Cpu, 1).unwrap();
    let mismatches = target.load_state(&tensors, &[]).expect_err("mismatches");
    let text: Vec<String> = mismatches.iter().map(|m| m.to_string()).collect();
    assert!(
        text.iter()
            .any(|m| m == "`s1.conv_bn.conv.weight` is [32, 3, 3, 3] in the weights but [16, 3, 3, 3] in the spec"),
        "{text:#?}"
    );
    assert!(mismatches.len() >= 10, "{text:#?}");
}

/// Two updates of one weight with a constant gradient 0.2, by hand from
/// PyTorch's update rules (torch.optim.SGD and AdamW).
#[test]
fn optimisers_follow_pytorchs_update_rules() {
    use netc::recipe::{Optimizer as Settings, OptimizerKind};
    use netc::runtime::native::Param;
    let two_steps = |settings: Settings| -> f32 {
        let mut params =
            [Param { name: "w".into(), shape: vec![1], value: vec![1.0], grad: vec![0.2], has_grad: true }];
        let mut opt = Optimizer::new(&settings);
        opt.step(&mut params, settings.lr);
        opt.step(&mut params, settings.lr);
        params[0].value[0]
    };
    let sgd = Settings { kind: OptimizerKind::Sgd, lr: 0.5, momentum: 0.9, weight_decay: 0.1, ..Settings::default() };
    // g' = g + wd * w; buf = g' (first step), then 0.9 * buf + g'; w -= lr * buf.
    assert!((two_steps(sgd.clone()) - 0.5725).abs() < 1e-6);
    // Nesterov: w -= lr * (g' + 0.9 * buf).
    assert!((two_steps(Settings { nesterov: true, ..sgd }) - 0.335575).abs() < 1e-6);
    let adamw = Settings { kind: OptimizerKind::Adamw, lr: 0.1, weight_decay: 0.01, ..Settings::default() };
    // With a constant gradient, the bias-corrected m / sqrt(v) is 1 (less
    // eps): w = w * (1 - lr * wd) - lr twice, up to f32 rounding of the
    // moments.
    let w1 = 1.0 * (1.0 - 0.001) - 0.1;
    let w2 = w1 * (1.0 - 0.001) - 0.1;
    let got = two_steps(adamw) as f64;
    assert!((got - w2).abs() < 1e-5, "{got} vs {w2}");
}

#[test]
fn the_confusion_table_lines_up_with_long_class_names() {
    let e = netc::train::Evaluation {
        loss: 0.5,
        accuracy: 0.5,
        classes: vec!["a".into(), "a_rather_long_class_name".into()],
        confusion: vec![vec![1, 0], vec![1, 0]],
    };
    let table = e.table();
    // After the summary line and a blank line: the header, then a row per class.
    let rows: Vec<&str> = table.lines().skip(2).take(3).collect();
    assert_eq!(rows.len(), 3, "{table}");
    // Every row's accuracy column ends at the same place.
    let ends: Vec<usize> =
        rows.iter().map(|r| r.find("accuracy").map_or_else(|| r.find('%').unwrap() + 1, |i| i + 8)).collect();
    assert!(ends.iter().all(|&e| e == ends[0]), "columns do not line up:\n{table}");
}
