//! The answers: diagnostics, hover, definitions, references, completion,
//! inlay hints, symbols and formatting, from an [`Analyzed`] document.

use std::fmt::Write as _;
use std::rc::Rc;

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionParams, CompletionResponse, DiagnosticRelatedInformation,
    DiagnosticSeverity, DocumentFormattingParams, DocumentSymbol, DocumentSymbolParams, DocumentSymbolResponse,
    GotoDefinitionParams, GotoDefinitionResponse, Hover, HoverContents, HoverParams, InlayHint, InlayHintKind,
    InlayHintLabel, InlayHintParams, Location, MarkupContent, MarkupKind, NumberOrString, Range, ReferenceParams,
    SymbolKind, TextDocumentPositionParams, TextEdit, Uri,
};

use super::model::{BindKind, DefModel, Hit};
use super::{Analyzed, Server, text};
use crate::compile::index::{Bound, Site};
use crate::compile::{OP_NAMES, fmt_num, fmt_shape, op_signature};
use crate::diag::{Loc, Span};
use crate::summary::{describe, group, si};

/// The root file of a document's analysis.
const ROOT: usize = 0;

/// `netc check`'s diagnostics, by the source file they are in.
pub fn diagnostics(a: &Analyzed) -> Vec<(usize, lsp_types::Diagnostic)> {
    let Err(diags) = &a.analysis.outcome else { return Vec::new() };
    diags
        .iter()
        .map(|d| {
            let file = d.loc.map_or(ROOT, |l| l.file);
            let range = d.loc.map_or_else(Range::default, |l| a.range(l));
            let mut message = d.message.clone();
            if let Some(hint) = &d.hint {
                let _ = write!(message, "\nhint: {hint}");
            }
            let related = d
                .notes
                .iter()
                .filter_map(|(m, loc)| {
                    let uri = text::path_to_uri(a.path(loc.file)).parse::<Uri>().ok()?;
                    Some(DiagnosticRelatedInformation {
                        location: Location::new(uri, a.range(*loc)),
                        message: m.clone(),
                    })
                })
                .collect::<Vec<_>>();
            let diag = lsp_types::Diagnostic {
                range,
                severity: Some(DiagnosticSeverity::ERROR),
                code: Some(NumberOrString::String(d.code.as_str().to_string())),
                source: Some("netc".to_string()),
                message,
                related_information: (!related.is_empty()).then_some(related),
                ..Default::default()
            };
            (file, diag)
        })
        .collect()
}

/// The analysis of the document a request is about, and the byte offset
/// of its position.
fn at(s: &mut Server, p: &TextDocumentPositionParams) -> Result<(Rc<Analyzed>, usize), String> {
    let a = analyzed(s, &p.text_document.uri)?;
    let offset = a.lines[ROOT].offset(a.text(ROOT), p.position);
    Ok((a, offset))
}

fn analyzed(s: &mut Server, uri: &Uri) -> Result<Rc<Analyzed>, String> {
    s.analyzed(uri.as_str()).ok_or_else(|| format!("`{}` is not an open document", uri.as_str()))
}

fn root_loc(span: Span) -> Loc {
    Loc { file: ROOT, span }
}

fn location(s: &Server, a: &Analyzed, loc: Loc) -> Option<Location> {
    let uri = s.uri_of(a.path(loc.file)).parse::<Uri>().ok()?;
    Some(Location::new(uri, a.range(loc)))
}

// ----- hover ----------------------------------------------------------------

pub fn hover(s: &mut Server, p: HoverParams) -> Result<Option<Hover>, String> {
    let p = p.text_document_position_params;
    // The document's own analysis first; then, for a library, the open
    // specs that use it, which instantiate its blocks.
    for (a, file) in s.analyses_of(p.text_document.uri.as_str()) {
        let offset = a.lines[file].offset(a.text(file), p.position);
        if let Some((span, value)) = hover_in(&a, file, offset) {
            return Ok(Some(Hover {
                contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value }),
                range: Some(a.range(Loc { file, span })),
            }));
        }
    }
    if s.docs.contains_key(p.text_document.uri.as_str()) {
        Ok(None)
    } else {
        Err(format!("`{}` is not an open document", p.text_document.uri.as_str()))
    }
}

