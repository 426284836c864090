//! The candle engine, which is what `--device cuda` runs, against the native
//! engine, on the CPU: whole training steps with every optimiser and every
//! option of a step (label smoothing, clipping, dropout), then runs through
//! the command line: the same seed gives the same losses epoch by epoch,
//! and a run started on one engine resumes on the other.
//! (`tests/native.rs` holds the portable kernels to the native engine op by
//! op and on every paper spec.)

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use netc::data::Batch;
use netc::graph::Graph;
use netc::recipe::{Optimizer, OptimizerKind};
use netc::runtime::{Kernels, Model};
use netc::train::{Engine, StepSettings, Trainer, trainer};

use common::{Rng, netc};

/// The L2 norm of `a - b` relative to that of `b` (at least `floor`).
fn relative_error(a: &Tensor, b: &Tensor, floor: f64) -> f64 {
    let (a, b): (Vec<f32>, Vec<f32>) =
        (a.flatten_all().unwrap().to_vec1().unwrap(), b.flatten_all().unwrap().to_vec1().unwrap());
    assert_eq!(a.len(), b.len());
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    norm(&mut a.iter().zip(&b).map(|(x, y)| (x - y) as f64)) / norm(&mut b.iter().map(|y| *y as f64)).max(floor)
}

fn random_batch(graph: &Graph, n: usize, rng: &mut Rng) -> Batch {
    let dims = graph.input_shape();
    let images: Vec<f32> = (0..n * dims.iter().product::<usize>()).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect();
    let labels: Vec<u32> = (0..n).map(|_| (rng.uniform() * 10.0) as u32 % 10).collect();
    Batch {
        images: Tensor::from_vec(images, (n, dims[0], dims[1], dims[2]), &Device::Cpu).unwrap(),
        labels: Tensor::from_vec(labels, n, &Device::Cpu).unwrap(),
        indices: (0..n).collect(),
    }
}

/// Three steps of both engines from the same weights on the same batches:
/// the losses agree step by step within `tolerance[0]` (relative), and
/// afterwards every parameter, running statistic and optimiser buffer
/// within `tolerance[1]` (relative L2 error, counted against an RMS of at
/// least 1e-3 for tensors near zero).
fn three_steps_agree(
    graph: &Graph,
    optimizer: Optimizer,
    label_smoothing: f64,
    grad_clip: Option<f64>,
    tolerance: [f64; 2],
) {
    let [loss_tolerance, tolerance] = tolerance;
    let what = format!("{} with {:?}, smoothing {label_smoothing}, clip {grad_clip:?}", graph.name, optimizer);
    let model = Model::new(graph, &Device::Cpu, 3).unwrap();
    let mut native = trainer(Engine::Native, &Device::Cpu, &model, &optimizer, None).unwrap();
    let mut candle = trainer(Engine::Candle, &Device::Cpu, &model, &optimizer, None).unwrap();
    let mut rng = Rng(17);
    for step in 0..3u64 {
        let batch = random_batch(graph, 6, &mut rng);
        let s = StepSettings { lr: optimizer.lr, label_smoothing, grad_clip, dropout_seed: 100 + step };
        let (a, b) = (native.step(&batch, &s).unwrap(), candle.step(&batch, &s).unwrap());
        let err = (a.value - b.value).abs() / a.value.abs();
        assert!(err < loss_tolerance, "{what}: step {step}: loss {} (native) against {} (candle)", a.value, b.value);
        assert_eq!(a.correct, b.correct, "{what}: step {step}: correct images");
    }
    let states = |t: &mut Box<dyn Trainer>| -> (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) {
        (t.model_state().unwrap(), t.optimizer_state().unwrap())
    };
    let ((model_a, optim_a), (model_b, optim_b)) = (states(&mut native), states(&mut candle));
    assert_eq!(model_a.keys().collect::<Vec<_>>(), model_b.keys().collect::<Vec<_>>());
    assert_eq!(optim_a.keys().collect::<Vec<_>>(), optim_b.keys().collect::<Vec<_>>(), "{what}: optimiser buffers");
    let moved = model_a.iter().any(|(k, t)| relative_error(t, &model.state()[k], 1e-12) > 1e-3);
    assert!(moved, "{what}: three steps moved no weight");
    for (state_a, state_b) in [(&model_a, &model_b), (&optim_a, &optim_b)] {
        for (name, a) in state_a {
            let floor = 1e-3 * (a.elem_count() as f64).sqrt();
            let err = relative_error(&state_b[name], a, floor);
            assert!(err < tolerance, "{what}: `{name}` differs by {err:e} after three steps");
        }
    }
}

