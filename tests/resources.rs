//! When the machine says no: a disk that fills up while a checkpoint is
//! written, and a run directory that cannot be written. Each ends in a
//! message that names the file, and the last checkpoint stays whole.

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
