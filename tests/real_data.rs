//! A short run on real CIFAR-10 images from the shared archive beats chance
//! (10%) by a wide margin: at least 35% test accuracy.

use std::path::{Path, PathBuf};

use netc::recipe::DataSource;
use netc::train::{RunOptions, RunOutcome, Settings};

const ARCHIVE: &str = "../shared/data/cifar10-jpg.tar.gz";

#[test]
fn a_small_cnn_learns_real_cifar10() {
    assert!(Path::new(ARCHIVE).exists(), "{ARCHIVE} is missing: this test reads the shared CIFAR-10 images");
    let out = std::env::temp_dir().join(format!("netc-real-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = RunOptions {
        spec: Some(PathBuf::from("tests/fixtures/small_cnn.net")),
        resume: None,
        settings: Settings {
            data: Some(DataSource::Folder(ARCHIVE.to_string())),
            train_images: Some(5000),
            test_images: Some(1000),
            epochs: Some(4),
            ..Settings::default()
        },
        out: Some(out.clone()),
        quiet: false,
        stop_after_steps: None,
        engine: netc::train::Engine::Native,
        device: candle_core::Device::Cpu,
    };
    match netc::train::run(&opts) {
        Ok(RunOutcome::Finished { final_accuracy, .. }) => {
            println!("real CIFAR-10, 5,000 train / 1,000 test images, 4 epochs: {:.1}%", 100.0 * final_accuracy);
            assert!(final_accuracy >= 0.35, "test accuracy {final_accuracy} is below 35%");
        }
        other => panic!("{other:?}"),
    }
}