/// Each optimiser with its options, and the tolerances for the loss and
/// the state. SGD's updates are linear in the gradient: seen within 2e-7
/// (loss) and 2e-4 (state). AdamW divides by the gradient's running size,
/// so for parameters whose gradient is rounding noise (a conv bias before
/// batch norm) the step is that noise's sign: seen within 2e-6 and 2.2e-2.
fn optimizers() -> Vec<(Optimizer, f64, Option<f64>, [f64; 2])> {
    let sgd = Optimizer { kind: OptimizerKind::Sgd, lr: 0.05, ..Optimizer::default() };
    let adamw = Optimizer { kind: OptimizerKind::Adamw, lr: 3e-3, weight_decay: 0.05, ..Optimizer::default() };
    vec![
        (Optimizer { momentum: 0.0, ..sgd.clone() }, 0.0, None, [1e-6, 1e-3]),
        (sgd.clone(), 0.1, None, [1e-6, 1e-3]),
        (Optimizer { nesterov: true, ..sgd.clone() }, 0.0, Some(0.5), [1e-6, 1e-3]),
        (adamw, 0.1, Some(2.0), [1e-5, 5e-2]),
    ]
}

#[test]
fn every_optimiser_on_a_small_cnn_with_dropout() {
    let graph = common::compiled("tests/fixtures/small_cnn.net", &[]).graph;
    for (optimizer, smoothing, clip, tolerance) in optimizers() {
        three_steps_agree(&graph, optimizer, smoothing, clip, tolerance);
    }
}

/// Every op in every variant (`tests/export/every_op.net`), trained.
#[test]
fn every_optimiser_on_every_op() {
    let graph = common::compiled("tests/export/every_op.net", &[]).graph;
    for (optimizer, smoothing, clip, tolerance) in optimizers() {
        three_steps_agree(&graph, optimizer, smoothing, clip, tolerance);
    }
}

/// The paper's network at a small width, three SGD steps: deep nets see
/// rounding flip a ReLU or move a max-pool's maximum now and then
/// (tests/native.rs), and with six images a batch, batch norm spreads each
/// such flip over a whole channel's gradient, so single parameters drift
/// apart by tens of percent within three steps. What must agree is the
/// loss, step by step, and the update of the net as a whole: seen 8.2%
/// apart, as far as candle's model with netc's CPU kernels is from the
/// native engine here (the noise is the engines', not the kernels').
#[test]
fn ours_at_a_small_width() {
    let graph = common::compiled("specs/ours.net", &[("width", 0.125)]).graph;
    let sgd = Optimizer { lr: 0.01, ..Optimizer::default() };
    let model = Model::new(&graph, &Device::Cpu, 3).unwrap();
    let mut native = trainer(Engine::Native, &Device::Cpu, &model, &sgd, None).unwrap();
    let mut candle = trainer(Engine::Candle, &Device::Cpu, &model, &sgd, None).unwrap();
    let mut rng = Rng(17);
    for step in 0..3u64 {
        let batch = random_batch(&graph, 16, &mut rng);
        let s = StepSettings { lr: sgd.lr, label_smoothing: 0.1, grad_clip: None, dropout_seed: step };
        let (a, b) = (native.step(&batch, &s).unwrap(), candle.step(&batch, &s).unwrap());
        let err = (a.value - b.value).abs() / a.value;
        assert!(err < 2e-3, "step {step}: loss {} (native) against {} (candle)", a.value, b.value);
    }
    let start = model.state();
    let update = |t: &mut Box<dyn Trainer>| -> Tensor {
        let end = t.model_state().unwrap();
        let parts: Vec<Tensor> = graph
            .nodes
            .iter()
            .flat_map(|n| &n.params)
            .map(|p| (&end[&p.name] - &start[&p.name]).unwrap().flatten_all().unwrap())
            .collect();
        Tensor::cat(&parts, 0).unwrap()
    };
    let err = relative_error(&update(&mut candle), &update(&mut native), 0.0);
    assert!(err < 0.15, "the update of three steps differs by {err:e}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-engines-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `metrics.csv`'s rows as (train loss, test loss, test accuracy).
fn losses(dir: &Path) -> Vec<[f64; 3]> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
            [f[1], f[3], f[4]]
        })
        .collect()
}

