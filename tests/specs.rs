//! Every spec in `specs/` compiles, and its summary table is a snapshot.

mod common;

#[test]
fn every_spec_compiles_to_its_snapshot() {
    common::snapshots("specs").bind(|| {
        insta::glob!("../specs", "*.net", |path| {
            let path = common::relative(path);
            let compiled = common::compiled(path.to_str().expect("utf-8 path"), &[]);
            insta::assert_snapshot!(netc::summary::table(&compiled.graph));
        });
    });
}

#[test]
fn every_spec_has_low_mid_and_high_probes_and_a_recipe() {
    for entry in std::fs::read_dir("specs").expect("specs/ exists") {
        let path = entry.expect("readable dir").path();
        if path.extension().is_none_or(|e| e != "net") {
            continue;
        }
        let c = common::compiled(path.to_str().expect("utf-8"), &[]);
        for probe in ["low", "mid", "high"] {
            assert!(c.graph.probes.iter().any(|p| p.name == probe), "{} has no probe `{probe}`", path.display());
        }
        assert!(!c.recipe.train.augment.is_empty(), "{} has no augmentation in its recipe", path.display());
    }
}

#[test]
fn attention_specs_probe_their_masks() {
    for spec in [
        "specs/ours.net",
        "specs/ran92.net",
        "specs/attention_early.net",
        "specs/attention_middle.net",
        "specs/attention_later.net",
    ] {
        let c = common::compiled(spec, &[]);
        assert!(c.graph.probes.iter().any(|p| p.name.ends_with("mask")), "{spec} has no mask probe");
    }
}
