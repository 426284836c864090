//! The corpus of bad specs: each file in `tests/bad/` must fail to compile,
//! and its diagnostics are a snapshot in `snapshots/bad/`. The first line of
//! each file is a comment saying what is wrong with it.

mod common;

use std::path::Path;

#[test]
fn every_bad_spec_reports_its_errors() {
    common::snapshots("bad").bind(|| {
        insta::glob!("bad", "*.net", |path| {
            let path = common::relative(path);
            match netc::compile::compile_file(&path, &[]) {
                Ok(_) => panic!("{} compiled, but it is in the corpus of bad specs", path.display()),
                Err(e) => {
                    assert!(!e.diagnostics.is_empty());
                    insta::assert_snapshot!(e.render());
                }
            }
        });
    });
}

#[test]
fn the_corpus_has_at_least_thirty_specs() {
    let n = std::fs::read_dir(Path::new("tests/bad"))
        .expect("tests/bad exists")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "net")))
        .count();
    assert!(n >= 30, "only {n} bad specs");
}
