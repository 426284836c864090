//! Phase 2, compile: spec files -> [`Graph`] + [`Recipe`].
//!
//! `load` reads the root file and its `use`s, `eval` instantiates the net
//! (blocks, repetition, numbers), `ops` knows each op's shape rules.

mod eval;
pub mod index;
mod load;
mod ops;

use std::path::Path;

use crate::diag::{Code, Diagnostic, Loc, Sources, Span};
use crate::graph::Graph;
use crate::recipe::{self, Recipe};

pub use index::Index;
pub use load::{Reader, read_file};
pub use ops::{NAMES as OP_NAMES, fmt_num, fmt_shape, signature as op_signature};

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

/// What `netc check` found in a file: a net, or a library of blocks for
/// other specs to `use`.
#[derive(Debug)]
pub enum Checked {
    Net(Box<Compiled>),
    Library { blocks: usize },
}

/// Reads and compiles the spec at `path`; `overrides` are `--set` values.
pub fn compile_file(path: &Path, overrides: &[(String, f64)]) -> Result<Compiled, Failure> {
    compile_source(path, read(path)?, overrides)
}

/// Compiles spec text as if read from `path` (`use`s resolve next to it).
pub fn compile_source(path: &Path, text: String, overrides: &[(String, f64)]) -> Result<Compiled, Failure> {
    match build(path, text, overrides, true, &read_file).into_outcome()? {
        Checked::Net(compiled) => Ok(*compiled),
        Checked::Library { .. } => unreachable!("a spec without a net fails when a net is required"),
    }
}

/// Checks a spec or a library file: a file without a net is fine, and its
/// blocks are checked for everything that needs no arguments.
pub fn check_file(path: &Path) -> Result<Checked, Failure> {
    build(path, read(path)?, &[], false, &read_file).into_outcome()
}

/// What an editor needs of a file: what `netc check` says about it, the
/// sources read, and the index of which place made which node (even when
/// there are errors).
#[derive(Debug)]
pub struct Analysis {
    /// A net or a library, or every diagnostic (as [`check_file`]).
    pub outcome: Result<Checked, Vec<Diagnostic>>,
    pub sources: Sources,
    pub index: Index,
}

/// Checks spec text as [`check_file`] does, reading `use`d files with
/// `reader` (an editor passes its unsaved buffers), and keeps the index.
pub fn analyze(path: &Path, text: String, reader: load::Reader) -> Analysis {
    build(path, text, &[], false, reader)
}

impl Analysis {
    /// The outcome as the command line reports it.
    fn into_outcome(self) -> Result<Checked, Failure> {
        self.outcome.map_err(|diagnostics| Failure { diagnostics, sources: self.sources })
    }
}