fn hover_in(a: &Analyzed, file: usize, offset: usize) -> Option<(Span, String)> {
    let model = a.models.get(file)?.as_ref()?;
    let at = |span| Loc { file, span };
    match model.hit(offset)? {
        Hit::Binding(_, b) => Some((b.name.span, value_hover(a, &b.name.name, at(b.name.span))?)),
        Hit::Read(def, r) => Some((r.span, value_hover(a, &r.name, at(def.binding(&r.name)?.name.span))?)),
        Hit::Callee(_, c) => Some((c.callee.span, call_hover(a, &c.callee.name, at(c.callee.span))?)),
        Hit::Use(_, span) => {
            let (_, path) = a.analysis.index.uses.iter().find(|(l, _)| *l == at(span))?;
            Some((span, format!("`{}`", path.display())))
        }
        Hit::Def(def) if def.is_net => {
            let Ok(crate::compile::Checked::Net(c)) = &a.analysis.outcome else { return None };
            let g = &c.graph;
            let args: Vec<String> = g.args.iter().map(|(k, v)| format!("{k} = {}", fmt_num(*v))).collect();
            let out = &g.nodes[g.output];
            let text = format!(
                "```netc\nnet {}({})\n```\n- input `{}`, output `{}`\n- {} nodes, {} parameters, {} multiply-adds ({})\n",
                g.name,
                args.join(", "),
                fmt_shape(g.input_shape()),
                fmt_shape(&out.shape),
                g.nodes.len(),
                group(g.total_params()),
                group(g.total_macs()),
                si(g.total_macs())
            );
            Some((def.name.span, text))
        }
        Hit::Def(def) => {
            let block = a.analysis.index.block(&def.name.name)?;
            let calls = block_calls(a, &def.name.name).len();
            let text = format!(
                "```netc\nblock {}\n```\ncalled at {calls} place{} in this file and the files it `use`s\n",
                signature(block),
                if calls == 1 { "" } else { "s" }
            );
            Some((def.name.span, text))
        }
    }
}

/// Every call of block `name` in the files of an analysis.
fn block_calls(a: &Analyzed, name: &str) -> Vec<Loc> {
    a.models
        .iter()
        .enumerate()
        .filter_map(|(file, m)| Some((file, m.as_ref()?)))
        .flat_map(|(file, m)| {
            m.defs
                .iter()
                .flat_map(|d| &d.calls)
                .filter(|c| c.callee.name == name)
                .map(move |c| Loc { file, span: c.callee.span })
        })
        .collect()
}

/// What a name holds: a feature map's shape and where it comes from, or a
/// number; in every instance of the block it is in.
fn value_hover(a: &Analyzed, name: &str, at: Loc) -> Option<String> {
    let sites: Vec<&Site> = a.analysis.index.bindings_at(at).collect();
    let first = sites.iter().find(|s| !matches!(s.value, Bound::Error))?;
    let mut out = String::new();
    match first.value {
        Bound::Node(id) => {
            let node = &a.analysis.index.nodes[id];
            let _ = writeln!(out, "```netc\n{name}: {}\n```", fmt_shape(&node.shape));
            node_facts(a, first, &mut out);
        }
        Bound::Num(_) => {
            let values = distinct(sites.iter().filter_map(|s| match s.value {
                Bound::Num(n) => Some(fmt_num(n)),
                _ => None,
            }));
            let _ = writeln!(out, "```netc\n{name} = {}\n```", values.join(" | "));
        }
        Bound::Other(what) => {
            let _ = writeln!(out, "`{name}`: {what}");
        }
        Bound::Error => return None,
    }
    instances(a, &sites, &mut out);
    Some(out)
}

