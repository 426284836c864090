//! The syntax tree of one `.net` file. Every node keeps its span so that the
//! compiler can point at it.

use crate::diag::Span;

#[derive(Debug, Clone)]
pub struct File {
    /// The TOML text between the `+++` lines, and where it starts.
    pub front_matter: Option<(String, Span)>,
    pub uses: Vec<Use>,
    pub blocks: Vec<Def>,
    pub nets: Vec<Def>,
}

#[derive(Debug, Clone)]
pub struct Use {
    pub path: String,
    pub span: Span,
}

/// A `block` or a `net`: a name, parameters with optional defaults, a body.
#[derive(Debug, Clone)]
pub struct Def {
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone)]
pub enum Stmt {
    /// `input x: [3, 32, 32]`
    Input { name: Ident, shape: Expr },
    /// `name = expr`
    Assign { name: Ident, value: Expr },
    /// `probe name = expr`, or `probe name` for an existing value.
    Probe { name: Ident, value: Option<Expr> },
    /// `return expr`
    Return { value: Expr, span: Span },
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Number(f64),
    Bool(bool),
    Name(String),
    List(Vec<Expr>),
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `f(args)`.
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    /// `repeat(count) f(args)`: `f` applied `count` times, each output fed to
    /// the next call as its first argument.
    Repeat {
        count: Box<Expr>,
        callee: Ident,
        args: Vec<Arg>,
    },
    /// `head |> f(a) |> g`: each stage is a `Call` or `Repeat` as written,
    /// and receives the value so far as its first argument (`f(head, a)`).
    /// Kept flat rather than nested, so that a chain of any length is walked
    /// in a loop, never by recursion as deep as the chain.
    Pipe {
        head: Box<Expr>,
        stages: Vec<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}
