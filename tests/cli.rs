//! The `netc` binary: exit codes and what each format prints.

mod common;

use std::process::Command;

use common::netc;

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
fn a_bad_set_value_is_a_user_error_with_exit_code_one() {
    let (code, _, err) = netc(&["compile", "specs/ours.net", "--set", "width=wide"]);
    assert_eq!(code, 1);
    assert!(err.contains("`--set width=wide`: `wide` is not a number"), "{err}");
    let (code, _, err) = netc(&["run", "specs/ours.net", "--set", "width", "--epochs", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("`--set width`: give NAME=VALUE"), "{err}");
}

#[test]
fn a_missing_spec_is_named() {
    let (code, _, err) = netc(&["compile", "specs/nope.net"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read `specs/nope.net`"), "{err}");
}

#[test]
fn a_folder_that_is_not_a_run_is_named_as_such_by_resume_and_compare() {
    for args in
        [&["run", "--resume", "specs"][..], &["compare", "specs"], &["compare", "specs/ours.net"], &["compare", "nope"]]
    {
        let (code, _, err) = netc(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        let named = match args[args.len() - 1] {
            "specs" => "`specs` is not a run directory: it has no graph.json",
            "nope" => "`nope` does not exist",
            _ => "`specs/ours.net` is a file, not a run directory",
        };
        assert!(err.contains(named), "{args:?}: {err}");
    }
}

#[test]
fn bench_refuses_more_threads_than_can_work_and_says_how_many_cpus_there_are() {
    let (code, _, err) = netc(&["bench", "specs/ours.net", "--threads", "100000"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`--threads 100000`: this machine has") && err.contains("CPU"), "{err}");
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
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains(" 1 epoch, batch"), "one epoch, singular:\n{report}");
    let (code, _, err) = netc(&["run", "tests/fixtures/small_cnn.net", "--epochs", "1", "--out", out, "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("never writes into another run's directory"), "{err}");

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
            && err.contains("`s1.conv_bn.bn.bias` is [16] in the weights but [32] in the spec"),
        "{err}"
    );
    // The first few mismatches, and what the run beside the weights recorded.
    assert!(err.lines().filter(|l| l.starts_with("  `")).count() <= 5, "{err}");
    assert!(err.contains("... and ") && err.contains("more"), "{err}");
    assert!(err.contains("recorded net `small_cnn` with width=1 (its graph.json); give `--set width=1`"), "{err}");

    let (code, _, err) = netc(&[&args[..4], &["--test-images", "0"]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("`--test-images 0`"), "{err}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("netc-cli-nan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = ["run", "tests/fixtures/small_cnn.net", "--epochs", "2", "--train-images", "256", "--test-images", "64"];
    let (code, _, err) = netc(&[&args[..], &["--lr", "1e30", "--out", dir.to_str().unwrap(), "--quiet"]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("the loss became") && err.contains("training stopped"), "{err}");
    // It diverged before its first checkpoint: nothing to resume, no directory left.
    assert!(err.contains("was removed") && !dir.exists(), "{err}");
    let (code, _, err) = netc(&[&args[..], &["--out", dir.to_str().unwrap(), "--quiet"]].concat());
    assert_eq!(code, 0, "the same --out can be used again: {err}");
    let _ = std::fs::remove_dir_all(&dir);
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
    // Two runs alike in all but their directories: columns named by directory.
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    let a_name = a.file_name().unwrap().to_string_lossy().to_string();
    assert!(md.contains(&format!("`{a_name}` ({a_name})")), "{md}");
    // Runs of other seeds: columns named by the net and the seed.
    let c = a.with_extension("seed2");
    let _ = std::fs::remove_dir_all(&c);
    let args = ["run", "tests/fixtures/small_cnn.net", "--epochs", "1", "--train-images", "128", "--test-images", "32"];
    let (code, _, err) = netc(&[&args[..], &["--seed", "2", "--out", c.to_str().unwrap(), "--quiet"]].concat());
    assert_eq!(code, 0, "{err}");
    let out2 = a.with_extension("compare2");
    let _ = std::fs::remove_dir_all(&out2);
    let (code, _, err) =
        netc(&["compare", a.to_str().unwrap(), c.to_str().unwrap(), "--count", "2", "--out", out2.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(out2.join("compare.md")).unwrap();
    assert!(md.contains("`small_cnn seed 1`") && md.contains("`small_cnn seed 2`"), "{md}");
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

/// A scratch directory for one test, empty.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An image folder `root/{train,test}/<class>/<i>.png` of `size`x`size`
/// images, `n` per class and split, each class a different flat colour.
fn image_folder(root: &std::path::Path, classes: &[&str], n: usize, size: u32) {
    for split in ["train", "test"] {
        for (k, class) in classes.iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let v = (40 * k + 3 * i) as u8;
                let img =
                    image::RgbImage::from_fn(size, size, |x, y| image::Rgb([v, (x * 7) as u8, (y * 5) as u8 ^ v]));
                img.save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

#[test]
fn command_line_values_are_checked_by_the_recipe_rules_and_named_as_options() {
    let out = scratch("opts");
    for (option, value, says) in [
        ("--epochs", "0", "`--epochs 0`: a run trains at least 1 epoch"),
        ("--batch-size", "0", "`--batch-size 0`"),
        ("--lr", "-0.1", "`--lr -0.1`: the learning rate must be above 0"),
        ("--train-images", "0", "`--train-images 0`"),
    ] {
        let given = format!("{option}={value}");
        let (code, _, err) = netc(&["run", "tests/fixtures/small_cnn.net", &given, "--out", out.to_str().unwrap()]);
        assert_eq!(code, 1, "{option} {value}: {err}");
        assert!(err.contains(says), "{option} {value}: {err}");
        assert!(!out.exists(), "{option} {value} left a run directory");
    }
}

#[test]
fn a_run_that_cannot_start_leaves_no_directory_and_its_out_stays_free() {
    let out = scratch("dead");
    let o = out.to_str().unwrap();
    let quick = ["--epochs", "1", "--train-images", "64", "--test-images", "32", "--quiet"];
    // 3 classes in the net, 10 in the synthetic data.
    let (code, _, err) =
        netc(&[&["run", "tests/fixtures/small_cnn.net", "--set", "classes=3", "--out", o], &quick[..]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("has 10 classes"), "{err}");
    assert!(!out.exists(), "a run that failed before its first step left {}", out.display());
    // Images of the wrong size, and missing data.
    let data = scratch("dead-data");
    image_folder(&data, &["a", "b"], 2, 16);
    let folder = format!("folder:{}", data.display());
    for (source, says) in
        [(folder.as_str(), "the image is 16x16"), ("folder:/nonexistent/netc-data", "PATH/train/<class>")]
    {
        let (code, _, err) = netc(
            &[&["run", "tests/fixtures/small_cnn.net", "--set", "classes=2", "--data", source, "--out", o], &quick[..]]
                .concat(),
        );
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!out.exists(), "{source}: a failed run left its directory");
    }
    // The same --out then works.
    let (code, _, err) = netc(&[&["run", "tests/fixtures/small_cnn.net", "--out", o], &quick[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.join("best.safetensors").exists());
}

#[test]
fn a_one_class_data_set_is_refused_with_the_layout() {
    let data = scratch("oneclass");
    image_folder(&data, &["only"], 4, 32);
    let folder = format!("folder:{}", data.display());
    let out = data.join("run");
    let args =
        ["run", "tests/fixtures/small_cnn.net", "--data", &folder, "--epochs", "1", "--out", out.to_str().unwrap()];
    let (code, _, err) = netc(&args);
    assert_eq!(code, 1);
    assert!(err.contains("has 1 class (only); a classifier needs at least 2"), "{err}");
    let (code, _, err) = netc(&[&args[..], &["--set", "classes=1"]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("error[E0202]") && err.contains("a classifier needs at least 2 classes"), "{err}");
    assert!(!out.exists());
}

#[test]
fn resume_refuses_fewer_epochs_than_were_trained_and_keeps_the_recipe() {
    let out = scratch("fewer");
    let o = out.to_str().unwrap();
    let args = ["run", "tests/fixtures/small_cnn.net", "--epochs", "2", "--train-images", "64", "--test-images", "32"];
    let (code, _, err) = netc(&[&args[..], &["--out", o, "--quiet"]].concat());
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read_to_string(out.join("recipe.toml")).unwrap();
    let (code, _, err) = netc(&["run", "--resume", o, "--epochs", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("`--epochs 1`") && err.contains("has already trained 2 epochs"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("recipe.toml")).unwrap(), before, "the recipe was rewritten");
    // Extending says so.
    let (code, stdout, err) = netc(&["run", "--resume", o, "--epochs", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("epochs change from 2 to 3 (recipe.toml updated)"), "{stdout}");
    assert!(stdout.contains("done: test accuracy"), "{stdout}");
}

#[test]
fn data_paths_in_a_spec_are_relative_to_it_and_runs_work_from_any_directory() {
    let root = scratch("paths");
    image_folder(&root.join("data"), &["a", "b"], 4, 32);
    let spec = std::fs::read_to_string("tests/fixtures/small_cnn.net")
        .unwrap()
        .replace("dataset = \"synthetic\"", "dataset = \"folder:../data\"")
        .replace("train_images = 2000\ntest_images = 500", "");
    std::fs::create_dir_all(root.join("specs")).unwrap();
    let spec_path = root.join("specs/net.net");
    std::fs::write(&spec_path, spec).unwrap();
    let out = root.join("run");
    // From the crate root: `../data` is relative to the spec, not to here.
    let (code, _, err) = netc(&[
        "run",
        spec_path.to_str().unwrap(),
        "--set",
        "classes=2",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let recipe = std::fs::read_to_string(out.join("recipe.toml")).unwrap();
    let data = root.join("data");
    assert!(recipe.contains(&format!("folder:{}", data.display())), "the run records an absolute path:\n{recipe}");
    // Probing and comparing from another directory find the data.
    let weights = out.join("best.safetensors");
    let elsewhere = Command::new(env!("CARGO_BIN_EXE_netc"))
        .current_dir(std::env::temp_dir())
        .args(["compare", out.to_str().unwrap(), "--count", "2", "--out", root.join("cmp").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(elsewhere.status.success(), "{}", String::from_utf8_lossy(&elsewhere.stderr));
    let probe = Command::new(env!("CARGO_BIN_EXE_netc"))
        .current_dir(root.join("specs"))
        .args(["probe", "net.net", "--set", "classes=2", "--weights", weights.to_str().unwrap(), "--count", "2"])
        .output()
        .unwrap();
    assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stderr));
}

#[test]
fn probe_never_writes_over_a_run_and_says_which_images_it_drew() {
    let run = tiny_run("probe-fresh");
    let own = std::fs::read(run.join("probe/figure.png")).unwrap();
    let weights = run.join("best.safetensors");
    let args = ["probe", "tests/fixtures/small_cnn.net", "--weights", weights.to_str().unwrap(), "--count", "5"];
    let (code, stdout, err) = netc(&args);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("probe-2"), "a fresh folder beside the weights: {stdout}");
    assert_eq!(std::fs::read(run.join("probe/figure.png")).unwrap(), own, "the run's own figure changed");
    let csv = std::fs::read_to_string(run.join("probe-2/images.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "a header and one row per image:\n{csv}");
    assert!(csv.starts_with("row,index,class\n0,"), "{csv}");
    // The run's own figure drew by the same rule: its first rows are the same images.
    let run_csv = std::fs::read_to_string(run.join("probe/images.csv")).unwrap();
    let first = |c: &str| c.lines().skip(1).take(3).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(first(&csv), first(&run_csv));
    // An existing folder with files is refused, as is drawing no image.
    let (code, _, err) = netc(&[&args[..], &["--out", run.to_str().unwrap()]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = netc(&[&args[..4], &["--count", "0"]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("`--count 0`"), "{err}");
    assert!(!std::fs::read_dir(&run).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("partial")));
}

#[test]
fn probe_streams_more_images_than_a_batch_on_one_scale_per_probe() {
    let run = tiny_run("probe-stream");
    let weights = run.join("best.safetensors");
    let out = run.join("stream");
    let (code, _, err) = netc(&[
        "probe",
        "tests/fixtures/small_cnn.net",
        "--weights",
        weights.to_str().unwrap(),
        "--count",
        "20",
        "--shared-scale",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let maps = candle_core::safetensors::load(out.join("heatmaps.safetensors"), &candle_core::Device::Cpu).unwrap();
    for probe in ["low", "high"] {
        assert_eq!(maps[probe].dims(), [20, 32, 32]);
        let v = maps[probe].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Written map by map across two batches: the last images' maps are there too.
        assert!(v.iter().all(|x| x.is_finite()) && v[19 * 1024..].iter().any(|x| *x != 0.0), "{probe}");
        assert!(out.join(probe).join("19.png").exists());
    }
    // The figure shows the first 16 images: 16 rows of 128-pixel tiles.
    let fig = image::open(out.join("figure.png")).unwrap();
    assert!(fig.height() > 16 * 128 && fig.height() < 17 * 128 + 100, "{}", fig.height());
}

#[test]
fn ctrl_c_mid_probe_leaves_neither_the_folder_nor_its_temporary() {
    let run = tiny_run("probe-int");
    let weights = run.join("best.safetensors");
    let out = run.join("stopped");
    let child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["probe", "tests/fixtures/small_cnn.net", "--weights", weights.to_str().unwrap(), "--count", "20000"])
        .args(["--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("netc starts");
    let partial = run.join(format!(".stopped.partial-{}", child.id()));
    let start = std::time::Instant::now();
    while !partial.join("low").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(partial.exists(), "the probe never started drawing");
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(sent.success());
    let result = child.wait_with_output().expect("netc exits");
    assert_eq!(result.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&result.stderr).contains("interrupted"));
    assert!(!partial.exists() && !out.exists(), "Ctrl-C left a folder behind");
}

#[test]
fn compare_refuses_runs_of_different_data_and_names_each_runs_probes() {
    let a = tiny_run("cmp-data-a");
    let data = scratch("cmp-data");
    image_folder(&data, &["a", "b"], 4, 32);
    let b = scratch("cmp-data-b");
    let folder = format!("folder:{}", data.display());
    let args = ["run", "tests/fixtures/small_cnn.net", "--set", "classes=2", "--data", &folder, "--epochs", "1"];
    let (code, _, err) = netc(&[&args[..], &["--out", b.to_str().unwrap(), "--quiet"]].concat());
    assert_eq!(code, 0, "{err}");
    let out = scratch("cmp-data-out");
    let (code, _, err) = netc(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("was trained on `synthetic`") && err.contains("compare runs of the same data"), "{err}");
    let (code, _, err) = netc(&["compare", a.to_str().unwrap(), "--probe", "mid", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not every run has probe `mid`; the common ones are low, high"), "{err}");
    // A run without probes: the message lists what each run has.
    let bare = scratch("cmp-bare");
    std::fs::create_dir_all(&bare).unwrap();
    let spec = std::fs::read_to_string("tests/fixtures/small_cnn.net").unwrap();
    let spec = spec.replace("    probe low = s1\n    probe high = s3\n", "");
    std::fs::write(bare.join("bare.net"), spec).unwrap();
    let c = bare.join("run");
    let spec_path = bare.join("bare.net");
    let args = ["run", spec_path.to_str().unwrap(), "--epochs", "1"];
    let more = ["--train-images", "64", "--test-images", "32", "--quiet", "--out", c.to_str().unwrap()];
    let (code, _, err) = netc(&[&args[..], &more[..]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = netc(&["compare", a.to_str().unwrap(), c.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("the runs have no probe in common:") && err.contains("has low, high; run has none"), "{err}");
    // Into an existing run: refused.
    let (code, _, err) = netc(&["compare", a.to_str().unwrap(), "--out", a.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn a_corrupt_image_stops_a_run_by_name_unless_bad_images_are_skipped() {
    let dir = std::env::temp_dir().join(format!("netc-cli-skip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("pets");
    for (split, n) in [("train", 6), ("test", 2)] {
        for (k, class) in ["cat", "dog"].iter().enumerate() {
            let folder = data.join(split).join(class);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..n {
                let img =
                    image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, (k * 200) as u8]));
                img.save(folder.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    std::fs::write(data.join("train/cat/broken.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    let base = ["run", "tests/fixtures/small_cnn.net", "--epochs", "1", "--set", "classes=2", "--quiet"];
    let folder = format!("folder:{}", data.display());
    let out = dir.join("strict");
    let (code, _, err) = netc(&[&base[..], &["--data", &folder, "--out", out.to_str().unwrap()]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("train/cat/broken.png") && err.contains("--skip-bad-images"), "{err}");
    assert!(!out.exists(), "a run that cannot start leaves no directory");

    let out = dir.join("lenient");
    let args = [&base[..], &["--data", &folder, "--out", out.to_str().unwrap(), "--skip-bad-images"]].concat();
    let (code, _, err) = netc(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("left out 1 training image") && err.contains("broken.png") && err.contains("12 remain"),
        "{err}"
    );
    // The run records the choice, so a resume skips the same image.
    let recipe = std::fs::read_to_string(out.join("recipe.toml")).unwrap();
    assert!(recipe.contains("skip_bad_images = true"), "{recipe}");
    let _ = std::fs::remove_dir_all(&dir);
}
