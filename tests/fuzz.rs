//! Property test: no spec, however mangled, makes the compiler panic, and
//! every diagnostic it reports points inside its file and renders.
//!
//! Inputs are mutations of the real specs and of the bad-spec corpus:
//! deleted, duplicated and swapped ranges, inserted tokens, and numbers
//! replaced by extreme ones. The generator is seeded, so a failure
//! reproduces; `NETC_FUZZ_CASES` sets how many inputs to try.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "|>",
    "+",
    "-",
    "*",
    "/",
    "\n",
    "+++",
    "#",
    "\"",
    "net",
    "block",
    "use",
    "input",
    "probe",
    "return",
    "repeat(3)",
    "repeat(0)",
    "conv",
    "concat",
    "upsample",
    "maxpool",
    "x",
    "same",
    "true",
    "0",
    "-1",
    "1e30",
    "0.5",
    "99999999",
    "like = x",
    "pad = same",
    ":",
    "é",
    "\u{0}",
    "[3, 32, 32]",
];

const NUMBERS: &[&str] = &["0", "-1", "1", "2", "7", "0.5", "1e9", "1e300", "100000", "3.5", "65536"];

/// Half the mutations keep the syntax (numbers and names swapped), so that
/// the name, type and shape checks see as much traffic as the parser.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let keep_syntax = rng.below(2) == 0;
    for _ in 0..1 + rng.below(3) {
        let len = chars.len();
        let at = rng.below(len + 1);
        let kind = if keep_syntax { 4 + 2 * rng.below(2) } else { rng.below(7) };
        match kind {
            0 => {
                let end = (at + 1 + rng.below(40)).min(len);
                chars.drain(at.min(end)..end);
            }
            1 => {
                let end = (at + 1 + rng.below(60)).min(len);
                let copy: Vec<char> = chars[at.min(end)..end].to_vec();
                let to = rng.below(len + 1);
                chars.splice(to..to, copy);
            }
            2 | 3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            4 => {
                // Replace the next number with an extreme one.
                if let Some(start) = (at..len).find(|i| chars[*i].is_ascii_digit()) {
                    let end = (start..len).find(|i| !chars[*i].is_ascii_digit() && chars[*i] != '.').unwrap_or(len);
                    chars.splice(start..end, NUMBERS[rng.below(NUMBERS.len())].chars());
                }
            }
            6 => {
                // Replace the next name with another name of the same file.
                let s: String = chars.iter().collect();
                let names: Vec<&str> = s
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .filter(|w| w.starts_with(|c: char| c.is_alphabetic()))
                    .collect();
                if let Some(start) = (at..len).find(|i| chars[*i].is_alphabetic()) {
                    let end = (start..len).find(|i| !chars[*i].is_alphanumeric() && chars[*i] != '_').unwrap_or(len);
                    let name = names[rng.below(names.len())].to_string();
                    chars.splice(start..end, name.chars());
                }
            }
            _ => {
                // Swap two lines.
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.len() > 1 {
                    let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(i, j);
                }
                chars = lines.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

fn seeds() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for dir in ["specs", "specs/lib", "tests/bad"] {
        for entry in std::fs::read_dir(dir).expect("seed folder exists") {
            let path = entry.expect("readable").path();
            if path.extension().is_some_and(|e| e == "net") {
                let text = std::fs::read_to_string(&path).expect("readable seed");
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn mutated_specs_never_panic_and_diagnostics_point_inside_the_file() {
    let cases: usize = std::env::var("NETC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut compiled, mut rejected) = (0, 0);
    for case in 0..cases {
        let (path, text) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, text);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let r = netc::compile::compile_source(path, input.clone(), &[]);
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
        match result {
            Ok(true) => compiled += 1,
            Ok(false) => rejected += 1,
            Err(_) => {
                let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failure.net");
                std::fs::write(&saved, &input).expect("write the failing input");
                panic!("case {case} (a mutation of {}) panicked; input saved to {}", path.display(), saved.display());
            }
        }
    }
    println!("{cases} mutated specs: {compiled} compiled, {rejected} rejected with diagnostics, no panic");
    assert_eq!(compiled + rejected, cases);
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
