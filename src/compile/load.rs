//! Reads the root spec and every file it `use`s, parses them, and gathers
//! their blocks, net and front matter.

use std::collections::HashMap;
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
}

pub fn load(root: &Path, text: String, sources: &mut Sources, diags: &mut Vec<Diagnostic>) -> Program {
    let mut program = Program { blocks: HashMap::new(), net: None, front_matter: None, incomplete: false };
    let root_id = sources.add(root.to_path_buf(), text);
    let mut stack = vec![root_id];
    load_file(root_id, &mut stack, sources, diags, &mut program);
    program
}

fn load_file(
    id: FileId,
    stack: &mut Vec<FileId>,
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
    let is_root = stack.len() == 1;
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
        if let Some(pos) = stack.iter().position(|f| sources.get(*f).path == path) {
            let cycle: Vec<String> = stack[pos..]
                .iter()
                .map(|f| sources.get(*f).path.display().to_string())
                .chain([path.display().to_string()])
                .collect();
            diags.push(Diagnostic::new(Code::UseCycle, loc, format!("`use` cycle: {}", cycle.join(" -> "))));
            continue;
        }
        if sources.find(&path).is_some() {
            continue; // Already loaded through another `use`.
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let child = sources.add(path, text);
                stack.push(child);
                load_file(child, stack, sources, diags, program);
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