/// A call: the op's or block's signature, and what this call made.
fn call_hover(a: &Analyzed, callee: &str, at: Loc) -> Option<String> {
    let index = &a.analysis.index;
    let mut out = String::from("```netc\n");
    if let Some((params, required)) = op_signature(callee) {
        let shown: Vec<String> = params
            .iter()
            .enumerate()
            .map(|(i, p)| if i < required { p.to_string() } else { format!("{p} = ..") })
            .collect();
        let _ = writeln!(out, "op {callee}({})\n```", shown.join(", "));
    } else if let Some(block) = index.block(callee) {
        let _ = writeln!(out, "block {}\n```", signature(block));
        let _ = writeln!(out, "defined in `{}`\n", a.path(block.loc.file).display());
    } else {
        return None;
    }
    let sites: Vec<&Site> = index.calls_at(at).collect();
    if let Some(first) = sites.iter().find(|s| matches!(s.value, Bound::Node(_))) {
        let Bound::Node(id) = first.value else { unreachable!() };
        let _ = writeln!(out, "- output: `{}`", fmt_shape(&index.nodes[id].shape));
        node_facts(a, first, &mut out);
        instances(a, &sites, &mut out);
    }
    Some(out)
}

fn signature(block: &crate::compile::index::BlockSig) -> String {
    let params: Vec<String> = block
        .params
        .iter()
        .map(|(n, d)| match d {
            Some(d) => format!("{n} = {}", d.split_whitespace().collect::<Vec<_>>().join(" ")),
            None => n.clone(),
        })
        .collect();
    format!("{}({})", block.name, params.join(", "))
}

/// Parameters, multiply-adds and receptive field of one evaluation.
fn node_facts(a: &Analyzed, site: &Site, out: &mut String) {
    let nodes = &a.analysis.index.nodes;
    let Bound::Node(id) = site.value else { return };
    let node = &nodes[id];
    let made = &nodes[site.nodes.clone()];
    let (params, macs) = crate::graph::totals(made);
    let _ = writeln!(out, "- node: `{}` ({})", node.name, describe(node));
    if !made.is_empty() {
        let _ = writeln!(
            out,
            "- {} node{}, {} parameters, {} multiply-adds ({})",
            made.len(),
            if made.len() == 1 { "" } else { "s" },
            group(params),
            group(macs),
            si(macs)
        );
    }
    let rf = node.receptive_field;
    let _ = writeln!(out, "- receptive field: {} px (jump {})", fmt_num(rf.size.round()), fmt_num(rf.jump));
}

/// For a place inside a block called more than once: how many instances,
/// and their shapes when they differ.
fn instances(a: &Analyzed, sites: &[&Site], out: &mut String) {
    if sites.len() < 2 {
        return;
    }
    let shapes = distinct(sites.iter().filter_map(|s| match s.value {
        Bound::Node(id) => Some(fmt_shape(&a.analysis.index.nodes[id].shape)),
        _ => None,
    }));
    let _ = write!(out, "\n{} instances (the first is shown)", sites.len());
    if shapes.len() > 1 {
        let _ = write!(out, "; shapes {}", shapes.join(", "));
    }
    out.push('\n');
}

fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

// ----- definition and references ---------------------------------------------

pub fn definition(s: &mut Server, p: GotoDefinitionParams) -> Result<Option<GotoDefinitionResponse>, String> {
    let (a, offset) = at(s, &p.text_document_position_params)?;
    let Some(Some(model)) = a.models.first() else { return Ok(None) };
    let target = match model.hit(offset) {
        Some(Hit::Callee(_, c)) => a.analysis.index.block(&c.callee.name).and_then(|b| location(s, &a, b.loc)),
        Some(Hit::Use(_, span)) => {
            let used = a.analysis.index.uses.iter().find(|(l, _)| *l == root_loc(span));
            used.and_then(|(_, path)| {
                let uri = s.uri_of(path).parse::<Uri>().ok()?;
                Some(Location::new(uri, Range::default()))
            })
        }
        Some(Hit::Read(def, r)) => def.binding(&r.name).and_then(|b| location(s, &a, root_loc(b.name.span))),
        Some(Hit::Binding(_, b)) => location(s, &a, root_loc(b.name.span)),
        Some(Hit::Def(d)) => location(s, &a, root_loc(d.name.span)),
        None => None,
    };
    Ok(target.map(GotoDefinitionResponse::Scalar))
}

