//! When the machine says no: a disk that fills up while a checkpoint is
//! written, a run directory that cannot be written, and a batch, net or
//! data set larger than memory. Each ends in a message that names what and
//! where, the last checkpoint stays whole, and nothing aborts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A folder in /tmp that an unprivileged user can enter too, holding the
/// small spec and a link to a copy of the binary (the checkout may sit where
/// such a user cannot).
fn sandbox(name: &str) -> PathBuf {
    let dir = open_folder(&format!("netc-resources-{name}-{}", std::process::id()));
    std::os::unix::fs::symlink(binary(), dir.join("netc")).expect("link the binary");
    std::fs::copy("tests/fixtures/small_cnn.net", dir.join("small_cnn.net")).expect("copy the spec");
    dir
}

fn open_folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a folder");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("open the folder");
    dir
}

/// The one copy of the binary, made before either test starts a process: a
/// copy written while another thread forks would be inherited open for
/// writing, and executing it would fail with "text file busy".
fn binary() -> &'static Path {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = open_folder(&format!("netc-resources-bin-{}", std::process::id()));
        std::fs::copy(env!("CARGO_BIN_EXE_netc"), dir.join("netc")).expect("copy the binary");
        dir.join("netc")
    })
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One epoch of the small CNN into `sandbox/run`.
fn first_epoch(sandbox: &Path) -> PathBuf {
    let run = sandbox.join("run");
    let out = Command::new(sandbox.join("netc"))
        .current_dir(sandbox)
        .args(["run", "small_cnn.net", "--epochs", "1", "--train-images", "128", "--test-images", "32", "--quiet"])
        .args(["--out", run.to_str().unwrap()])
        .output()
        .expect("netc runs");
    assert!(out.status.success(), "{}", text(&out));
    run
}

