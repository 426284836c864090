//! Heatmaps of a trained net sit on the object more than those of the
//! same net untrained: the sanity check of the heatmap method.

use std::path::PathBuf;

use candle_core::Device;
use netc::probe::{ProbeRequest, probe_command};
use netc::recipe::{Aggregate, ProbeSettings};
use netc::train::{RunOptions, RunOutcome, Settings};

#[test]
fn a_trained_net_looks_at_the_object_more_than_an_untrained_one() {
    let dir = std::env::temp_dir().join(format!("netc-probe-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = PathBuf::from("tests/fixtures/small_cnn.net");
    let opts = RunOptions {
        spec: Some(spec.clone()),
        resume: None,
        settings: Settings { profile: Some("shapes".to_string()), ..Settings::default() },
        out: Some(dir.clone()),
        quiet: true,
        stop_after_steps: None,
        engine: netc::train::Engine::Native,
        device: candle_core::Device::Cpu,
    };
    let accuracy = match netc::train::run(&opts).expect("trains") {
        RunOutcome::Finished { final_accuracy, .. } => final_accuracy,
        other => panic!("{other:?}"),
    };
    assert!(dir.join("probe/figure.png").exists(), "the run draws its probes");
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("energy in object"));

    let graph = netc::compile::compile_file(&spec, &[]).expect("compiles").graph;
    let out = dir.join("sanity");
    let request = ProbeRequest {
        graph: &graph,
        weights: &dir.join("best.safetensors"),
        data: &netc::recipe::Data::default(),
        probes: vec!["high".to_string()],
        settings: ProbeSettings { aggregate: Aggregate::Gradcam, count: 64, ..ProbeSettings::default() },
        out: &out,
        sanity: true,
        device: Device::Cpu,
    };
    let table = probe_command(&request).expect("probes");
    println!("accuracy {accuracy:.3}\n{table}");
    let read = |path: PathBuf| -> netc::probe::ProbeScores {
        serde_json::from_str(&std::fs::read_to_string(path).expect("scores.json")).expect("valid scores")
    };
    let (trained, untrained) = (read(out.join("scores.json")), read(out.join("untrained/scores.json")));
    let (t, u) = (trained["high"].energy_in_object.unwrap(), untrained["high"].energy_in_object.unwrap());
    assert!(t > u + 0.05, "trained energy in object {t:.3} is not clearly above untrained {u:.3}");
}