pub fn references(s: &mut Server, p: ReferenceParams) -> Result<Option<Vec<Location>>, String> {
    let (a, offset) = at(s, &p.text_document_position)?;
    let Some(Some(model)) = a.models.first() else { return Ok(None) };
    let with_decl = p.context.include_declaration;
    let locs: Vec<Loc> = match model.hit(offset) {
        Some(Hit::Read(def, Ident { name, .. }) | Hit::Binding(def, Binding { name: Ident { name, .. }, .. })) => {
            def.occurrences(name, with_decl).into_iter().map(root_loc).collect()
        }
        // A block: its definition, and its calls in every file read by
        // this document or by the open documents that use it.
        Some(
            Hit::Callee(_, Call { callee: Ident { name, .. }, .. })
            | Hit::Def(DefModel { name: Ident { name, .. }, is_net: false, .. }),
        ) => {
            let name = name.clone();
            let mut out: Vec<Location> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (other, _) in s.analyses_of(p.text_document_position.text_document.uri.as_str()) {
                let decl = other.analysis.index.block(&name).filter(|_| with_decl).map(|b| b.loc);
                for l in decl.into_iter().chain(block_calls(&other, &name)) {
                    if let Some(l) = location(s, &other, l)
                        && seen.insert((l.uri.as_str().to_string(), l.range.start.line, l.range.start.character))
                    {
                        out.push(l);
                    }
                }
            }
            return Ok(Some(out));
        }
        _ => return Ok(None),
    };
    Ok(Some(locs.into_iter().filter_map(|l| location(s, &a, l)).collect()))
}

use super::model::{Binding, Call};
use crate::syntax::ast::Ident;

// ----- completion ---------------------------------------------------------------

/// Where the cursor stands, from the text before it (a line being typed
/// seldom parses).
enum Context {
    /// After `|>`: a call.
    Stage,
    /// An argument of a call to this op or block.
    Argument(String),
    /// Anywhere else in a definition.
    Other,
}

fn context(text: &str, offset: usize) -> Context {
    let before = &text[..text::floor_boundary(text, offset)];
    let word_start = before.trim_end_matches(|c: char| c.is_alphanumeric() || c == '_').len();
    let lead = before[..word_start].trim_end();
    if lead.ends_with("|>") {
        return Context::Stage;
    }
    if !(lead.ends_with('(') || lead.ends_with(',')) {
        return Context::Other;
    }
    // The innermost open bracket before the cursor, within a few lines.
    let mut depth = 0usize;
    for (i, c) in lead.char_indices().rev().take(4096) {
        match c {
            ')' | ']' => depth += 1,
            '[' if depth == 0 => return Context::Other,
            '(' if depth == 0 => {
                let head = lead[..i].trim_end();
                let name_start = head.trim_end_matches(|c: char| c.is_alphanumeric() || c == '_').len();
                let name = &head[name_start..];
                return if name.is_empty() { Context::Other } else { Context::Argument(name.to_string()) };
            }
            '(' | '[' => depth -= 1,
            '{' | '}' => return Context::Other,
            _ => {}
        }
    }
    Context::Other
}