fn leftovers(run: &Path) -> Vec<String> {
    std::fs::read_dir(run)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_disk_that_fills_while_a_checkpoint_is_written_keeps_the_previous_one() {
    let sandbox = sandbox("full");
    let run = first_epoch(&sandbox);
    let last = run.join("last.safetensors");
    let before = std::fs::read(&last).expect("a checkpoint");
    // No file may grow past half a checkpoint, as on a disk that fills up:
    // writes past it fail with EFBIG (SIGXFSZ is ignored so that they fail
    // rather than kill), while the small metrics files still fit.
    let blocks = before.len() / 1024 / 2;
    let script = format!("trap '' XFSZ; ulimit -f {blocks}; exec ./netc run --resume run --epochs 2 --quiet");
    let out = Command::new("bash").current_dir(&sandbox).args(["-c", &script]).output().expect("bash runs");
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write checkpoint") && err.contains("previous checkpoint is kept"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(&last).expect("still there"), before, "the previous checkpoint is untouched");
    assert!(leftovers(&run).is_empty(), "torn temporary files: {:?}", leftovers(&run));
    netc::checkpoint::load(&last, &candle_core::Device::Cpu).expect("and it still loads");

    // With space again, the run goes on from there.
    let out = Command::new(sandbox.join("netc"))
        .current_dir(&sandbox)
        .args(["run", "--resume", "run", "--epochs", "2", "--quiet"])
        .output()
        .expect("netc runs");
    assert!(out.status.success(), "{}", text(&out));
    let cp = netc::checkpoint::load(&last, &candle_core::Device::Cpu).expect("a checkpoint");
    assert_eq!(cp.progress.expect("progress").epoch, 2);
    let _ = std::fs::remove_dir_all(&sandbox);
}

#[test]
fn a_read_only_run_directory_is_refused_by_name_and_still_evaluates() {
    let sandbox = sandbox("readonly");
    let run = first_epoch(&sandbox);
    let before = std::fs::read(run.join("last.safetensors")).expect("a checkpoint");
    let set_mode = |dir_mode: u32, file_mode: u32| {
        for entry in std::fs::read_dir(&run).expect("list") {
            let path = entry.expect("entry").path();
            let mode = if path.is_dir() { dir_mode } else { file_mode };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(dir_mode)).expect("chmod");
    };
    set_mode(0o555, 0o444);
    // Permissions do not bind root: run netc as `nobody` then.
    let netc = |args: &[&str]| -> Output {
        let root = unsafe { libc::geteuid() } == 0;
        let mut command = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(sandbox.join("netc"));
            c
        } else {
            Command::new(sandbox.join("netc"))
        };
        command.current_dir(&sandbox).args(args).output().expect("netc runs")
    };
    let out = netc(&["run", "--resume", "run", "--epochs", "2", "--quiet"]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("run/") && err.contains("ermission denied"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = netc(&["eval", "small_cnn.net", "--weights", "run/best.safetensors", "--test-images", "32"]);
    assert!(out.status.success(), "a read-only run still evaluates: {}", text(&out));
    set_mode(0o755, 0o644);
    assert_eq!(std::fs::read(run.join("last.safetensors")).expect("still there"), before);
    let _ = std::fs::remove_dir_all(&sandbox);
}

/// netc in `dir` with `args`, expected to refuse: its exit code 1 and its
/// message, which must not be an abort's or a panic's.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_netc")).current_dir(dir).args(args).output().expect("netc runs");
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{args:?}: {err}");
    err
}

// The sizes below need from one to thousands of terabytes, far more than
// the machines that run these tests have, so that they refuse the same way
// on each.

#[test]
fn a_batch_larger_than_memory_is_refused_with_the_batch_that_fits() {
    let dir = open_folder(&format!("netc-resources-batch-{}", std::process::id()));
    let spec = std::fs::canonicalize("specs/inception_v1.net").expect("the spec");
    let spec = spec.to_str().unwrap();
    let err = refused(&dir, &["bench", spec, "--batch", "100000000"]);
    assert!(err.contains("batches of 100000000 images") && err.contains("use a smaller batch (`--batch`"), "{err}");
    let err = refused(&dir, &["run", spec, "--data", "synthetic", "--batch-size", "100000000", "--out", "run"]);
    assert!(err.contains("`--batch-size`") && err.contains("images fit"), "{err}");
    assert!(!dir.join("run").exists(), "a run that cannot start leaves no directory");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_net_or_data_set_larger_than_memory_is_refused_before_it_is_allocated() {
    let dir = open_folder(&format!("netc-resources-large-{}", std::process::id()));
    let spec = std::fs::read_to_string("tests/fixtures/small_cnn.net").expect("the spec");
    let huge_input = spec.replace("input x: [3, 32, 32]", "input x: [3, 65536, 65536]");
    assert_ne!(huge_input, spec, "the fixture's input line moved");
    std::fs::write(dir.join("huge_input.net"), huge_input).expect("write a spec");
    for command in ["run", "bench"] {
        let err = refused(&dir, &[command, "huge_input.net", "--out", "run"][..if command == "run" { 4 } else { 2 }]);
        assert!(err.contains("one image alone needs") && err.contains("[3, 65536, 65536]"), "{err}");
    }
    // A net that takes one image of 512x512 easily, and far too many of them.
    std::fs::write(dir.join("many.net"), spec.replace("input x: [3, 32, 32]", "input x: [3, 512, 512]"))
        .expect("write");
    let err = refused(&dir, &["run", "many.net", "--train-images", "100000000000", "--out", "run"]);
    assert!(err.contains("synthetic: 100000000000 images of 3x512x512") && err.contains("fewer images"), "{err}");
    assert!(!dir.join("run").exists(), "a run that cannot start leaves no directory");

    let wide = std::fs::canonicalize("specs/inception_v1.net").expect("the spec");
    let wide = wide.to_str().unwrap();
    let err = refused(&dir, &["export", wide, "--set", "width=1000", "--out", "net.onnx"]);
    assert!(err.contains("parameters need about") && err.contains("--set width="), "{err}");
    assert!(!dir.join("net.onnx").exists(), "nothing written");
    let err = refused(&dir, &["bench", wide, "--set", "width=1000", "--batch", "1"]);
    assert!(err.contains("parameters, trained, need about"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
