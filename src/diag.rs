//! Diagnostics: what every phase reports when the spec is wrong.
//!
//! A diagnostic points at a byte span of one source file; rendering turns it
//! into `file:line:col`, the source line and a caret, the way rustc does.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Index of a file in [`Sources`].
pub type FileId = usize;

/// A byte range `start..end` in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A place in the spec: a span of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: FileId,
    pub span: Span,
}

/// Every source file read while compiling one spec (the root and its `use`s).
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
    by_path: std::collections::HashMap<PathBuf, FileId>,
}

#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl Sources {
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.by_path.entry(path.clone()).or_insert(self.files.len());
        self.files.push(SourceFile { path, text });
        self.files.len() - 1
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    pub fn texts(&self) -> Vec<&str> {
        self.files.iter().map(|f| f.text.as_str()).collect()
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.by_path.get(path).copied()
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, file: FileId, offset: usize) -> (usize, usize) {
        let text = &self.files[file].text;
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The error codes, one per kind of mistake. `docs/errors.md` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The text does not follow the grammar.
    Syntax,
    /// The TOML front matter is malformed, or has an unknown or mistyped key.
    FrontMatter,
    /// A `use`d file cannot be read.
    MissingFile,
    /// The file is not UTF-8 text: an invalid byte, a NUL, a stray byte order mark.
    Encoding,
    /// Files `use` each other in a cycle.
    UseCycle,
    /// No `net` in the spec, or more than one.
    NetCount,
    /// Two definitions or values with one name.
    Duplicate,
    /// A name that is not defined.
    UnknownName,
    /// A call of something that is neither an op nor a block.
    UnknownOp,
    /// Wrong number, name or kind of arguments.
    Argument,
    /// A value of the wrong type (a number where a feature map is needed, ...).
    Type,
    /// Shapes that do not fit together.
    Shape,
    /// A count (channels, kernel, stride, ...) that is zero, negative or too large.
    Range,
    /// A block or net without `return`, or statements that do not fit there.
    Structure,
    /// A block that calls itself.
    Recursion,
    /// `--set` names an unknown parameter or gives a bad value.
    Override,
    /// A recipe value out of its range, or two that do not fit together.
    RecipeValue,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "E0001",
            Code::FrontMatter => "E0002",
            Code::MissingFile => "E0003",
            Code::Encoding => "E0006",
            Code::UseCycle => "E0004",
            Code::NetCount => "E0005",
            Code::Duplicate => "E0101",
            Code::UnknownName => "E0102",
            Code::UnknownOp => "E0103",
            Code::Argument => "E0104",
            Code::Type => "E0105",
            Code::Structure => "E0106",
            Code::Recursion => "E0107",
            Code::Override => "E0108",
            Code::Shape => "E0201",
            Code::Range => "E0202",
            Code::RecipeValue => "E0007",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    /// Where the mistake is; `None` for mistakes outside any file (`--set`).
    pub loc: Option<Loc>,
    pub hint: Option<String>,
    /// Further places that explain the error, such as the call of the block
    /// in which it happened.
    pub notes: Vec<(String, Loc)>,
}

impl Diagnostic {
    pub fn new(code: Code, loc: impl Into<Option<Loc>>, message: impl Into<String>) -> Self {
        Diagnostic { code, message: message.into(), loc: loc.into(), hint: None, notes: Vec::new() }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn note(mut self, message: impl Into<String>, loc: Loc) -> Self {
        self.notes.push((message.into(), loc));
        self
    }

    /// Renders the diagnostic like rustc: header, location, source line, caret.
    pub fn render(&self, sources: &Sources) -> String {
        let mut out = format!("error[{}]: {}\n", self.code.as_str(), self.message);
        if let Some(loc) = self.loc {
            render_snippet(&mut out, sources, loc);
        }
        for (message, loc) in &self.notes {
            let (line, col) = sources.line_col(loc.file, loc.span.start);
            let path = sources.get(loc.file).path.display();
            let _ = writeln!(out, "  = note: {message} at {path}:{line}:{col}");
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out
    }
}

/// Source lines longer than this are shown as a window around the caret.
const MAX_SHOWN: usize = 120;

fn render_snippet(out: &mut String, sources: &Sources, loc: Loc) {
    let file = sources.get(loc.file);
    let (line, col) = sources.line_col(loc.file, loc.span.start);
    let text = &file.text;
    let start = floor_char_boundary(text, loc.span.start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let end = floor_char_boundary(text, loc.span.end.clamp(start, line_end));
    let source_line: Vec<char> = text[line_start..line_end].trim_end_matches('\r').chars().collect();
    let caret_at = text[line_start..start].chars().count();
    let caret_width = text[start..end].chars().count().max(1);
    // A generated spec may put thousands of characters on one line: show
    // the part around the caret, marking what is cut with `...`.
    let first = if source_line.len() > MAX_SHOWN { caret_at.saturating_sub(MAX_SHOWN / 3) } else { 0 };
    let last = source_line.len().min(first + MAX_SHOWN);
    let shown: String = source_line[first..last].iter().collect();
    let (before, after) = (if first > 0 { "..." } else { "" }, if last < source_line.len() { "..." } else { "" });
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "{pad}--> {}:{line}:{col}", file.path.display());
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{line} | {before}{shown}{after}");
    let indent: String = before
        .chars()
        .chain(source_line[first..caret_at].iter().copied())
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let width = caret_width.min(last.saturating_sub(caret_at)).max(1);
    let _ = writeln!(out, "{pad} | {indent}{}", "^".repeat(width));
}

/// Renders a list of diagnostics, one after another, with a closing count.
pub fn render_all(diagnostics: &[Diagnostic], sources: &Sources) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.render(sources));
        out.push('\n');
    }
    let n = diagnostics.len();
    let _ = writeln!(out, "{n} error{}", if n == 1 { "" } else { "s" });
    out
}

/// Edit distance, for "did you mean" hints.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // One edit per three letters; names under three letters get no guess.
    let limit = name.chars().count() / 3;
    if limit == 0 {
        return None;
    }
    candidates.into_iter().map(|c| (edit_distance(name, c), c)).filter(|(d, _)| *d <= limit).min().map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit (optimal string
/// alignment), since `stme` for `stem` is the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}
