//! Reads the root spec and every file it `use`s, parses them, and gathers
//! their blocks, net and front matter.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic, FileId, Loc, Sources, Span};
use crate::syntax::{self, ast};

/// All definitions reachable from the root file.
pub struct Program {
    /// Block name -> its file and definition.
    pub blocks: HashMap<String, (FileId, ast::Def)>,
    /// The root file's net, if it has exactly one.
    pub net: Option<(FileId, ast::Def)>,
    /// The root file's front matter and where it starts.
    pub front_matter: Option<(FileId, String, Span)>,
    /// Some file could not be read or parsed, so names it defines may be
    /// missing: unknown names are then not reported, they would only echo
    /// the first error.
    pub incomplete: bool,
    /// Every `use` read, with the file it names (for the editor's
    /// go-to-definition).
    pub uses: Vec<(Loc, PathBuf)>,
}

/// Reads a file's bytes: the file system, or an editor's unsaved buffers.
/// Spec files larger than this are refused rather than read.
const MAX_FILE: u64 = 64 << 20;

/// A spec file from the disk: only a regular file, and only up to
/// [`MAX_FILE`], so that a path such as `/dev/zero`, `/dev/stdin` (the
/// language server's own input) or a pipe cannot stall netc or fill memory.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!("larger than {} MiB", MAX_FILE >> 20)));
    }
    Ok(bytes)
}

pub type Reader<'r> = &'r dyn Fn(&Path) -> std::io::Result<Vec<u8>>;

pub fn load(root: &Path, text: String, reader: Reader, sources: &mut Sources, diags: &mut Vec<Diagnostic>) -> Program {
    let mut program =
        Program { blocks: HashMap::new(), net: None, front_matter: None, incomplete: false, uses: Vec::new() };
    let root_id = sources.add(root.to_path_buf(), text);
    let mut stack = Stack::default();
    stack.push(root_id, root.to_path_buf());
    load_file(root_id, &mut stack, reader, sources, diags, &mut program);
    program
}

/// The chain of `use`s being loaded, root first, with a set of its paths so
/// that a long chain is checked for cycles in constant time per `use`.
#[derive(Default)]
struct Stack {
    files: Vec<(FileId, PathBuf)>,
    paths: HashSet<PathBuf>,
}

impl Stack {
    fn push(&mut self, id: FileId, path: PathBuf) {
        self.paths.insert(path.clone());
        self.files.push((id, path));
    }

    fn pop(&mut self) {
        if let Some((_, path)) = self.files.pop() {
            self.paths.remove(&path);
        }
    }
}

/// The text of a file, from its bytes. A byte order mark at the start is
/// skipped (some editors write one); bytes that are not UTF-8 give the text
/// with U+FFFD in their place and an error at the first of them.
pub(super) fn decode(bytes: Vec<u8>) -> (String, Option<(Span, String)>) {
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let byte = e.as_bytes()[at];
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let span = Span::new(at, at + '\u{FFFD}'.len_utf8());
            (text, Some((span, format!("byte 0x{byte:02X} is not UTF-8 text"))))
        }
    }
}

/// The located error for a file whose text [`decode`] could not read.
pub(super) fn encoding_error(file: FileId, span: Span, message: String) -> Diagnostic {
    Diagnostic::new(Code::Encoding, Loc { file, span }, message)
        .hint("save the file as UTF-8; an editor set to Latin-1 or Windows-1252 writes bytes like this for `é` or `µ`")
}

fn load_file(
    id: FileId,
    stack: &mut Stack,
    reader: Reader,
    sources: &mut Sources,
    diags: &mut Vec<Diagnostic>,
    program: &mut Program,
) {
    // A chain of `use`s is as deep as the user makes it.
    stacker::maybe_grow(super::eval::RED_ZONE, super::eval::STACK_GROWTH, || {
        load_one_file(id, stack, reader, sources, diags, program)
    })
}

