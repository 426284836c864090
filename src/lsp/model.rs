//! What the editor needs of one file's syntax: its definitions, and in each
//! the names it binds, the names it reads and the calls it makes, with
//! their spans. Names are bound once per `block` or `net`, so a name read
//! in a definition always means the binding of that name in it.

use crate::diag::Span;
use crate::syntax::ast::{self, Expr, ExprKind, Ident, Stmt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    Param,
    Input,
    Assign,
    Probe,
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub name: Ident,
    pub kind: BindKind,
    /// Where the statement ends (for the shape hint after it).
    pub end: usize,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub callee: Ident,
    /// Named arguments: `pad` in `conv(x, 64, pad = same)`.
    pub arg_names: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct DefModel {
    pub is_net: bool,
    pub name: Ident,
    /// From the header to the end of the last statement.
    pub span: Span,
    /// Up to the next definition: where a cursor counts as inside.
    pub extent: Span,
    pub bindings: Vec<Binding>,
    /// Names read, in source order (`probe x` reads `x` too).
    pub reads: Vec<Ident>,
    pub calls: Vec<Call>,
}

#[derive(Debug, Clone, Default)]
pub struct FileModel {
    pub uses: Vec<(String, Span)>,
    pub defs: Vec<DefModel>,
}

/// What an identifier under the cursor is.
#[derive(Debug, Clone, Copy)]
pub enum Hit<'m> {
    Binding(&'m DefModel, &'m Binding),
    Read(&'m DefModel, &'m Ident),
    Callee(&'m DefModel, &'m Call),
    Use(&'m str, Span),
    /// The name of a `block` or `net` in its header.
    Def(&'m DefModel),
}

impl FileModel {
    pub fn new(file: &ast::File, text: &str) -> Self {
        let mut defs: Vec<DefModel> = file
            .blocks
            .iter()
            .map(|d| DefModel::new(d, false))
            .chain(file.nets.iter().map(|d| DefModel::new(d, true)))
            .collect();
        defs.sort_by_key(|d| d.span.start);
        let starts: Vec<usize> = defs.iter().skip(1).map(|d| d.span.start).chain([usize::MAX]).collect();
        for (d, next) in defs.iter_mut().zip(starts) {
            d.extent = Span::new(d.span.start, next);
            // Up to the first `}` after the last statement: the closing brace.
            if let Some(i) = text.get(d.span.end..).and_then(|t| t.find('}')) {
                d.span.end = (d.span.end + i + 1).min(next);
            }
        }
        FileModel { uses: file.uses.iter().map(|u| (u.path.clone(), u.span)).collect(), defs }
    }

    /// The definition that holds `offset`.
    pub fn def_at(&self, offset: usize) -> Option<&DefModel> {
        self.defs.iter().find(|d| d.extent.start <= offset && offset < d.extent.end)
    }

    /// The identifier at `offset` (its end counts, where a cursor after a
    /// word stands).
    pub fn hit(&self, offset: usize) -> Option<Hit<'_>> {
        let inside = |s: Span| s.start <= offset && offset <= s.end;
        if let Some((path, span)) = self.uses.iter().find(|(_, s)| inside(*s)) {
            return Some(Hit::Use(path, *span));
        }
        let def = self.def_at(offset)?;
        if inside(def.name.span) {
            return Some(Hit::Def(def));
        }
        if let Some(b) = def.bindings.iter().find(|b| inside(b.name.span)) {
            return Some(Hit::Binding(def, b));
        }
        if let Some(c) = def.calls.iter().find(|c| inside(c.callee.span)) {
            return Some(Hit::Callee(def, c));
        }
        def.reads.iter().find(|r| inside(r.span)).map(|r| Hit::Read(def, r))
    }
}

impl DefModel {
    fn new(def: &ast::Def, is_net: bool) -> Self {
        let mut m = DefModel {
            is_net,
            name: def.name.clone(),
            span: def.span,
            extent: def.span,
            bindings: Vec::new(),
            reads: Vec::new(),
            calls: Vec::new(),
        };
        for p in &def.params {
            m.bindings.push(Binding { name: p.name.clone(), kind: BindKind::Param, end: p.name.span.end });
            if let Some(e) = &p.default {
                m.expr(e);
            }
        }
        for stmt in &def.body {
            match stmt {
                Stmt::Input { name, shape } => {
                    m.expr(shape);
                    m.bindings.push(Binding { name: name.clone(), kind: BindKind::Input, end: shape.span.end });
                }
                Stmt::Assign { name, value } => {
                    m.expr(value);
                    m.bindings.push(Binding { name: name.clone(), kind: BindKind::Assign, end: value.span.end });
                }
                Stmt::Probe { name, value } => {
                    match value {
                        Some(v) => m.expr(v),
                        None => m.reads.push(name.clone()),
                    }
                    let end = value.as_ref().map_or(name.span.end, |v| v.span.end);
                    m.bindings.push(Binding { name: name.clone(), kind: BindKind::Probe, end });
                }
                Stmt::Return { value, span } => {
                    m.expr(value);
                    m.span.end = m.span.end.max(span.end);
                }
            }
        }
        let ends = m.bindings.iter().map(|b| b.end).chain(m.reads.iter().map(|r| r.span.end));
        m.span.end = ends.fold(m.span.end, usize::max);
        m.reads.sort_by_key(|r| r.span.start);
        m
    }

    fn expr(&mut self, e: &Expr) {
        // Expressions are at most 1000 deep (the parser's limit).
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.walk(e))
    }

    fn walk(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Number(_) | ExprKind::Bool(_) => {}
            ExprKind::Name(n) => self.reads.push(Ident { name: n.clone(), span: e.span }),
            ExprKind::List(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Neg(inner) => self.expr(inner),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Pipe { head, stages } => {
                self.expr(head);
                stages.iter().for_each(|s| self.expr(s));
            }
            ExprKind::Call { callee, args } | ExprKind::Repeat { callee, args, .. } => {
                if let ExprKind::Repeat { count, .. } = &e.kind {
                    self.expr(count);
                }
                self.calls.push(Call {
                    callee: callee.clone(),
                    arg_names: args.iter().filter_map(|a| a.name.clone()).collect(),
                    span: e.span,
                });
                args.iter().for_each(|a| self.expr(&a.value));
            }
        }
    }

    /// The binding a name read here refers to.
    pub fn binding(&self, name: &str) -> Option<&Binding> {
        // A probe of an existing name (`probe x`) is not where `x` is bound.
        self.bindings
            .iter()
            .find(|b| b.name.name == name && b.kind != BindKind::Probe)
            .or_else(|| self.bindings.iter().find(|b| b.name.name == name))
    }

    /// Every place that means the value `name`: its binding and its reads.
    pub fn occurrences(&self, name: &str, with_binding: bool) -> Vec<Span> {
        let mut spans: Vec<Span> = self.reads.iter().filter(|r| r.name == name).map(|r| r.span).collect();
        if with_binding && let Some(b) = self.binding(name) {
            spans.push(b.name.span);
        }
        spans.sort_by_key(|s| s.start);
        spans.dedup();
        spans
    }
}