fn read(path: &Path) -> Result<String, Failure> {
    match read_file(path) {
        Ok(bytes) => match load::decode(bytes) {
            (text, None) => Ok(text),
            (text, Some((span, message))) => {
                let mut sources = Sources::default();
                let file = sources.add(path.to_path_buf(), text);
                Err(Failure { diagnostics: vec![load::encoding_error(file, span, message)], sources })
            }
        },
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

fn build(path: &Path, text: String, overrides: &[(String, f64)], require_net: bool, reader: load::Reader) -> Analysis {
    let mut sources = Sources::default();
    let mut diags = Vec::new();
    let program = load::load(path, text, reader, &mut sources, &mut diags);
    let recipe = match &program.front_matter {
        Some((file, text, span)) => match recipe::parse(text) {
            Ok(r) => Some(r),
            Err((message, range)) => {
                let at = range
                    .map_or(Span::new(span.start, span.start), |r| Span::new(span.start + r.start, span.start + r.end));
                diags.push(Diagnostic::new(
                    Code::FrontMatter,
                    Loc { file: *file, span: at },
                    format!("front matter: {}", plain_types(message.trim())),
                ));
                None
            }
        },
        None => Some(Recipe::default()),
    };
    if require_net && program.net.is_none() && diags.iter().all(|d| !matches!(d.code, Code::Syntax | Code::Encoding)) {
        diags.push(
            Diagnostic::new(Code::NetCount, Loc { file: 0, span: Span::new(0, 0) }, "the spec defines no `net`")
                .hint("add `net name(...) { input x: [3, 32, 32] ... return ... }`"),
        );
    }
    let builder = eval::Builder::new(&program, sources.texts());
    let (graph, mut eval_diags, mut index) = builder.net(overrides);
    index.uses = program.uses.clone();
    index.blocks = program
        .blocks
        .iter()
        .map(|(name, (file, def))| index::BlockSig {
            name: name.clone(),
            loc: Loc { file: *file, span: def.name.span },
            params: def
                .params
                .iter()
                .map(|p| {
                    let text = &sources.get(*file).text;
                    let default = p.default.as_ref().and_then(|d| text.get(d.span.start..d.span.end));
                    (p.name.name.clone(), default.map(str::to_string))
                })
                .collect(),
        })
        .collect();
    index.blocks.sort_by_key(|b| (b.loc.file, b.loc.span.start));
    index.sort();
    if let (Some(recipe), Some((_, net))) = (&recipe, &program.net) {
        let params: Vec<&str> = net.params.iter().map(|p| p.name.name.as_str()).collect();
        for key in recipe.profile.values().flat_map(|p| p.set.keys()) {
            if !params.contains(&key.as_str()) {
                let (file, _, span) =
                    program.front_matter.as_ref().expect("a recipe with profiles came from front matter");
                let at = front_matter_key(&sources.get(*file).text, *span, key);
                let mut d = Diagnostic::new(
                    Code::FrontMatter,
                    Loc { file: *file, span: at },
                    format!("profile sets `{key}`, but net `{}` has no such parameter", net.name.name),
                );
                d = match crate::diag::closest(key, params.iter().copied()) {
                    Some(c) => d.hint(format!("did you mean `{c}`?")),
                    None => d.hint(format!("its parameters are {}", params.join(", "))),
                };
                eval_diags.push(d);
            }
        }
    }
    if let (Some(recipe), Some((file, _, span))) = (&recipe, &program.front_matter) {
        for p in recipe.problems() {
            let at = front_matter_table_key(&sources.get(*file).text, *span, &p.table, p.key);
            eval_diags.push(Diagnostic::new(Code::RecipeValue, Loc { file: *file, span: at }, p.message));
        }
    }
    dedup(&mut eval_diags);
    diags.extend(eval_diags);
    // In reading order: file by file, top to bottom.
    diags.sort_by_key(|d| d.loc.map(|l| (l.file, l.span.start)));
    let outcome = match (graph, recipe) {
        _ if !diags.is_empty() => Err(diags),
        (Some(graph), Some(recipe)) => Ok(Checked::Net(Box::new(Compiled { graph, recipe }))),
        _ => Ok(Checked::Library { blocks: program.blocks.len() }),
    };
    Analysis { outcome, sources, index }
}

/// Where `key` first appears as a whole word outside comments in the front
/// matter, for pointing at it (the recipe keeps no spans).
fn front_matter_key(text: &str, fm: Span, key: &str) -> Span {
    let mut offset = fm.start;
    for line in text[fm.start..fm.end].split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("");
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let found = code.match_indices(key).find(|(i, _)| {
            let before = code[..*i].chars().next_back();
            let after = code[i + key.len()..].chars().next();
            !before.is_some_and(word) && !after.is_some_and(word)
        });
        if let Some((i, _)) = found {
            return Span::new(offset + i, offset + i + key.len());
        }
        offset += line.len();
    }
    Span::new(fm.start, fm.start)
}

/// Where `key` is written in TOML table `table` (`train`, `profile.quick`):
/// the first whole-word `key` after the line `[table]` and before the next
/// table; else anywhere (`front_matter_key`).
fn front_matter_table_key(text: &str, fm: Span, table: &str, key: &str) -> Span {
    let header = format!("[{table}]");
    let mut offset = fm.start;
    let mut inside = false;
    for line in text[fm.start..fm.end].split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("").trim();
        if code.starts_with('[') && !code.starts_with("[[") {
            inside = code == header;
        } else if inside {
            let found = front_matter_key(line, Span::new(0, line.len()), key);
            if found.end > found.start {
                return Span::new(offset + found.start, offset + found.end);
            }
        }
        offset += line.len();
    }
    front_matter_key(text, fm, key)
}

/// The same mistake inside a block is met once per instance, perhaps with
/// other shapes in its message; report the first.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| d.loc.is_none() || seen.insert((d.code, d.loc)));
}

/// serde names Rust types in its messages; say what they mean.
fn plain_types(message: &str) -> String {
    [
        ("u32", "a whole number"),
        ("u64", "a whole number"),
        ("usize", "a whole number"),
        ("f64", "a number"),
        ("a boolean", "`true` or `false`"),
    ]
    .iter()
    .fold(message.to_string(), |m, (rust, plain)| m.replace(rust, plain))
}