pub fn completion(s: &mut Server, p: CompletionParams) -> Result<Option<CompletionResponse>, String> {
    let key = p.text_document_position.text_document.uri.as_str().to_string();
    let (text, offset) = {
        let doc = s.docs.get(&key).ok_or_else(|| format!("`{key}` is not an open document"))?;
        (doc.text.clone(), doc.lines.offset(&doc.text, p.text_document_position.position))
    };
    // The current text if it parses, else the last one that did.
    let current = s.analyzed(&key);
    let a = match current {
        Some(a) if matches!(a.models.first(), Some(Some(_))) => Some(a),
        _ => s.docs.get(&key).and_then(|d| d.last_parsed.clone()),
    };
    let mut items = Vec::new();
    let blocks = a.as_ref().map_or(&[][..], |a| &a.analysis.index.blocks[..]);
    let calls = |items: &mut Vec<CompletionItem>| {
        for op in OP_NAMES {
            let (params, _) = op_signature(op).unwrap_or_default();
            items.push(item(op, CompletionItemKind::FUNCTION, format!("op {op}({})", params.join(", "))));
        }
        for b in blocks {
            items.push(item(&b.name, CompletionItemKind::FUNCTION, format!("block {}", signature(b))));
        }
    };
    let context = context(&text, offset);
    if let Context::Argument(callee) = &context {
        let named: Vec<(String, Option<String>)> = match op_signature(callee) {
            Some((params, _)) => params.iter().skip(1).map(|p| (p.to_string(), None)).collect(),
            None => blocks.iter().find(|b| b.name == *callee).map(|b| b.params.clone()).unwrap_or_default(),
        };
        for (name, default) in named {
            let detail = match default {
                Some(d) => format!("{callee}: {name} = {d}"),
                None => format!("{callee}: {name}"),
            };
            let mut it = item(&name, CompletionItemKind::FIELD, detail);
            it.insert_text = Some(format!("{name} = "));
            it.label = format!("{name} =");
            it.filter_text = Some(name);
            items.push(it);
        }
    }
    match context {
        Context::Stage => {
            calls(&mut items);
            items.push(item("repeat", CompletionItemKind::KEYWORD, "repeat(n) block(...)".to_string()));
        }
        Context::Argument(_) | Context::Other => {
            if let Some(Some(model)) = a.as_ref().map(|a| &a.models[ROOT])
                && let Some(def) = model.def_at(offset).or_else(|| model.defs.iter().rfind(|d| d.span.start <= offset))
            {
                in_scope(def, offset, &mut items);
            }
            calls(&mut items);
            if matches!(context, Context::Other) {
                for kw in ["input", "probe", "return", "repeat", "same", "nearest", "bilinear", "true", "false"] {
                    items.push(item(kw, CompletionItemKind::KEYWORD, String::new()));
                }
            }
        }
    }
    Ok(Some(CompletionResponse::Array(items)))
}

/// The values a definition has bound before `offset`.
fn in_scope(def: &DefModel, offset: usize, items: &mut Vec<CompletionItem>) {
    for b in &def.bindings {
        if b.kind != BindKind::Probe && b.name.span.end < offset {
            let what = match b.kind {
                BindKind::Param => "parameter",
                BindKind::Input => "input",
                _ => "value",
            };
            items.push(item(&b.name.name, CompletionItemKind::VARIABLE, format!("{what} of {}", def.name.name)));
        }
    }
}

fn item(label: &str, kind: CompletionItemKind, detail: String) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: (!detail.is_empty()).then_some(detail),
        ..Default::default()
    }
}

// ----- inlay hints, symbols, formatting ------------------------------------------

/// Each assignment's output shape at the end of its statement.
/// In a library, the shapes come from the open specs that use it.
pub fn inlay_hints(s: &mut Server, p: InlayHintParams) -> Result<Option<Vec<InlayHint>>, String> {
    analyzed(s, &p.text_document.uri)?;
    let mut hints = Vec::new();
    for (a, file) in s.analyses_of(p.text_document.uri.as_str()) {
        hints = hints_in(&a, file, p.range);
        if !hints.is_empty() {
            break;
        }
    }
    Ok(Some(hints))
}

