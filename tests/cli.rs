//! The `netc` binary: exit codes and what each format prints.

use std::process::Command;

fn netc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netc")).args(args).output().expect("netc runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_exits_zero_on_clean_specs_and_libraries() {
    let (code, out, _) = netc(&["check", "specs/inception_v1.net", "specs/lib/inception.net"]);
    assert_eq!(code, 0);
    assert!(out.contains("ok: specs/inception_v1.net (net inception_v1, 6,166,250 parameters)"), "{out}");
    assert!(out.contains("ok: specs/lib/inception.net (library, 2 blocks)"), "{out}");
}

#[test]
fn check_exits_one_when_any_file_has_errors_and_still_checks_the_rest() {
    let (code, out, err) = netc(&["check", "tests/bad/unknown_op.net", "specs/ours.net"]);
    assert_eq!(code, 1);
    assert!(err.contains("error[E0103]") && err.contains("1 of 2 specs failed"), "{err}");
    assert!(out.contains("ok: specs/ours.net"), "{out}");
}

#[test]
fn compile_json_carries_the_totals_and_reads_back_as_a_graph() {
    let (code, out, _) = netc(&["compile", "specs/inception_v1.net", "--set", "width=0.25", "--format", "json"]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(value["total_params"], 392_738);
    let graph: netc::graph::Graph = serde_json::from_str(&out).expect("the IR deserialises");
    assert_eq!(graph.args["width"], 0.25);
}

#[test]
fn compile_dot_is_a_graphviz_digraph_with_probes_marked() {
    let (code, out, _) = netc(&["compile", "specs/ours.net", "--format", "dot"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("digraph \"ours\" {") && out.trim_end().ends_with('}'));
    assert!(out.contains("probe s3.mask"), "mask probes are labelled");
}

#[test]
fn a_bad_set_value_is_refused_by_the_command_line() {
    let (code, _, err) = netc(&["compile", "specs/ours.net", "--set", "width=wide"]);
    assert_eq!(code, 2);
    assert!(err.contains("`wide` is not a number"), "{err}");
}

#[test]
fn a_missing_spec_is_named() {
    let (code, _, err) = netc(&["compile", "specs/nope.net"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read `specs/nope.net`"), "{err}");
}

#[test]
fn run_then_eval_on_the_best_checkpoint() {
    let dir = std::env::temp_dir().join(format!("netc-cli-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().expect("utf-8");
    let (code, _, err) = netc(&[
        "run",
        "tests/fixtures/small_cnn.net",
        "--epochs",
        "1",
        "--train-images",
        "128",
        "--test-images",
        "64",
        "--out",
        out,
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    for file in ["graph.json", "recipe.toml", "metrics.csv", "best.safetensors", "training_curves.png", "report.md"] {
        assert!(dir.join(file).exists(), "the run left no {file}");
    }
    let (code, _, err) = netc(&["run", "tests/fixtures/small_cnn.net", "--epochs", "1", "--out", out, "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("never overwrites"), "{err}");

    let weights = dir.join("best.safetensors");
    let csv = dir.join("confusion.csv");
    let args = ["eval", "tests/fixtures/small_cnn.net", "--weights", weights.to_str().unwrap(), "--test-images", "64"];
    let (code, stdout, err) = netc(&[&args[..], &["--csv", csv.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("on 64 images") && stdout.contains("(rows: true class, columns: predicted class)"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 11, "a header and ten classes");

    let (code, _, err) = netc(&[&args[..], &["--set", "width=2"]].concat());
    assert_eq!(code, 1);
    assert!(
        err.contains("does not fit net `small_cnn`")
            && err.contains("`s1.conv_bn.conv.weight` is [16, 3, 3, 3] in the weights but [32, 3, 3, 3] in the spec"),
        "{err}"
    );
}

#[test]
fn a_diverging_run_stops_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("netc-cli-nan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = ["run", "tests/fixtures/small_cnn.net", "--epochs", "2", "--train-images", "256", "--test-images", "64"];
    let (code, _, err) = netc(&[&args[..], &["--lr", "1e30", "--out", dir.to_str().unwrap(), "--quiet"]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("the loss became") && err.contains("training stopped"), "{err}");
}

#[test]
fn after_kill_9_the_last_checkpoint_is_intact_and_the_run_resumes() {
    let dir = std::env::temp_dir().join(format!("netc-cli-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["run", "tests/fixtures/small_cnn.net", "--epochs", "4", "--train-images", "256", "--test-images", "64"])
        .args(["--out", out, "--quiet"])
        .spawn()
        .expect("netc starts");
    let last = dir.join("last.safetensors");
    let start = std::time::Instant::now();
    while !last.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    let _ = child.wait();
    assert!(last.exists(), "no checkpoint was written within two minutes");
    netc::checkpoint::load(&last, &candle_core::Device::Cpu).expect("the checkpoint survives a kill");
    let (code, _, err) = netc(&["run", "--resume", out, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let rows = std::fs::read_to_string(dir.join("metrics.csv")).unwrap().lines().count();
    assert_eq!(rows, 5, "a header and one row per epoch, none twice");
}

#[test]
fn ctrl_c_finishes_the_step_and_writes_a_checkpoint() {
    let dir = std::env::temp_dir().join(format!("netc-cli-int-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args([
            "run",
            "tests/fixtures/small_cnn.net",
            "--epochs",
            "100",
            "--train-images",
            "256",
            "--test-images",
            "64",
        ])
        .args(["--out", dir.to_str().unwrap(), "--quiet"])
        .spawn()
        .expect("netc starts");
    // Wait until training is under way (the run directory has its graph).
    let start = std::time::Instant::now();
    while !dir.join("graph.json").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(sent.success());
    let status = child.wait().expect("netc exits");
    assert_eq!(status.code(), Some(130), "an interrupted run exits with 130");
    let cp = netc::checkpoint::load(&dir.join("last.safetensors"), &candle_core::Device::Cpu).expect("a checkpoint");
    let progress = cp.progress.expect("with its progress");
    assert!(progress.step > 0 && progress.epoch < 100, "{progress:?}");
}

/// A one-epoch run of the small CNN on synthetic data, for the probe and
/// compare tests.
fn tiny_run(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = ["run", "tests/fixtures/small_cnn.net", "--epochs", "1", "--train-images", "128", "--test-images", "32"];
    let (code, _, err) = netc(&[&args[..], &["--out", dir.to_str().unwrap(), "--quiet"]].concat());
    assert_eq!(code, 0, "{err}");
    dir
}

#[test]
fn probe_writes_overlays_maps_figure_and_scores() {
    let run = tiny_run("probe");
    let weights = run.join("best.safetensors");
    let out = run.join("my-probe");
    let args = ["probe", "tests/fixtures/small_cnn.net", "--weights", weights.to_str().unwrap(), "--count", "4"];
    let (code, stdout, err) = netc(&[&args[..], &["--sanity", "--out", out.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("| high |") && stdout.contains("untrained"), "{stdout}");
    for file in [
        "figure.png",
        "heatmaps.safetensors",
        "scores.json",
        "scores.md",
        "low/3.png",
        "high/0.png",
        "untrained/figure.png",
    ] {
        assert!(out.join(file).exists(), "no {file}");
    }
    let maps = candle_core::safetensors::load(out.join("heatmaps.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(maps["high"].dims(), [4, 32, 32], "one input-sized map per image");
    let (code, _, err) = netc(&[&args[..], &["--probes", "nope"]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("no probe `nope`; its probes are low, high"), "{err}");
}

#[test]
fn compare_tabulates_runs_and_draws_one_column_each() {
    let (a, b) = (tiny_run("cmp-a"), tiny_run("cmp-b"));
    let out = a.with_extension("compare");
    let (code, stdout, err) =
        netc(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--count", "3", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("Heatmaps at probe `low`"), "the first common probe when there is no `mid`:\n{stdout}");
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "a header and a row per run:\n{csv}");
    let png = image::open(out.join("compare.png")).unwrap();
    assert!(png.width() > png.height(), "three columns (image and two runs) of three rows");
}

#[test]
fn bench_reports_both_steps_with_a_breakdown_that_adds_up() {
    let (code, out, err) = netc(&[
        "bench",
        "tests/fixtures/small_cnn.net",
        "--batch",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--breakdown",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(r["network"], "small_cnn");
    assert_eq!(r["params"], 24346);
    assert_eq!(r["train_step_seconds"].as_array().unwrap().len(), 2);
    let slowest = r["train_step_seconds"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).fold(0.0, f64::max);
    let ops: f64 = r["breakdown"].as_array().unwrap().iter().map(|row| row[2].as_f64().unwrap()).sum();
    // The ops' time per step (a mean) is part of a step's time: the loss
    // and the update are not ops.
    assert!(ops > 0.0 && ops <= slowest, "ops {ops} s per step, slowest step {slowest} s");
    let speed = r["train_images_per_second"].as_f64().unwrap();
    assert!(speed > 0.0 && speed.is_finite());
    assert!(r["infer_images_per_second"].as_f64().unwrap() > 0.0);
    assert!(r["peak_memory_mib"].as_f64().unwrap() > 1.0);

    let (code, _, err) = netc(&["bench", "tests/fixtures/small_cnn.net", "--device", "cuda"]);
    assert_eq!(code, 1);
    assert!(err.contains("cuda"), "{err}");
}
