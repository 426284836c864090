//! Phase 2, compile: spec files -> [`Graph`] + [`Recipe`].
//!
//! `load` reads the root file and its `use`s, `eval` instantiates the net
//! (blocks, repetition, numbers), `ops` knows each op's shape rules.

mod eval;
mod load;
mod ops;

use std::path::Path;

use crate::diag::{Code, Diagnostic, Loc, Sources, Span};
use crate::graph::Graph;
use crate::recipe::{self, Recipe};

pub use ops::{fmt_num, fmt_shape};

/// A compiled spec: what every later phase works from.
#[derive(Debug)]
pub struct Compiled {
    pub graph: Graph,
    pub recipe: Recipe,
}

/// Why a spec did not compile: every error found, and the sources they
/// point into.
#[derive(Debug)]
pub struct Failure {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

impl Failure {
    pub fn render(&self) -> String {
        crate::diag::render_all(&self.diagnostics, &self.sources)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Failure {}

/// Reads and compiles the spec at `path`; `overrides` are `--set` values.
pub fn compile_file(path: &Path, overrides: &[(String, f64)]) -> Result<Compiled, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => compile_source(path, text, overrides),
        Err(e) => Err(Failure {
            diagnostics: vec![Diagnostic::new(
                Code::MissingFile,
                None,
                format!("cannot read `{}`: {e}", path.display()),
            )],
            sources: Sources::default(),
        }),
    }
}

/// Compiles spec text as if read from `path` (`use`s resolve next to it).
pub fn compile_source(
    path: &Path,
    text: String,
    overrides: &[(String, f64)],
) -> Result<Compiled, Failure> {
    let mut sources = Sources::default();
    let mut diags = Vec::new();
    let program = load::load(path, text, &mut sources, &mut diags);
    let recipe = match &program.front_matter {
        Some((file, text, span)) => match recipe::parse(text) {
            Ok(r) => Some(r),
            Err((message, range)) => {
                let at = range.map_or(Span::new(span.start, span.start), |r| {
                    Span::new(span.start + r.start, span.start + r.end)
                });
                diags.push(Diagnostic::new(
                    Code::FrontMatter,
                    Loc {
                        file: *file,
                        span: at,
                    },
                    format!("front matter: {}", message.trim()),
                ));
                None
            }
        },
        None => Some(Recipe::default()),
    };
    if program.net.is_none() && diags.iter().all(|d| d.code != Code::Syntax) {
        diags.push(
            Diagnostic::new(
                Code::NetCount,
                Loc {
                    file: 0,
                    span: Span::new(0, 0),
                },
                "the spec defines no `net`",
            )
            .hint("add `net name(...) { input x: [3, 32, 32] ... return ... }`"),
        );
    }
    let builder = eval::Builder::new(&program, sources.texts());
    let (graph, mut eval_diags) = builder.net(overrides);
    if let (Some(recipe), Some((_, net))) = (&recipe, &program.net) {
        for key in recipe.profile.values().flat_map(|p| p.set.keys()) {
            if !net.params.iter().any(|p| &p.name.name == key) {
                let (file, _, span) = program
                    .front_matter
                    .as_ref()
                    .expect("a recipe with profiles came from front matter");
                let at = front_matter_key(&sources.get(*file).text, *span, key);
                eval_diags.push(Diagnostic::new(
                    Code::FrontMatter,
                    Loc {
                        file: *file,
                        span: at,
                    },
                    format!(
                        "profile sets `{key}`, but net `{}` has no such parameter",
                        net.name.name
                    ),
                ));
            }
        }
    }
    dedup(&mut eval_diags);
    diags.extend(eval_diags);
    match (graph, recipe) {
        (Some(graph), Some(recipe)) if diags.is_empty() => Ok(Compiled { graph, recipe }),
        _ => Err(Failure {
            diagnostics: diags,
            sources,
        }),
    }
}

/// Where `key` first appears in the front matter, for pointing at it.
fn front_matter_key(text: &str, fm: Span, key: &str) -> Span {
    let body = &text[fm.start..];
    body.find(key).map_or(Span::new(fm.start, fm.start), |i| {
        Span::new(fm.start + i, fm.start + i + key.len())
    })
}

/// The same mistake inside a block is met once per instance; report it once.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.code, d.loc, d.message.clone())));
}