const SPEC: &str = "tests/fixtures/small_cnn.net";
const RUN: [&str; 9] = ["run", SPEC, "--epochs", "3", "--train-images", "256", "--test-images", "64", "--quiet"];

/// The same seed on both engines: the same data order, augmentation and
/// dropout masks, so the epochs' losses agree within 1%.
#[test]
fn a_run_on_the_candle_engine_follows_the_native_one() {
    let dir = scratch("same-seed");
    let (native, candle) = (dir.join("native"), dir.join("candle"));
    let (code, _, err) = netc(&[&RUN[..], &["--out", native.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = netc(&[&RUN[..], &["--engine", "candle", "--out", candle.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    let (a, b) = (losses(&native), losses(&candle));
    assert_eq!(a.len(), 3);
    for (epoch, (a, b)) in a.iter().zip(&b).enumerate() {
        for (what, x, y) in [("train loss", a[0], b[0]), ("test loss", a[1], b[1])] {
            assert!((x - y).abs() / x < 0.01, "epoch {}: {what} {x} (native) against {y} (candle)", epoch + 1);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run interrupted on one engine resumes on the other, from the same
/// checkpoint format, and ends where an uninterrupted run does.
#[test]
fn a_run_resumes_on_the_other_engine() {
    let dir = scratch("resume");
    let (whole, split) = (dir.join("whole"), dir.join("split"));
    let (code, _, err) = netc(&[&RUN[..], &["--out", whole.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    // 256 images in batches of 64: 4 steps an epoch; stop in the second epoch.
    let stop = ["--engine", "candle", "--stop-after-steps", "6", "--out", split.to_str().unwrap()];
    let (code, _, err) = netc(&[&RUN[..], &stop].concat());
    assert_eq!(code, 130, "{err}");
    let (code, _, err) = netc(&["run", "--resume", split.to_str().unwrap(), "--engine", "native", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let (a, b) = (losses(&whole), losses(&split));
    assert_eq!(b.len(), 3);
    for (epoch, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!((a[0] - b[0]).abs() / a[0] < 0.01, "epoch {}: train loss {} against {}", epoch + 1, a[0], b[0]);
    }
    // And back: the native run's checkpoint evaluates on the candle engine.
    let weights = split.join("best.safetensors");
    let eval = |engine: &str| {
        let args = ["eval", SPEC, "--weights", weights.to_str().unwrap(), "--test-images", "64", "--engine", engine];
        let (code, out, err) = netc(&args);
        assert_eq!(code, 0, "{err}");
        out.lines().next().unwrap().to_string()
    };
    assert_eq!(eval("native"), eval("candle"), "the same weights evaluate alike on both engines");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--device cuda` is taken by every command; in a build without CUDA it
/// says how to get one, and the native engine refuses a GPU by name.
#[test]
fn a_gpu_is_asked_for_clearly() {
    let weights = "no-such-weights.safetensors";
    let commands: [&[&str]; 5] = [
        &["run", SPEC, "--device", "cuda"],
        &["eval", SPEC, "--weights", weights, "--device", "cuda:0"],
        &["probe", SPEC, "--weights", weights, "--device", "cuda"],
        &["compare", "runs/a", "runs/b", "--device", "cuda:1"],
        &["bench", SPEC, "--device", "cuda"],
    ];
    for args in commands {
        let (code, _, err) = netc(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        if cfg!(feature = "cuda") {
            assert!(first.contains("cannot open CUDA device"), "{args:?}: {err}");
        } else {
            assert!(first.contains("built without CUDA") && first.contains("--features cuda"), "{args:?}: {err}");
        }
    }
    // The device is opened before the engine is chosen, so without a GPU its
    // reason comes first; the refusal of the native engine on a GPU itself
    // can only be seen on a machine with one.
    let (code, _, err) = netc(&["run", SPEC, "--device", "cuda", "--engine", "native"]);
    assert_eq!(code, 1);
    let reason = if cfg!(feature = "cuda") { "cannot open CUDA device" } else { "built without CUDA" };
    assert!(err.lines().next().unwrap_or_default().contains(reason), "{err}");
}

/// Heatmaps, Grad-CAM included, come out the same from the portable
/// kernels that a GPU runs as from netc's CPU kernels, on every probe of
/// the paper's network (same weights, same images).
#[test]
fn heatmaps_on_the_portable_kernels() {
    use netc::recipe::Aggregate;
    let graph = common::compiled("specs/ours.net", &[("width", 0.125)]).graph;
    let model = |kernels| Model::new(&graph, &Device::Cpu, 5).unwrap().to(&Device::Cpu, kernels).unwrap();
    let images = random_batch(&graph, 3, &mut Rng(9)).images;
    let probes: Vec<String> = graph.probes.iter().map(|p| p.name.clone()).collect();
    assert!(probes.len() >= 2);
    for how in [Aggregate::Mean, Aggregate::Gradcam] {
        let maps = |mut m: Model| netc::probe::probe_maps(&mut m, &images, &probes, how, None).unwrap();
        let (cpu, portable) = (maps(model(Kernels::Cpu)), maps(model(Kernels::Portable)));
        for (a, b) in cpu.iter().zip(&portable) {
            for (x, y) in a.maps.iter().zip(&b.maps) {
                let (x, y) = (
                    Tensor::new(x.as_slice(), &Device::Cpu).unwrap(),
                    Tensor::new(y.as_slice(), &Device::Cpu).unwrap(),
                );
                let err = relative_error(&y, &x, 1e-6);
                assert!(err < 1e-3, "{how:?} at `{}`: the portable kernels' map differs by {err:e}", a.probe);
            }
        }
    }
}

/// `netc bench --verify` (the first check on a GPU machine) compares one
/// step of the candle engine with the native engine's, and says so.
#[test]
fn bench_verifies_the_candle_engine() {
    let args = ["bench", SPEC, "--engine", "candle", "--verify", "--steps", "1", "--warmup", "0", "--batch", "8"];
    let (code, out, err) = netc(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let v = &report["verify"];
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["loss_error"].as_f64().unwrap() < 1e-5, "{v}");
    assert!(v["update_error"].as_f64().unwrap() < 1e-3, "{v}");
    let (code, out, _) = netc(&args);
    assert_eq!(code, 0);
    assert!(
        out.contains("verify: one step on cpu against the native engine on the CPU") && out.contains(": ok"),
        "{out}"
    );
    let (code, _, err) = netc(&["bench", SPEC, "--verify"]);
    assert_eq!(code, 1);
    assert!(err.contains("--engine candle"), "{err}");
}

/// `scripts/gpu-check.sh`, run here with the CPU build, gets as far as a
/// machine without a GPU allows: the binary loads, and the first stage that
/// needs the GPU stops the script with netc's reason.
#[test]
fn the_gpu_check_runs_up_to_the_device() {
    let out = scratch("gpu-check");
    let run = Command::new("bash")
        .arg("scripts/gpu-check.sh")
        .env("NETC", env!("CARGO_BIN_EXE_netc"))
        .env("OUT", &out)
        .output()
        .expect("bash runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.status.code(), Some(1), "{stdout}\n{stderr}");
    for stage in ["== 1/6 binary", "== 2/6 libraries", "ok: ", "== 3/6 GPU", "== 4/6 one training step on cuda"] {
        assert!(stdout.contains(stage), "missing `{stage}`:\n{stdout}\n{stderr}");
    }
    assert!(!stdout.contains("== 5/6"), "{stdout}");
    let reason = if cfg!(feature = "cuda") { "cannot open CUDA device" } else { "built without CUDA" };
    assert!(stderr.contains(reason) && stderr.contains("gpu-check: FAILED at the step on cuda"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Training on the candle engine holds its memory flat: nothing it keeps
/// from a step (optimiser buffers, weights) may carry that step's graph,
/// or every step's activations stay alive, chained to the next (seen on a
/// GPU: out of memory; here, before the fix, 452 MiB after 1 step and
/// 2,979 MiB after 12 at width 0.125).
#[test]
fn the_candle_engine_does_not_keep_old_steps() {
    let peak = |steps: &str| -> f64 {
        let args = ["bench", "specs/inception_v1.net", "--set", "width=0.0625", "--engine", "candle"];
        let (code, out, err) =
            netc(&[&args[..], &["--batch", "16", "--warmup", "0", "--steps", steps, "--json"]].concat());
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["peak_memory_mib"].as_f64().unwrap()
    };
    let (one, eight) = (peak("1"), peak("8"));
    assert!(eight < one * 1.3, "peak memory {one:.0} MiB after 1 step but {eight:.0} MiB after 8");
}
