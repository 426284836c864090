//! Every command ends quietly when the reader of its output goes away
//! (`netc eval ... | head -1`): status 0, or death by SIGPIPE as `cat`
//! would (141 in a shell), never a panic.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// Runs netc with its standard output read by nobody: the pipe is closed
/// before netc writes. Returns its standard error.
fn with_closed_stdout(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netc starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("netc ends");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let quiet = out.status.success() || out.status.signal() == Some(libc::SIGPIPE);
    assert!(quiet, "`netc {}` ended with {:?}: {err}", args.join(" "), out.status);
    assert!(!err.contains("panicked"), "`netc {}` panicked: {err}", args.join(" "));
    err
}

#[test]
fn printing_commands_end_quietly_on_a_closed_pipe() {
    with_closed_stdout(&["compile", "specs/ran92.net", "--format", "json"]);
    with_closed_stdout(&["compile", "specs/ours.net"]);
    with_closed_stdout(&["check", "specs/ours.net", "specs/inception_v1.net", "specs/lib/inception.net"]);
    with_closed_stdout(&["--help"]);
}

#[test]
fn eval_ends_quietly_on_a_closed_pipe() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipes-run");
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["run", "tests/fixtures/small_cnn.net", "--epochs", "1", "--train-images", "64", "--test-images", "32"])
        .args(["--quiet", "--out", dir.to_str().unwrap()])
        .status()
        .expect("netc runs");
    assert!(status.success());
    let weights = dir.join("last.safetensors");
    with_closed_stdout(&["eval", "tests/fixtures/small_cnn.net", "--weights", weights.to_str().unwrap()]);
}
