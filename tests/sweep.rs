//! `netc sweep`: a grid of tiny synthetic runs; resumed sweeps equal
//! uninterrupted ones; bad grids are refused before anything is written;
//! and `netc compare` over a sweep directory groups runs over seeds.

mod common;

use std::path::{Path, PathBuf};

use common::netc;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A grid of 2 seeds x 2 widths of the small CNN: 2 epochs of 2 steps each.
const GRID: [&str; 12] = [
    "sweep",
    "tests/fixtures/small_cnn.net",
    "--seeds",
    "3,4",
    "--set",
    "width=1,0.5",
    "--epochs",
    "2",
    "--train-images",
    "128",
    "--test-images",
    "32",
];

fn sweep(out: &Path, extra: &[&str]) -> (i32, String, String) {
    netc(&[&GRID[..], &["--out", out.to_str().unwrap(), "--quiet"], extra].concat())
}

const CELLS: [&str; 4] =
    ["small_cnn-width=1-seed3", "small_cnn-width=0.5-seed3", "small_cnn-width=1-seed4", "small_cnn-width=0.5-seed4"];

/// metrics.csv without the columns that measure time.
fn metrics(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    text.lines().map(|l| l.split(',').take(6).map(String::from).collect()).collect()
}

/// The model tensors of a run's last checkpoint, as bytes, by name.
fn weights(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let cp = netc::checkpoint::load(&dir.join("last.safetensors"), &candle_core::Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = cp
        .model
        .iter()
        .map(|(k, t)| {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            (k.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    out.sort();
    out
}

fn assert_same_runs(a: &Path, b: &Path) {
    for cell in CELLS {
        let (x, y) = (a.join(cell), b.join(cell));
        assert_eq!(metrics(&x), metrics(&y), "{cell}: metrics differ");
        assert_eq!(metrics(&x).len(), 3, "{cell}: a header and 2 epochs");
        assert!(weights(&x) == weights(&y), "{cell}: final weights differ");
        assert!(x.join("probe/scores.json").exists(), "{cell}: heatmaps drawn");
    }
}

#[test]
fn interrupted_and_killed_sweeps_resume_to_the_same_runs_as_an_uninterrupted_one() {
    let whole = temp("whole");
    let (code, out, err) = sweep(&whole, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4 runs trained, 0 already finished"), "{out}");
    for cell in CELLS {
        assert!(whole.join(cell).join("best.safetensors").exists(), "no {cell}");
    }
    let toml = std::fs::read_to_string(whole.join("sweep.toml")).unwrap();
    assert!(toml.contains("seeds = [3, 4]") && toml.contains("group = \"small_cnn width=0.5\""), "{toml}");
    let md = std::fs::read_to_string(whole.join("summary/compare.md")).unwrap();
    assert!(md.contains("| small_cnn width=1 | 2 | 3 4 |"), "one row per width over both seeds:\n{md}");
    assert!(md.contains("| small_cnn width=1 | small_cnn width=0.5 | test accuracy |"), "{md}");
    for f in ["groups.csv", "differences.csv", "curves.png", "compare.png"] {
        assert!(whole.join("summary").join(f).exists(), "no summary/{f}");
    }

    // Stopped in the middle of its first run's second epoch (Ctrl-C does the same), then rerun.
    let parts = temp("parts");
    let (code, _, err) = sweep(&parts, &["--stop-after-steps", "3"]);
    assert_eq!(code, 130, "an interrupted sweep exits 130: {err}");
    assert!(err.contains("run the same command again"), "{err}");
    assert!(!parts.join(CELLS[1]).exists(), "the sweep stopped at its first run");
    let (code, out, err) = sweep(&parts, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4 runs trained, 0 already finished"), "{out}");
    assert_same_runs(&whole, &parts);

    // Killed (kill -9) before a run's first checkpoint: only the files a run
    // writes when it starts; that run starts again. Killed while drawing its
    // heatmaps: it draws them. The finished runs are not touched.
    let cell = parts.join(CELLS[2]);
    for f in ["last.safetensors", "best.safetensors", "report.md", "training_curves.png"] {
        std::fs::remove_file(cell.join(f)).unwrap();
    }
    std::fs::remove_dir_all(cell.join("probe")).unwrap();
    std::fs::remove_dir_all(parts.join(CELLS[3]).join("probe")).unwrap();
    let untouched = std::fs::metadata(parts.join(CELLS[0]).join("last.safetensors")).unwrap().modified().unwrap();
    let (code, out, err) = sweep(&parts, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 runs trained, 2 already finished"), "{out}");
    assert_same_runs(&whole, &parts);
    let now = std::fs::metadata(parts.join(CELLS[0]).join("last.safetensors")).unwrap().modified().unwrap();
    assert_eq!(untouched, now, "a finished run is not trained again");

    // Everything finished: the same command only rewrites the summary.
    let (code, out, err) = sweep(&parts, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 runs trained, 4 already finished"), "{out}");

    // A run directory holding something a run never writes before its first
    // checkpoint is left alone, and named.
    std::fs::remove_file(cell.join("last.safetensors")).unwrap();
    std::fs::write(cell.join("notes.txt"), "mine").unwrap();
    let (code, _, err) = sweep(&parts, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("notes.txt") && err.contains("leaves it alone"), "{err}");
    assert!(cell.join("notes.txt").exists() && cell.join("best.safetensors").exists());

    // `netc compare` reads a sweep directory: its finished runs, grouped.
    let cmp = temp("cmp");
    let (code, stdout, err) =
        netc(&["compare", parts.to_str().unwrap(), "--count", "2", "--own-scale", "--out", cmp.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("has 1 unfinished run, left out"), "{err}");
    assert!(stdout.contains("## Over seeds") && stdout.contains("| small_cnn width=0.5 | 2 | 3 4 |"), "{stdout}");
    assert!(stdout.contains("| small_cnn width=1 | 1 | 3 |"), "the unfinished run is left out:\n{stdout}");
    let csv = std::fs::read_to_string(cmp.join("differences.csv")).unwrap();
    assert!(csv.starts_with("a,b,metric,difference,low,high,df,verdict\n"), "{csv}");
    assert!(csv.contains("too few seeds"), "one group has 1 seed:\n{csv}");

    for d in [whole, parts, cmp] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn bad_grids_are_refused_before_anything_is_written() {
    let out = temp("bad");
    let o = out.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (
            &["sweep", "tests/fixtures/small_cnn.net", "specs/nope.net", "--out", o],
            "specs/nope.net`: no such spec file",
        ),
        (&["sweep", "tests/fixtures/small_cnn.net", "--seeds", "", "--out", o], "an empty seed"),
        (&["sweep", "tests/fixtures/small_cnn.net", "--seeds", "1,x", "--out", o], "`x` is not a whole number"),
        (&["sweep", "tests/fixtures/small_cnn.net", "--seeds", "0,1,1", "--out", o], "seed 1 is given twice"),
        (&["sweep", "tests/fixtures/small_cnn.net", "--set", "width=1,1", "--out", o], "1 is given twice"),
        (&["sweep", "tests/fixtures/small_cnn.net", "--set", "width=a", "--out", o], "`a` is not a number"),
        (&["sweep", "tests/fixtures/small_cnn.net", "--set", "depth=2", "--out", o], "depth"),
        (&["sweep", "tests/fixtures/small_cnn.net", "--jobs", "2", "--out", o], "`--jobs 2`"),
    ];
    for (args, message) in cases {
        let (code, _, err) = netc(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: expected `{message}` in:\n{err}");
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }
    // A folder with other files is not a sweep directory.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "x").unwrap();
    let (code, _, err) = sweep(&out, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("has files but no sweep.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn another_grid_in_a_sweep_directory_is_refused_and_groups_hold_one_net() {
    let out = temp("grid");
    let o = out.to_str().unwrap();
    let base =
        ["sweep", "tests/fixtures/small_cnn.net", "--epochs", "1", "--train-images", "64", "--test-images", "16"];
    let (code, _, err) = netc(&[&base[..], &["--seeds", "1", "--set", "width=1,0.5", "--out", o, "--quiet"]].concat());
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read_to_string(out.join("sweep.toml")).unwrap();
    let (code, _, err) = netc(&[&base[..], &["--seeds", "1,2", "--set", "width=1,0.5", "--out", o]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("holds another sweep: seeds [1] there, [1, 2] now"), "{err}");
    let (code, _, err) =
        netc(&[&base[..], &["--seeds", "1", "--set", "width=1,0.5", "--lr", "0.1", "--out", o]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("holds another sweep: options"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("sweep.toml")).unwrap(), before, "sweep.toml unchanged");
    assert!(!out.join("small_cnn-width=1-seed2").exists());

    // Two runs of different nets forced into one group (an edited sweep.toml): a clear error.
    let forced = before.replace("group = \"small_cnn width=0.5\"", "group = \"small_cnn width=1\"");
    assert_ne!(forced, before);
    std::fs::write(out.join("sweep.toml"), forced).unwrap();
    let cmp = temp("grid-cmp");
    let (code, _, err) = netc(&["compare", o, "--out", cmp.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("are both in group `small_cnn width=1`, but their nets differ"), "{err}");
    assert!(!cmp.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn seeds_and_set_values_parse_as_documented() {
    use netc::sweep::{parse_seeds, parse_set_values};
    assert_eq!(parse_seeds("0,1,2").unwrap(), vec![0, 1, 2]);
    assert_eq!(parse_seeds(" 0-2, 7 ").unwrap(), vec![0, 1, 2, 7], "ranges and spaces");
    assert!(parse_seeds("3-1").unwrap_err().contains("not a range from low to high"));
    assert!(parse_seeds("0-2,2").unwrap_err().contains("seed 2 is given twice"));
    assert!(parse_seeds("-1").is_err(), "no negative seeds");
    assert_eq!(parse_set_values("width=0.125, 0.25").unwrap(), ("width".to_string(), vec![0.125, 0.25]));
    assert!(parse_set_values("width").unwrap_err().contains("give NAME=VALUE"));
    assert!(parse_set_values("width=inf").unwrap_err().contains("`inf` is not a number"));
}