fn hints_in(a: &Analyzed, file: usize, range: Range) -> Vec<InlayHint> {
    let Some(Some(model)) = a.models.get(file) else { return Vec::new() };
    let (lines, text) = (&a.lines[file], a.text(file));
    let (from, to) = (lines.offset(text, range.start), lines.offset(text, range.end));
    let mut hints = Vec::new();
    for def in &model.defs {
        for b in def.bindings.iter().filter(|b| b.kind == BindKind::Assign && from <= b.end && b.end <= to) {
            let at = Loc { file, span: b.name.span };
            let shapes = distinct(a.analysis.index.bindings_at(at).filter_map(|s| match s.value {
                Bound::Node(id) => Some(fmt_shape(&a.analysis.index.nodes[id].shape)),
                _ => None,
            }));
            if shapes.is_empty() {
                continue;
            }
            hints.push(InlayHint {
                position: lines.position(text, b.end),
                label: InlayHintLabel::String(shapes.join(" | ")),
                kind: Some(InlayHintKind::TYPE),
                text_edits: None,
                tooltip: None,
                padding_left: Some(true),
                padding_right: None,
                data: None,
            });
        }
    }
    hints
}

/// Nets and blocks, with their probes inside.
pub fn document_symbols(s: &mut Server, p: DocumentSymbolParams) -> Result<Option<DocumentSymbolResponse>, String> {
    let key = p.text_document.uri.as_str().to_string();
    let a = match s.analyzed(&key) {
        Some(a) if matches!(a.models.first(), Some(Some(_))) => a,
        // While the text does not parse, the outline of the last that did
        // would point at moved lines: show none.
        Some(_) => return Ok(Some(DocumentSymbolResponse::Nested(Vec::new()))),
        None => return Err(format!("`{key}` is not an open document")),
    };
    let Some(Some(model)) = a.models.first() else { return Ok(None) };
    let range = |start: usize, end: usize| a.lines[ROOT].range(a.text(ROOT), start, end);
    #[allow(deprecated)] // `deprecated` is a required field of the struct.
    let symbols = model
        .defs
        .iter()
        .map(|d| {
            let children = d
                .bindings
                .iter()
                .filter(|b| b.kind == BindKind::Probe)
                .map(|b| DocumentSymbol {
                    name: b.name.name.clone(),
                    detail: Some("probe".to_string()),
                    kind: SymbolKind::EVENT,
                    tags: None,
                    deprecated: None,
                    range: range(b.name.span.start, b.end),
                    selection_range: range(b.name.span.start, b.name.span.end),
                    children: None,
                })
                .collect::<Vec<_>>();
            DocumentSymbol {
                name: d.name.name.clone(),
                detail: Some(if d.is_net { "net" } else { "block" }.to_string()),
                kind: if d.is_net { SymbolKind::CLASS } else { SymbolKind::FUNCTION },
                tags: None,
                deprecated: None,
                range: range(d.span.start, d.span.end),
                selection_range: range(d.name.span.start, d.name.span.end),
                children: (!children.is_empty()).then_some(children),
            }
        })
        .collect();
    Ok(Some(DocumentSymbolResponse::Nested(symbols)))
}

/// The formatter's text as one edit of the whole document; none when it
/// is already formatted or does not parse (its errors are shown already).
pub fn formatting(s: &mut Server, p: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>, String> {
    let key = p.text_document.uri.as_str().to_string();
    let doc = s.docs.get(&key).ok_or_else(|| format!("`{key}` is not an open document"))?;
    Ok(format_edits(&doc.text, &doc.lines))
}

/// The one place the server calls the formatter.
fn format_edits(text: &str, lines: &text::LineIndex) -> Option<Vec<TextEdit>> {
    match crate::fmt::format_source(text) {
        Ok(formatted) if formatted == text => Some(Vec::new()),
        Ok(formatted) => Some(vec![TextEdit::new(lines.range(text, 0, text.len()), formatted)]),
        Err(_) => None,
    }
}
