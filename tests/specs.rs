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

/// The Graph IR is the contract with every later phase; its JSON form is
/// pinned on a net small enough to read.
#[test]
fn the_ir_of_a_small_net_as_json() {
    let spec = "net tiny(classes = 3) {\n  input x: [3, 8, 8]\n  f = x |> conv(4, 3, pad = same, bias = false) |> bn |> relu\n  m = f |> conv(1) |> sigmoid\n  probe mask = m\n  y = (f * (1 + m)) |> maxpool(2, ceil = true) |> upsample(scale = 2, mode = bilinear)\n  return y |> gap |> dropout(0.2) |> linear(classes)\n}\n";
    let compiled =
        netc::compile::compile_source(std::path::Path::new("tiny.net"), spec.to_string(), &[]).expect("compiles");
    common::snapshots("ir").bind(|| insta::assert_snapshot!(netc::summary::json(&compiled.graph)));
}
