//! Instantiates the net: runs its statements, expands block calls and
//! repetitions, evaluates numbers, and builds graph nodes through `ops`.
//!
//! Errors never stop the walk: a failed expression evaluates to
//! [`Value::Error`], which every later use accepts silently, so one mistake
//! is reported once and the rest of the file is still checked.

use std::collections::{HashMap, HashSet};

use super::index::{Bound, Index, Site};
use super::load::Program;
use super::ops;
use crate::diag::{Code, Diagnostic, FileId, Loc, Span, closest};
use crate::graph::{Graph, Node, NodeId, Probe, ReceptiveField};
use crate::syntax::ast::{self, BinOp, Expr, ExprKind, Stmt};

/// Past these limits a spec is refused rather than expanded.
const MAX_NODES: usize = 100_000;
/// Block calls, which nest `repeat`s: a block may add no node at all.
const MAX_BLOCK_CALLS: usize = 100_000;
const MAX_CALL_DEPTH: usize = 64;
const MAX_REPEAT: usize = 1000;

/// `stacker` grows the stack by this much whenever less than the red zone
/// is left, so that recursion driven by the spec (expressions inside block
/// calls inside expressions) cannot overflow it.
pub(super) const RED_ZONE: usize = 128 * 1024;
pub(super) const STACK_GROWTH: usize = 4 * 1024 * 1024;

/// Words that name settings (`pad = same`, `mode = bilinear`). They evaluate
/// to themselves unless the spec binds the name.
const SYMBOLS: [&str; 3] = ["same", "nearest", "bilinear"];

#[derive(Clone, Debug)]
pub enum Value {
    Num(f64),
    Bool(bool),
    Sym(&'static str),
    List(Vec<Value>),
    Tensor(NodeId),
    /// The result of an expression that already reported an error.
    Error,
}

impl Value {
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Num(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Sym(_) => "a setting word",
            Value::List(_) => "a list",
            Value::Tensor(_) => "a feature map",
            Value::Error => "an erroneous value",
        }
    }
}

/// A value with the place that produced it and its source text, so that
/// messages can say "`b1` is [64, 32, 32]".
#[derive(Clone, Debug)]
pub struct Located {
    pub value: Value,
    pub loc: Loc,
    pub text: String,
}

/// The naming and binding context of one block instance (or the net).
pub struct Scope {
    pub file: FileId,
    /// Hierarchical prefix of everything created here: `a3.b2`.
    pub prefix: String,
    vars: HashMap<String, (Value, Loc)>,
}

impl Scope {
    pub fn qualify(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }
}

pub struct Builder<'p> {
    program: &'p Program,
    sources_text: Vec<&'p str>,
    nodes: Vec<Node>,
    taken: HashSet<String>,
    /// The next suffix [`Builder::fresh_name`] tries for each name.
    next_suffix: HashMap<String, usize>,
    probes: Vec<Probe>,
    diags: Vec<Diagnostic>,
    /// Block calls being expanded, innermost last: (block name, call site).
    calls: Vec<(String, Loc)>,
    instantiated: HashSet<String>,
    saw_input: bool,
    /// Where each probe was defined, for "defined twice".
    probe_locs: HashMap<String, Loc>,
    /// Block calls so far, and whether a limit has been reported.
    block_calls: usize,
    too_big: bool,
    /// Which place made which node (bindings and calls), for the editor.
    index: Index,
}

impl<'p> Builder<'p> {
    pub fn new(program: &'p Program, sources_text: Vec<&'p str>) -> Self {
        Builder {
            program,
            sources_text,
            nodes: Vec::new(),
            taken: HashSet::new(),
            next_suffix: HashMap::new(),
            probes: Vec::new(),
            diags: Vec::new(),
            calls: Vec::new(),
            instantiated: HashSet::new(),
            saw_input: false,
            probe_locs: HashMap::new(),
            block_calls: 0,
            too_big: false,
            index: Index::default(),
        }
    }

    /// Reports an error, with the chain of block calls that led to it.
    pub fn error(&mut self, d: Diagnostic) {
        let mut d = d;
        for (block, site) in self.calls.iter().rev() {
            d = d.note(format!("in block `{block}` called"), *site);
        }
        self.diags.push(d);
    }

    fn text(&self, loc: Loc) -> String {
        let t = &self.sources_text[loc.file][loc.span.start..loc.span.end];
        // Only the start is shown: read no more of a long chain than that.
        let t = t.char_indices().nth(400).map_or(t, |(end, _)| &t[..end]);
        let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
        if t.chars().count() > 40 { format!("{}...", t.chars().take(37).collect::<String>()) } else { t }
    }

