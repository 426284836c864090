//! Property test: no spec, however mangled, makes the compiler panic, and
//! every diagnostic it reports points inside its file and renders.
//!
//! Two generators feed it:
//! - mutations of the real specs and of the bad-spec corpus: deleted,
//!   duplicated and swapped ranges, inserted tokens, and numbers replaced by
//!   extreme ones;
//! - specs written from the grammar: blocks, nets, every op with random
//!   arguments, pipes, `repeat`, arithmetic, probes and front matter, most
//!   of them well-formed, so that the shape rules and the graph builder see
//!   many nets that the corpus does not have.
//!
//! Both live in `tests/common/generate.rs` (the formatter's tests use them
//! too) and are seeded, so a failure reproduces; `NETC_FUZZ_CASES` and
//! `NETC_GRAMMAR_CASES` set how many inputs each tries.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

mod common;

use common::generate::{Rng, Writer, mutate, seeds};

#[test]
fn mutated_specs_never_panic_and_diagnostics_point_inside_the_file() {
    let cases = cases("NETC_FUZZ_CASES", 20_000);
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut compiled, mut rejected) = (0, 0);
    for case in 0..cases {
        let (path, text) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, text);
        match compiles_without_panic(path, &input) {
            Ok(true) => compiled += 1,
            Ok(false) => rejected += 1,
            Err(saved) => panic!("case {case} (a mutation of {}) panicked; input saved to {saved}", path.display()),
        }
    }
    println!("{cases} mutated specs: {compiled} compiled, {rejected} rejected with diagnostics, no panic");
    assert_eq!(compiled + rejected, cases);
}

#[test]
fn specs_written_from_the_grammar_never_panic() {
    let cases = cases("NETC_GRAMMAR_CASES", 5_000);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let (mut compiled, mut rejected) = (0, 0);
    for case in 0..cases {
        let input = Writer::spec(&mut rng);
        match compiles_without_panic(Path::new("specs/generated.net"), &input) {
            Ok(true) => compiled += 1,
            Ok(false) => rejected += 1,
            Err(saved) => panic!("generated case {case} panicked; input saved to {saved}"),
        }
    }
    println!("{cases} generated specs: {compiled} compiled, {rejected} rejected with diagnostics, no panic");
    // The generator must reach the graph builder, not only the parser.
    assert!(compiled >= cases / 10, "only {compiled} of {cases} generated specs compiled");
    assert!(rejected >= cases / 10, "only {rejected} of {cases} generated specs were rejected");
}

fn cases(variable: &str, default: usize) -> usize {
    std::env::var(variable).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Compiles `input`: whether it compiled, or where the input that
/// panicked was saved.
fn compiles_without_panic(path: &Path, input: &str) -> Result<bool, String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let r = netc::compile::compile_source(path, input.to_string(), &[]);
        if let Err(e) = &r {
            assert!(!e.diagnostics.is_empty(), "a failure without a diagnostic");
            for d in &e.diagnostics {
                if let Some(loc) = d.loc {
                    let len = e.sources.get(loc.file).text.len();
                    assert!(
                        loc.span.start <= loc.span.end && loc.span.end <= len,
                        "span {:?} outside the file",
                        loc.span
                    );
                }
            }
            e.render();
        }
        if let Ok(c) = &r {
            graph_invariants(&c.graph);
        }
        r.is_ok()
    }));
    result.map_err(|_| {
        let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failure.net");
        std::fs::write(&saved, input).expect("write the failing input");
        saved.display().to_string()
    })
}

/// What every later phase relies on in a compiled graph.
fn graph_invariants(g: &netc::graph::Graph) {
    assert_eq!(g.nodes[0].op, netc::graph::Op::Input, "node 0 is the input");
    let mut names = std::collections::HashSet::new();
    for (i, n) in g.nodes.iter().enumerate() {
        assert!(n.inputs.iter().all(|j| *j < i), "`{}` reads a later node", n.name);
        assert!(!n.shape.is_empty() && n.shape.iter().all(|d| *d > 0), "`{}` has shape {:?}", n.name, n.shape);
        assert!(names.insert(n.name.as_str()), "two nodes named `{}`", n.name);
    }
    let params: Vec<&str> = g.nodes.iter().flat_map(|n| &n.params).map(|p| p.name.as_str()).collect();
    assert_eq!(params.iter().collect::<std::collections::HashSet<_>>().len(), params.len(), "parameter names repeat");
    assert!(g.output < g.nodes.len() && g.probes.iter().all(|p| p.node < g.nodes.len()));
    let json = serde_json::to_string(g).expect("serialises");
    assert!(
        &serde_json::from_str::<netc::graph::Graph>(&json).expect("reads back") == g,
        "the IR changes through JSON"
    );
}