fn load_one_file(
    id: FileId,
    stack: &mut Stack,
    reader: Reader,
    sources: &mut Sources,
    diags: &mut Vec<Diagnostic>,
    program: &mut Program,
) {
    let ast = match syntax::parse(id, &sources.get(id).text) {
        Ok(ast) => ast,
        Err(errors) => {
            program.incomplete = true;
            return diags.extend(errors);
        }
    };
    let is_root = stack.files.len() == 1;
    if let Some((text, span)) = ast.front_matter {
        if is_root {
            program.front_matter = Some((id, text, span));
        } else {
            let loc = Loc { file: id, span: Span::new(span.start, span.start) };
            diags.push(Diagnostic::new(
                Code::FrontMatter,
                loc,
                "only the spec that is compiled may have front matter, not a `use`d file",
            ));
        }
    }
    for u in &ast.uses {
        let loc = Loc { file: id, span: u.span };
        let dir = sources.get(id).path.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = normalize(&dir.join(&u.path));
        program.uses.push((loc, path.clone()));
        if stack.paths.contains(&path) {
            let pos = stack.files.iter().position(|(_, p)| *p == path).expect("the set mirrors the chain");
            let cycle: Vec<String> = stack.files[pos..]
                .iter()
                .map(|(_, p)| p.display().to_string())
                .chain([path.display().to_string()])
                .collect();
            diags.push(Diagnostic::new(Code::UseCycle, loc, format!("`use` cycle: {}", cycle.join(" -> "))));
            continue;
        }
        if sources.find(&path).is_some() {
            continue; // Already loaded through another `use`.
        }
        match reader(&path) {
            Ok(bytes) => {
                let (text, bad) = decode(bytes);
                let child = sources.add(path.clone(), text);
                if let Some((span, message)) = bad {
                    program.incomplete = true;
                    diags.push(encoding_error(child, span, message));
                    continue;
                }
                stack.push(child, path);
                load_file(child, stack, reader, sources, diags, program);
                stack.pop();
            }
            Err(e) => {
                program.incomplete = true;
                diags.push(
                    Diagnostic::new(
                        Code::MissingFile,
                        loc,
                        format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
                    )
                    .hint("`use` paths are relative to the file that contains the `use`"),
                );
            }
        }
    }
    for def in ast.blocks.iter().chain(&ast.nets) {
        check_params(id, def, diags);
    }
    for block in ast.blocks {
        let loc = Loc { file: id, span: block.name.span };
        if super::ops::is_op(&block.name.name) {
            diags.push(
                Diagnostic::new(
                    Code::Duplicate,
                    loc,
                    format!("block `{}` has the name of a built-in op", block.name.name),
                )
                .hint("give the block another name"),
            );
        } else if let Some((file, first)) = program.blocks.get(&block.name.name) {
            let first = Loc { file: *file, span: first.name.span };
            diags.push(
                Diagnostic::new(Code::Duplicate, loc, format!("block `{}` is defined twice", block.name.name))
                    .note("first defined", first),
            );
        } else {
            program.blocks.insert(block.name.name.clone(), (id, block));
        }
    }
    let mut nets = ast.nets.into_iter();
    if is_root {
        program.net = nets.next().map(|n| (id, n));
        for extra in nets {
            let loc = Loc { file: id, span: extra.name.span };
            diags.push(
                Diagnostic::new(
                    Code::NetCount,
                    loc,
                    format!("a spec holds one net, but `{}` is a second one", extra.name.name),
                )
                .hint("put each net in its own file and share blocks through `use`"),
            );
        }
    } else if let Some(net) = nets.next() {
        let loc = Loc { file: id, span: net.name.span };
        diags.push(Diagnostic::new(
            Code::NetCount,
            loc,
            format!("a `use`d file may hold only blocks, but it defines net `{}`", net.name.name),
        ));
    }
}

fn check_params(file: FileId, def: &ast::Def, diags: &mut Vec<Diagnostic>) {
    for (i, p) in def.params.iter().enumerate() {
        if let Some(first) = def.params[..i].iter().find(|q| q.name.name == p.name.name) {
            let loc = Loc { file, span: p.name.span };
            diags.push(
                Diagnostic::new(
                    Code::Duplicate,
                    loc,
                    format!("parameter `{}` of `{}` is named twice", p.name.name, def.name.name),
                )
                .note("first named", Loc { file, span: first.name.span }),
            );
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    }
}

/// `a/b/../c.net` -> `a/c.net`, without touching the file system, so that
/// paths in messages stay as short as the user wrote them.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