    /// Adds a node, named `base` (made unique) inside the scope.
    pub fn add_node(&mut self, scope: &Scope, base: &str, mut node: Node, loc: Loc) -> Value {
        if self.nodes.len() >= MAX_NODES {
            self.too_big(loc, format!("the net grows past {MAX_NODES} nodes"));
            return Value::Error;
        }
        node.name = self.fresh_name(scope, base);
        self.nodes.push(node);
        Value::Tensor(self.nodes.len() - 1)
    }

    /// Reports the first limit the spec runs into; the rest would repeat it.
    fn too_big(&mut self, loc: Loc, message: String) {
        if !std::mem::replace(&mut self.too_big, true) {
            self.error(Diagnostic::new(Code::Range, loc, message));
        }
    }

    /// `base`, or `base_1`, `base_2`, ...: the first that is free. The next
    /// suffix to try is remembered, so that a chain of a thousand `relu`s
    /// does not try every taken name again for each new one.
    fn fresh_name(&mut self, scope: &Scope, base: &str) -> String {
        let qualified = scope.qualify(base);
        let next = self.next_suffix.entry(qualified.clone()).or_insert(0);
        loop {
            let i = *next;
            *next += 1;
            let candidate = if i == 0 { qualified.clone() } else { format!("{qualified}_{i}") };
            if self.taken.insert(candidate.clone()) {
                return candidate;
            }
        }
    }

    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id].shape
    }

    pub fn rf(&self, id: NodeId) -> ReceptiveField {
        self.nodes[id].receptive_field
    }

    /// Notes in the index what the place `loc` evaluated to, and the nodes
    /// made since `first_node`.
    fn record(&mut self, call: bool, loc: Loc, value: &Value, first_node: usize) {
        let value = match value {
            Value::Tensor(id) => Bound::Node(*id),
            Value::Num(n) => Bound::Num(*n),
            Value::Error => Bound::Error,
            other => Bound::Other(other.describe()),
        };
        let site = Site { loc, value, nodes: first_node.min(self.nodes.len())..self.nodes.len() };
        if call { self.index.calls.push(site) } else { self.index.bindings.push(site) }
    }

    // ----- the net -------------------------------------------------------

    /// Instantiates the net with its parameters. Returns the graph when
    /// nothing went wrong, and the index of what was built either way.
    pub fn net(mut self, overrides: &[(String, f64)]) -> (Option<Graph>, Vec<Diagnostic>, Index) {
        let Some((file, net)) = &self.program.net else {
            self.check_uncalled_blocks();
            return (None, self.diags, self.index);
        };
        let (file, net) = (*file, net.clone());
        let mut scope = Scope { file, prefix: String::new(), vars: HashMap::new() };
        let mut args = std::collections::BTreeMap::new();
        for p in &net.params {
            if scope.vars.contains_key(&p.name.name) {
                continue; // Named twice: `load` has said so.
            }
            let loc = Loc { file, span: p.name.span };
            let value = if let Some((_, v)) = overrides.iter().find(|(k, _)| *k == p.name.name) {
                Value::Num(*v)
            } else if let Some(default) = &p.default {
                self.eval(&mut scope, default)
            } else {
                self.error(
                    Diagnostic::new(Code::Argument, loc, format!("net parameter `{}` has no default", p.name.name))
                        .hint(format!("give it a default, or a value with `--set {}=...`", p.name.name)),
                );
                Value::Error
            };
            if let Value::Num(n) = value {
                args.insert(p.name.name.clone(), n);
            }
            self.record(false, loc, &value, self.nodes.len());
            self.bind(&mut scope, &p.name, value);
        }
        let known: Vec<&str> = net.params.iter().map(|p| p.name.name.as_str()).collect();
        for (key, _) in overrides {
            if !known.contains(&key.as_str()) {
                let listed =
                    if known.is_empty() { "it has none".to_string() } else { format!("it has {}", known.join(", ")) };
                self.diags.push(Diagnostic::new(
                    Code::Override,
                    None,
                    format!("`--set {key}=...`: net `{}` has no parameter `{key}`; {listed}", net.name.name),
                ));
            }
        }
        let output = self.body(&mut scope, &net, true);
        self.check_uncalled_blocks();
        if !self.saw_input {
            self.error(
                Diagnostic::new(
                    Code::Structure,
                    Loc { file, span: net.span },
                    format!("net `{}` has no `input`", net.name.name),
                )
                .hint("declare its input shape: `input x: [3, 32, 32]`"),
            );
        }
        let output = match output {
            Some(Located { value: Value::Tensor(id), loc, text }) => {
                // A classifier: one logit per class, and one class is no choice.
                if let [n @ (0 | 1)] = self.nodes[id].shape[..] {
                    self.error(
                        Diagnostic::new(
                            Code::Range,
                            loc,
                            format!("`{text}` gives {n} logit; a classifier needs at least 2 classes"),
                        )
                        .hint("end in `linear(classes)` with `classes` at least 2 (a one-class data set cannot be learned)"),
                    );
                }
                Some(id)
            }
            Some(Located { value: Value::Error, .. }) => None,
            Some(other) => {
                self.error(Diagnostic::new(
                    Code::Type,
                    other.loc,
                    format!("a net must return a feature map, but `{}` is {}", other.text, other.value.describe()),
                ));
                None
            }
            None => None,
        };
        self.index.nodes = self.nodes.clone();
        let graph = match output {
            Some(output) if self.diags.is_empty() => {
                let mut nodes = std::mem::take(&mut self.nodes);
                for n in &mut nodes {
                    for p in &mut n.params {
                        p.name = format!("{}.{}", n.name, p.name);
                    }
                }
                Some(Graph {
                    name: net.name.name.clone(),
                    args,
                    nodes,
                    output,
                    probes: std::mem::take(&mut self.probes),
                })
            }
            _ => None,
        };
        (graph, self.diags, self.index)
    }

    /// Runs the statements of a net or block body; returns what it returns.
    fn body(&mut self, scope: &mut Scope, def: &ast::Def, is_net: bool) -> Option<Located> {
        let mut returned: Option<Located> = None;
        for stmt in &def.body {
            if let Some(r) = &returned {
                let loc = Loc { file: scope.file, span: stmt_span(stmt) };
                self.error(
                    Diagnostic::new(Code::Structure, loc, "statement after `return` is never reached")
                        .note("the return", r.loc),
                );
                break;
            }
            match stmt {
                Stmt::Input { name, shape } => self.input(scope, name, shape, is_net),
                Stmt::Assign { name, value } => {
                    let first_node = self.nodes.len();
                    let v = self.named(scope, &name.name, value);
                    self.record(false, Loc { file: scope.file, span: name.span }, &v, first_node);
                    self.bind(scope, name, v);
                }
                Stmt::Probe { name, value } => self.probe(scope, name, value.as_ref()),
                Stmt::Return { value, .. } => {
                    let v = self.eval(scope, value);
                    let loc = Loc { file: scope.file, span: value.span };
                    returned = Some(Located { value: v, loc, text: self.text(loc) });
                }
            }
        }
        if returned.is_none() {
            self.error(no_return(scope.file, def, if is_net { "net" } else { "block" }));
        }
        returned
    }

    /// Blocks that the net never calls are still checked for unknown names
    /// and callees, so a library file's typo does not wait for its first use.
    fn check_uncalled_blocks(&mut self) {
        let program = self.program;
        let mut uncalled: Vec<&(FileId, ast::Def)> =
            program.blocks.iter().filter(|(name, _)| !self.instantiated.contains(*name)).map(|(_, b)| b).collect();
        uncalled.sort_by_key(|(file, def)| (*file, def.span.start));
        for (file, def) in uncalled {
            let mut known: HashSet<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
            for p in &def.params {
                if let Some(e) = &p.default {
                    self.check_names(*file, e, &known);
                }
            }
            for stmt in &def.body {
                match stmt {
                    Stmt::Assign { name, value } => {
                        self.check_names(*file, value, &known);
                        known.insert(&name.name);
                    }
                    Stmt::Probe { value: Some(value), .. } | Stmt::Return { value, .. } => {
                        self.check_names(*file, value, &known)
                    }
                    Stmt::Probe { name, value: None } => self.check_names(
                        *file,
                        &Expr { kind: ExprKind::Name(name.name.clone()), span: name.span },
                        &known,
                    ),
                    Stmt::Input { name, .. } => self.error(input_in_block(Loc { file: *file, span: name.span })),
                }
            }
            if !def.body.iter().any(|s| matches!(s, Stmt::Return { .. })) {
                self.error(no_return(*file, def, "block"));
            }
        }
    }

    fn check_names(&mut self, file: FileId, expr: &Expr, known: &HashSet<&str>) {
        stacker::maybe_grow(RED_ZONE, STACK_GROWTH, || self.check_expr_names(file, expr, known));
    }

    fn check_expr_names(&mut self, file: FileId, expr: &Expr, known: &HashSet<&str>) {
        let loc = Loc { file, span: expr.span };
        match &expr.kind {
            ExprKind::Name(n) if !known.contains(n.as_str()) && !SYMBOLS.contains(&n.as_str()) => {
                let mut d = Diagnostic::new(Code::UnknownName, loc, format!("unknown name `{n}`"));
                if let Some(c) = closest(n, known.iter().copied()) {
                    d = d.hint(format!("did you mean `{c}`?"));
                }
                self.error(d);
            }
            ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
            ExprKind::List(items) => items.iter().for_each(|e| self.check_names(file, e, known)),
            ExprKind::Neg(e) => self.check_names(file, e, known),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.check_names(file, lhs, known);
                self.check_names(file, rhs, known);
            }
            ExprKind::Pipe { head, stages } => {
                self.check_names(file, head, known);
                stages.iter().for_each(|s| self.check_names(file, s, known));
            }
            ExprKind::Call { callee, args } | ExprKind::Repeat { callee, args, .. } => {
                if !ops::is_op(&callee.name) && !self.program.blocks.contains_key(&callee.name) {
                    let scope = Scope { file, prefix: String::new(), vars: HashMap::new() };
                    self.unknown_callee(&scope, callee);
                }
                if let ExprKind::Repeat { count, .. } = &expr.kind {
                    self.check_names(file, count, known);
                }
                args.iter().for_each(|a| self.check_names(file, &a.value, known));
            }
        }
    }

    fn bind(&mut self, scope: &mut Scope, name: &ast::Ident, value: Value) {
        let loc = Loc { file: scope.file, span: name.span };
        if let Some((_, first)) = scope.vars.get(&name.name) {
            let first = *first;
            self.error(
                Diagnostic::new(Code::Duplicate, loc, format!("`{}` is already defined", name.name))
                    .note("first defined", first)
                    .hint("every value has one name; pick a new one"),
            );
            // Later uses of the name are ambiguous: keep them quiet.
            scope.vars.insert(name.name.clone(), (Value::Error, first));
            return;
        }
        scope.vars.insert(name.name.clone(), (value, loc));
    }

    fn input(&mut self, scope: &mut Scope, name: &ast::Ident, shape: &Expr, is_net: bool) {
        let loc = Loc { file: scope.file, span: name.span };
        if !is_net {
            self.error(input_in_block(loc));
            // Bound all the same, so that its uses do not echo the error.
            return self.bind(scope, name, Value::Error);
        }
        if std::mem::replace(&mut self.saw_input, true) {
            self.error(Diagnostic::new(Code::Structure, loc, "a net has exactly one `input`"));
            return self.bind(scope, name, Value::Error);
        }
        let shape_loc = Loc { file: scope.file, span: shape.span };
        let value = match self.eval(scope, shape) {
            Value::List(items) if items.len() == 3 => {
                let dims: Option<Vec<usize>> = items.iter().map(|v| ops::whole(v, 1, 1 << 16)).collect();
                match dims {
                    Some(dims) => {
                        let node = Node {
                            name: String::new(),
                            op: crate::graph::Op::Input,
                            inputs: vec![],
                            shape: dims,
                            params: vec![],
                            macs: 0,
                            receptive_field: ReceptiveField { size: 1.0, jump: 1.0 },
                        };
                        self.add_node(scope, &name.name, node, loc)
                    }
                    None => {
                        self.error(Diagnostic::new(
                            Code::Range,
                            shape_loc,
                            "input dimensions must be whole numbers from 1 to 65536",
                        ));
                        Value::Error
                    }
                }
            }
            Value::Error => Value::Error,
            _ => {
                self.error(Diagnostic::new(
                    Code::Type,
                    shape_loc,
                    "an input shape is a list of three sizes, channels, height and width: `[3, 32, 32]`",
                ));
                Value::Error
            }
        };
        let first_node = if matches!(value, Value::Tensor(_)) { self.nodes.len() - 1 } else { self.nodes.len() };
        self.record(false, loc, &value, first_node);
        self.bind(scope, name, value);
    }

    fn probe(&mut self, scope: &mut Scope, name: &ast::Ident, value: Option<&Expr>) {
        let loc = Loc { file: scope.file, span: name.span };
        let first_node = self.nodes.len();
        let v = match value {
            Some(e) => self.named(scope, &name.name, e),
            None => self.lookup(scope, &name.name, loc),
        };
        self.record(false, loc, &v, first_node);
        let full = scope.qualify(&name.name);
        match v {
            Value::Tensor(node) if self.nodes[node].shape.len() != 3 => self.error(
                Diagnostic::new(
                    Code::Type,
                    loc,
                    format!(
                        "a probe looks at a feature map [C, H, W], but `{}` is {}, a vector",
                        name.name,
                        ops::fmt_shape(&self.nodes[node].shape)
                    ),
                )
                .hint("probe a convolution's or pooling's output, before `gap`, `flatten` or `linear`"),
            ),
            Value::Tensor(node) => {
                if let Some(first) = self.probe_locs.get(&full) {
                    let first = *first;
                    self.error(
                        Diagnostic::new(Code::Duplicate, loc, format!("probe `{full}` is defined twice"))
                            .note("first defined", first),
                    );
                } else {
                    self.probe_locs.insert(full.clone(), loc);
                    self.probes.push(Probe { name: full, node });
                }
            }
            Value::Error => {}
            other => self.error(Diagnostic::new(
                Code::Type,
                loc,
                format!("a probe looks at a feature map, but `{}` is {}", name.name, other.describe()),
            )),
        }
    }

    /// Evaluates the right side of `name = expr`. Whatever it creates is
    /// named under `name`; if it creates a single node or block instance,
    /// that one takes `name` itself (`stem = conv(...)` is node `stem`).
    fn named(&mut self, scope: &mut Scope, name: &str, expr: &Expr) -> Value {
        let first_node = self.nodes.len();
        let first_probe = self.probes.len();
        let prefix = self.fresh_name(scope, name);
        let outer = std::mem::replace(&mut scope.prefix, prefix);
        let v = self.eval(scope, expr);
        let prefix = std::mem::replace(&mut scope.prefix, outer);
        self.collapse(&prefix, first_node, first_probe);
        v
    }

    fn collapse(&mut self, prefix: &str, first_node: usize, first_probe: usize) {
        let head = format!("{prefix}.");
        let child =
            |name: &str| name.strip_prefix(&head).map(|rest| rest.split('.').next().unwrap_or(rest).to_string());
        let children: HashSet<Option<String>> = self.nodes[first_node..]
            .iter()
            .map(|n| child(&n.name))
            .chain(self.probes[first_probe..].iter().map(|p| child(&p.name)))
            .collect();
        let only = match children.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(only)] => only.clone(),
            _ => return,
        };
        let from = format!("{prefix}.{only}");
        // `prefix` is reserved in `taken` by whoever opened the scope, so no
        // other node can hold that name.
        let rename = |name: &str| format!("{prefix}{}", &name[from.len()..]);
        for n in &mut self.nodes[first_node..] {
            self.taken.remove(&n.name);
            n.name = rename(&n.name);
            self.taken.insert(n.name.clone());
        }
        for p in &mut self.probes[first_probe..] {
            p.name = rename(&p.name);
        }
    }

    fn lookup(&mut self, scope: &Scope, name: &str, loc: Loc) -> Value {
        if let Some((v, _)) = scope.vars.get(name) {
            return v.clone();
        }
        if let Some(sym) = SYMBOLS.iter().find(|s| **s == name) {
            return Value::Sym(sym);
        }
        if self.program.incomplete {
            return Value::Error;
        }
        let mut d = Diagnostic::new(Code::UnknownName, loc, format!("unknown name `{name}`"));
        if let Some(c) = closest(name, scope.vars.keys().map(String::as_str)) {
            d = d.hint(format!("did you mean `{c}`?"));
        } else if self.program.blocks.contains_key(name) || ops::is_op(name) {
            d = d.hint(format!("`{name}` is an op or block: call it, `{name}(...)`"));
        }
        self.error(d);
        Value::Error
    }

    // ----- expressions ---------------------------------------------------

    pub fn eval(&mut self, scope: &mut Scope, expr: &Expr) -> Value {
        // Expressions are at most a thousand deep, but block calls nest
        // expressions inside expressions: grow the stack rather than overflow.
        stacker::maybe_grow(RED_ZONE, STACK_GROWTH, || self.eval_expr(scope, expr))
    }

    fn eval_expr(&mut self, scope: &mut Scope, expr: &Expr) -> Value {
        let loc = Loc { file: scope.file, span: expr.span };
        match &expr.kind {
            ExprKind::Number(n) => Value::Num(*n),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Name(n) => self.lookup(scope, n, loc),
            ExprKind::List(items) => Value::List(items.iter().map(|e| self.eval(scope, e)).collect()),
            ExprKind::Neg(inner) => match self.eval(scope, inner) {
                Value::Num(n) => Value::Num(-n),
                Value::Tensor(id) => ops::affine(self, scope, id, -1.0, 0.0, loc),
                Value::Error => Value::Error,
                other => {
                    self.error(Diagnostic::new(Code::Type, loc, format!("cannot negate {}", other.describe())));
                    Value::Error
                }
            },
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.located(scope, lhs);
                let r = self.located(scope, rhs);
                self.binary(scope, *op, l, r, loc)
            }
            ExprKind::Call { .. } | ExprKind::Repeat { .. } => self.stage(scope, None, expr),
            ExprKind::Pipe { head, stages } => {
                let mut acc = self.located(scope, head);
                for stage in stages {
                    let value = self.stage(scope, Some(acc), stage);
                    let loc = Loc { file: scope.file, span: Span::new(expr.span.start, stage.span.end) };
                    acc = Located { value, loc, text: self.text(loc) };
                }
                acc.value
            }
        }
    }

    /// A call or a `repeat`, with the value piped into it, if any, as its
    /// first argument.
    fn stage(&mut self, scope: &mut Scope, piped: Option<Located>, expr: &Expr) -> Value {
        let site = Loc { file: scope.file, span: expr.span };
        let (ExprKind::Call { callee, args } | ExprKind::Repeat { callee, args, .. }) = &expr.kind else {
            unreachable!("a pipe stage is a call or a repeat")
        };
        let (value, first_node) = match &expr.kind {
            ExprKind::Repeat { count, .. } => {
                let first_node = self.nodes.len();
                (self.repeat(scope, count, callee, piped, args, site), first_node)
            }
            _ => {
                let mut evaluated: Vec<(Option<ast::Ident>, Located)> = piped.map(|p| (None, p)).into_iter().collect();
                evaluated.extend(args.iter().map(|a| (a.name.clone(), self.located(scope, &a.value))));
                // The arguments' own nodes are theirs, not this call's.
                let first_node = self.nodes.len();
                (self.call(scope, callee, evaluated, site), first_node)
            }
        };
        self.record(true, Loc { file: scope.file, span: callee.span }, &value, first_node);
        value
    }

    fn located(&mut self, scope: &mut Scope, expr: &Expr) -> Located {
        let loc = Loc { file: scope.file, span: expr.span };
        Located { value: self.eval(scope, expr), loc, text: self.text(loc) }
    }

    fn binary(&mut self, scope: &mut Scope, op: BinOp, l: Located, r: Located, loc: Loc) -> Value {
        use Value::{Error, Num, Tensor};
        match (op, &l.value, &r.value) {
            (_, Error, _) | (_, _, Error) => Error,
            (BinOp::Div, Num(_) | Tensor(_), Num(b)) if *b == 0.0 => {
                self.error(Diagnostic::new(Code::Range, r.loc, "division by zero"));
                Error
            }
            (_, Num(a), Num(b)) => Num(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
            }),
            (BinOp::Add, Tensor(_), Tensor(_)) => ops::elementwise(self, scope, crate::graph::Op::Add, &l, &r, loc),
            (BinOp::Mul, Tensor(_), Tensor(_)) => ops::elementwise(self, scope, crate::graph::Op::Mul, &l, &r, loc),
            (BinOp::Add, Tensor(t), Num(n)) | (BinOp::Add, Num(n), Tensor(t)) => {
                ops::affine(self, scope, *t, 1.0, *n, loc)
            }
            (BinOp::Sub, Tensor(t), Num(n)) => ops::affine(self, scope, *t, 1.0, -n, loc),
            (BinOp::Sub, Num(n), Tensor(t)) => ops::affine(self, scope, *t, -1.0, *n, loc),
            (BinOp::Mul, Tensor(t), Num(n)) | (BinOp::Mul, Num(n), Tensor(t)) => {
                ops::affine(self, scope, *t, *n, 0.0, loc)
            }
            (BinOp::Div, Tensor(t), Num(n)) if *n != 0.0 => ops::affine(self, scope, *t, 1.0 / n, 0.0, loc),
            (_, a, b) => {
                let mut d = Diagnostic::new(
                    Code::Type,
                    loc,
                    format!(
                        "`{}` cannot combine {} (`{}`) and {} (`{}`)",
                        op.symbol(),
                        a.describe(),
                        l.text,
                        b.describe(),
                        r.text
                    ),
                );
                if matches!((a, b), (Tensor(_), Tensor(_))) {
                    d = d.hint("feature maps combine with `+` and `*`");
                }
                self.error(d);
                Error
            }
        }
    }

    fn call(
        &mut self,
        scope: &mut Scope,
        callee: &ast::Ident,
        args: Vec<(Option<ast::Ident>, Located)>,
        loc: Loc,
    ) -> Value {
        if !self.positional_first(&args) {
            return Value::Error;
        }
        if args.iter().any(|(_, a)| matches!(a.value, Value::Error)) {
            // Still check that the callee exists, but say nothing about the arguments.
            if !ops::is_op(&callee.name) && !self.program.blocks.contains_key(&callee.name) {
                self.unknown_callee(scope, callee);
            }
            return Value::Error;
        }
        if ops::is_op(&callee.name) {
            return ops::apply(self, scope, &callee.name, args, loc);
        }
        if self.program.blocks.contains_key(&callee.name) {
            return self.block(scope, callee, args, loc, None);
        }
        self.unknown_callee(scope, callee);
        Value::Error
    }

    /// Positional arguments must come before named ones, as in Python.
    fn positional_first(&mut self, args: &[(Option<ast::Ident>, Located)]) -> bool {
        let first_named = args.iter().position(|(n, _)| n.is_some());
        let stray = first_named.and_then(|i| args[i..].iter().find(|(n, _)| n.is_none()));
        if let Some((_, arg)) = stray {
            let loc = arg.loc;
            self.error(
                Diagnostic::new(Code::Argument, loc, "a positional argument after named ones")
                    .hint("put positional arguments first, or name this one too"),
            );
            return false;
        }
        true
    }

    fn unknown_callee(&mut self, scope: &Scope, callee: &ast::Ident) {
        if self.program.incomplete {
            return;
        }
        let loc = Loc { file: scope.file, span: callee.span };
        let mut d = Diagnostic::new(Code::UnknownOp, loc, format!("unknown op or block `{}`", callee.name));
        let candidates = ops::NAMES.iter().copied().chain(self.program.blocks.keys().map(String::as_str));
        if let Some(c) = closest(&callee.name, candidates) {
            d = d.hint(format!("did you mean `{c}`?"));
        } else {
            d = d.hint(format!(
                "the ops are {}; blocks come from `block` definitions and `use`d files",
                ops::NAMES.join(", ")
            ));
        }
        self.error(d);
    }

    /// Expands one call of a block; `instance` overrides its name (repeat).
    fn block(
        &mut self,
        scope: &mut Scope,
        callee: &ast::Ident,
        args: Vec<(Option<ast::Ident>, Located)>,
        loc: Loc,
        instance: Option<String>,
    ) -> Value {
        let program = self.program;
        let (file, def) = &program.blocks[&callee.name];
        if self.calls.iter().any(|(b, _)| *b == callee.name) {
            self.error(
                Diagnostic::new(Code::Recursion, loc, format!("block `{}` calls itself", callee.name))
                    .hint("blocks cannot recurse; use `repeat(n)` to stack copies"),
            );
            return Value::Error;
        }
        self.block_calls += 1;
        if self.block_calls > MAX_BLOCK_CALLS {
            self.too_big(loc, format!("the net expands into more than {MAX_BLOCK_CALLS} block calls"));
            return Value::Error;
        }
        if self.calls.len() >= MAX_CALL_DEPTH {
            self.error(Diagnostic::new(Code::Recursion, loc, format!("blocks nested more than {MAX_CALL_DEPTH} deep")));
            return Value::Error;
        }
        self.instantiated.insert(callee.name.clone());
        let prefix = match instance {
            Some(name) => self.fresh_name(scope, &name),
            None => self.fresh_name(scope, &callee.name),
        };
        let mut inner = Scope { file: *file, prefix, vars: HashMap::new() };
        // Bind arguments to parameters: positional first, then by name.
        let mut bound: Vec<Option<Value>> = vec![None; def.params.len()];
        let mut ok = true;
        let positional = args.iter().filter(|(n, _)| n.is_none()).count();
        if positional > def.params.len() {
            let listed: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
            self.error(Diagnostic::new(
                Code::Argument,
                loc,
                format!(
                    "block `{}` takes {} argument{} ({}), but {positional} were given",
                    callee.name,
                    listed.len(),
                    plural(listed.len()),
                    listed.join(", ")
                ),
            ));
            return Value::Error;
        }
        let mut next = 0;
        for (name, arg) in args {
            let index = match &name {
                None => {
                    next += 1;
                    next - 1
                }
                Some(n) => match def.params.iter().position(|p| p.name.name == n.name) {
                    Some(i) => i,
                    None => {
                        let nloc = Loc { file: arg.loc.file, span: n.span };
                        let mut d = Diagnostic::new(
                            Code::Argument,
                            nloc,
                            format!("block `{}` has no parameter `{}`", callee.name, n.name),
                        );
                        let params: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
                        d = match closest(&n.name, params.iter().copied()) {
                            Some(c) => d.hint(format!("did you mean `{c}`?")),
                            None => d.hint(format!("`{}` takes {}", callee.name, params.join(", "))),
                        };
                        self.error(d);
                        ok = false;
                        continue;
                    }
                },
            };
            if bound[index].is_some() {
                self.error(Diagnostic::new(
                    Code::Argument,
                    arg.loc,
                    format!("parameter `{}` of block `{}` is given twice", def.params[index].name.name, callee.name),
                ));
                ok = false;
                continue;
            }
            bound[index] = Some(arg.value);
        }
        if !ok {
            return Value::Error;
        }
        self.calls.push((callee.name.clone(), loc));
        for (param, value) in def.params.iter().zip(bound) {
            let value = match (value, &param.default) {
                (Some(v), _) => v,
                // Defaults are evaluated inside the block, after the earlier
                // parameters: `block f(x, c, mid = c / 4)`.
                (None, Some(default)) => self.eval(&mut inner, default),
                (None, None) => {
                    self.calls.pop();
                    self.error(
                        Diagnostic::new(
                            Code::Argument,
                            loc,
                            format!("block `{}` needs argument `{}`", callee.name, param.name.name),
                        )
                        .note("the block is defined", Loc { file: *file, span: def.name.span }),
                    );
                    return Value::Error;
                }
            };
            let ploc = Loc { file: *file, span: param.name.span };
            self.record(false, ploc, &value, self.nodes.len());
            inner.vars.insert(param.name.name.clone(), (value, ploc));
        }
        let first_node = self.nodes.len();
        let first_probe = self.probes.len();
        let result = self.body(&mut inner, def, false);
        self.calls.pop();
        // A block whose body is one node is that node: `y = act(x)` is `y`.
        self.collapse(&inner.prefix.clone(), first_node, first_probe);
        result.map_or(Value::Error, |r| r.value)
    }

    fn repeat(
        &mut self,
        scope: &mut Scope,
        count: &Expr,
        callee: &ast::Ident,
        piped: Option<Located>,
        args: &[ast::Arg],
        loc: Loc,
    ) -> Value {
        let count_loc = Loc { file: scope.file, span: count.span };
        let n = match self.eval(scope, count) {
            Value::Error => return Value::Error,
            v => match ops::whole(&v, 1, MAX_REPEAT) {
                Some(n) => n,
                None => {
                    let got = match v {
                        Value::Num(n) => ops::fmt_num(n),
                        other => other.describe().to_string(),
                    };
                    self.error(Diagnostic::new(
                        Code::Range,
                        count_loc,
                        format!("`repeat` needs a whole count from 1 to {MAX_REPEAT}, but it got {got}"),
                    ));
                    return Value::Error;
                }
            },
        };
        if !self.program.blocks.contains_key(&callee.name) {
            if ops::is_op(&callee.name) {
                let cloc = Loc { file: scope.file, span: callee.span };
                self.error(
                    Diagnostic::new(
                        Code::Type,
                        cloc,
                        format!("`repeat` stacks blocks, and `{}` is an op", callee.name),
                    )
                    .hint("wrap the op in a block"),
                );
            } else {
                self.unknown_callee(scope, callee);
            }
            return Value::Error;
        }
        let mut evaluated: Vec<(Option<ast::Ident>, Located)> = piped.map(|p| (None, p)).into_iter().collect();
        evaluated.extend(args.iter().map(|a| (a.name.clone(), self.located(scope, &a.value))));
        if !self.positional_first(&evaluated) || evaluated.iter().any(|(_, a)| matches!(a.value, Value::Error)) {
            return Value::Error;
        }
        if evaluated.first().is_none_or(|(n, _)| n.is_some()) {
            self.error(Diagnostic::new(
                Code::Argument,
                loc,
                "`repeat` needs the value to thread through as the first argument",
            ));
            return Value::Error;
        }
        let base = callee.name.clone();
        let group = Scope { file: scope.file, prefix: self.fresh_name(scope, &base), vars: HashMap::new() };
        let mut group = group;
        let mut current = Value::Error;
        for i in 0..n {
            let v = self.block(&mut group, callee, evaluated.clone(), loc, Some(i.to_string()));
            if matches!(v, Value::Error) {
                return Value::Error;
            }
            current = v.clone();
            evaluated[0].1.value = v;
        }
        current
    }
}

fn input_in_block(loc: Loc) -> Diagnostic {
    Diagnostic::new(Code::Structure, loc, "`input` belongs in a net, not in a block")
        .hint("a block receives its inputs as parameters")
}

fn no_return(file: FileId, def: &ast::Def, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::Structure,
        Loc { file, span: def.span },
        format!("{what} `{}` has no `return`", def.name.name),
    )
    .hint(format!("end the {what} with `return <value>`"))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn stmt_span(stmt: &Stmt) -> crate::diag::Span {
    match stmt {
        Stmt::Input { name, .. } | Stmt::Assign { name, .. } | Stmt::Probe { name, .. } => name.span,
        Stmt::Return { span, .. } => *span,
    }
}
