//! Text -> syntax tree, with pest. Syntax errors become diagnostics.

use pest::Parser as _;
use pest::iterators::Pair;

use super::ast::*;
use crate::diag::{Code, Diagnostic, FileId, Loc, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/netc.pest"]
struct Grammar;

/// Deeper nesting than this is refused before pest sees it, so that no input
/// can exhaust the stack of the recursive-descent parser.
const MAX_NESTING: usize = 64;

/// Deeper expression trees than this (`1 + 1 + ...`, `- - x`) are refused,
/// so that the compiler's recursive walks over them stay within the stack.
/// Pipe chains do not count: they are kept flat, of any length.
const MAX_EXPR_DEPTH: usize = 1000;

/// At most this many syntax errors are reported for one file.
const MAX_SYNTAX_ERRORS: usize = 20;

/// Each error found means parsing the whole file again; in a file of many
/// megabytes, fewer errors are looked for, so that this stays a few seconds.
const MAX_REPARSED_BYTES: usize = 32 << 20;

/// Parses one file, or reports its syntax errors.
///
/// pest stops at the first error. To find the next ones, the line of an
/// error is blanked and the text parsed again, but only while that is safe:
/// the line must close every bracket it opens (blanking `net t() {` would
/// make every later `}` an error), and no bracket may be left open before it.
pub fn parse(file: FileId, text: &str) -> Result<File, Vec<Diagnostic>> {
    check_characters(file, text).map_err(|d| vec![d])?;
    check_nesting(file, text).map_err(|d| vec![d])?;
    check_front_matter_closed(file, text).map_err(|d| vec![d])?;
    let mut errors = Vec::new();
    let max_errors = (MAX_REPARSED_BYTES / text.len().max(1)).clamp(1, MAX_SYNTAX_ERRORS);
    let mut patched = text.to_string();
    let pairs = loop {
        match Grammar::parse(Rule::file, &patched) {
            Ok(pairs) if errors.is_empty() => break pairs,
            Ok(_) => return Err(errors),
            Err(e) => {
                let d = syntax_error(file, &patched, e);
                let at = d.loc.expect("syntax errors have a place").span.start;
                let bracket_open_before = !d.notes.is_empty();
                errors.push(d);
                if bracket_open_before || errors.len() == max_errors || !blank_line(&mut patched, at) {
                    return Err(errors);
                }
            }
        }
    };
    let root = pairs.into_iter().next().expect("the file rule always yields one pair");
    let mut ast = File { front_matter: None, uses: Vec::new(), blocks: Vec::new(), nets: Vec::new() };
    for item in root.into_inner() {
        match item.as_rule() {
            Rule::front_matter => {
                let body = item.into_inner().next().expect("front matter has a body");
                ast.front_matter = Some((body.as_str().to_string(), span(&body)));
            }
            Rule::use_decl => {
                let s = item.into_inner().next().expect("use has a string");
                let text = s.clone().into_inner().next().map_or("", |t| t.as_str());
                ast.uses.push(Use { path: text.to_string(), span: span(&s) });
            }
            Rule::block_def => ast.blocks.push(def(file, item).map_err(|d| vec![d])?),
            Rule::net_def => ast.nets.push(def(file, item).map_err(|d| vec![d])?),
            Rule::EOI => {}
            r => unreachable!("unexpected item {r:?}"),
        }
    }
    Ok(ast)
}

/// Replaces the line around byte `at` with spaces, keeping every offset, if
/// it has text and balanced brackets.
fn blank_line(text: &mut String, at: usize) -> bool {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[start..end];
    let code = line.split('#').next().unwrap_or("");
    let depth = code.chars().fold(0i32, |d, c| match c {
        '(' | '[' | '{' => d + 1,
        ')' | ']' | '}' => d - 1,
        _ => d,
    });
    let balanced = depth == 0 && !code.contains(['{', '}']);
    if line.trim().is_empty() || !balanced {
        return false;
    }
    let blank = " ".repeat(end - start);
    text.replace_range(start..end, &blank);
    true
}

/// pest would report an unclosed front matter at the end of the file, as a
/// list of what it expected; say instead where it opened.
fn check_front_matter_closed(file: FileId, text: &str) -> Result<(), Diagnostic> {
    let mut lines = text.split_inclusive('\n').scan(0, |offset, line| {
        let start = *offset;
        *offset += line.len();
        Some((start, line))
    });
    let opening = lines.find(|(_, l)| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    });
    match opening {
        Some((start, line)) if line.trim_end() == "+++" => {
            if lines.any(|(_, l)| l.starts_with("+++")) {
                Ok(())
            } else {
                let loc = Loc { file, span: Span::new(start, start + 3) };
                Err(Diagnostic::new(Code::Syntax, loc, "the front matter opened here is never closed")
                    .hint("end the TOML with a line `+++`"))
            }
        }
        _ => Ok(()),
    }
}

/// Characters that are valid UTF-8 but no text editor shows: a NUL byte
/// (the file is binary, or was cut short by a crash) and a byte order mark
/// anywhere but the start (where reading the file skipped it).
fn check_characters(file: FileId, text: &str) -> Result<(), Diagnostic> {
    let Some((at, c)) = text.char_indices().find(|(_, c)| matches!(c, '\0' | '\u{FEFF}')) else {
        return Ok(());
    };
    let loc = Loc { file, span: Span::new(at, at + c.len_utf8()) };
    Err(if c == '\0' {
        Diagnostic::new(Code::Encoding, loc, "a NUL byte (0x00) in the text")
            .hint("a .net spec is text; this file may be binary, or damaged")
    } else {
        Diagnostic::new(Code::Encoding, loc, "a byte order mark (U+FEFF) inside the text")
            .hint("delete it: a byte order mark belongs only at the very start of a file, if anywhere")
    })
}

fn check_nesting(file: FileId, text: &str) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    let mut in_comment = false;
    for (i, c) in text.char_indices() {
        match c {
            '#' => in_comment = true,
            '\n' => in_comment = false,
            '(' | '[' | '{' if !in_comment => {
                depth += 1;
                if depth > MAX_NESTING {
                    let loc = Loc { file, span: Span::new(i, i + 1) };
                    return Err(Diagnostic::new(
                        Code::Syntax,
                        loc,
                        format!("brackets nested more than {MAX_NESTING} deep"),
                    ));
                }
            }
            ')' | ']' | '}' if !in_comment => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn span(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

fn ident(pair: Pair<Rule>) -> Ident {
    debug_assert_eq!(pair.as_rule(), Rule::ident);
    Ident { name: pair.as_str().to_string(), span: span(&pair) }
}

fn def(file: FileId, pair: Pair<Rule>) -> Result<Def, Diagnostic> {
    let def_span = span(&pair);
    let mut inner = pair.into_inner();
    let name = ident(inner.next().expect("definition has a name"));
    let mut params = Vec::new();
    let mut body = Vec::new();
    for part in inner {
        match part.as_rule() {
            Rule::params => {
                for p in part.into_inner() {
                    let mut p = p.into_inner();
                    let name = ident(p.next().expect("param has a name"));
                    let default = p.next().map(|e| expr(file, e)).transpose()?.map(|(e, _)| e);
                    params.push(Param { name, default });
                }
            }
            Rule::body => body = part.into_inner().map(|s| stmt(file, s)).collect::<Result<_, _>>()?,
            r => unreachable!("unexpected {r:?} in definition"),
        }
    }
    // The span of a definition is its header, which is where errors about
    // the whole definition (a missing `return`) should point.
    let header_end = name.span.end;
    Ok(Def { name, params, body, span: Span::new(def_span.start, header_end) })
}

fn stmt(file: FileId, pair: Pair<Rule>) -> Result<Stmt, Diagnostic> {
    let rule = pair.as_rule();
    let whole = span(&pair);
    let mut inner = pair.into_inner();
    Ok(match rule {
        Rule::input_stmt => {
            let name = ident(inner.next().expect("input name"));
            Stmt::Input { name, shape: expr(file, inner.next().expect("input shape"))?.0 }
        }
        Rule::assign_stmt => {
            let name = ident(inner.next().expect("assigned name"));
            Stmt::Assign { name, value: expr(file, inner.next().expect("assigned value"))?.0 }
        }
        Rule::probe_stmt => {
            let name = ident(inner.next().expect("probe name"));
            Stmt::Probe { name, value: inner.next().map(|e| expr(file, e)).transpose()?.map(|(e, _)| e) }
        }
        Rule::return_stmt => Stmt::Return { value: expr(file, inner.next().expect("returned value"))?.0, span: whole },
        r => unreachable!("unexpected statement {r:?}"),
    })
}

/// An expression and the depth of its tree, which is kept below
/// [`MAX_EXPR_DEPTH`] so that no later walk over it can exhaust the stack.
type Built = Result<(Expr, usize), Diagnostic>;

fn expr(file: FileId, pair: Pair<Rule>) -> Built {
    let whole = span(&pair);
    let leaf = |kind| Ok((Expr { kind, span: whole }, 1));
    match pair.as_rule() {
        Rule::expr => {
            let mut inner = pair.into_inner();
            let (head, mut depth) = expr(file, inner.next().expect("pipe head"))?;
            let mut stages = Vec::new();
            for stage in inner {
                let (stage, d) = stage_call(file, stage)?;
                depth = depth.max(d);
                stages.push(stage);
            }
            if stages.is_empty() {
                return Ok((head, depth));
            }
            let at = stages[0].span;
            let pipe = Expr { kind: ExprKind::Pipe { head: Box::new(head), stages }, span: whole };
            deeper(file, pipe, depth, at)
        }
        Rule::sum | Rule::product => {
            let mut inner = pair.into_inner();
            let first = inner.next().expect("operand");
            let start = first.as_span().start();
            let (mut acc, mut depth) = expr(file, first)?;
            while let Some(op_pair) = inner.next() {
                let op = match op_pair.as_str() {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    _ => BinOp::Div,
                };
                let rhs_pair = inner.next().expect("right operand");
                // Spans of operands include their parentheses.
                let whole = Span::new(start, rhs_pair.as_span().end());
                let (rhs, rhs_depth) = expr(file, rhs_pair)?;
                let binary =
                    Expr { kind: ExprKind::Binary { op, lhs: Box::new(acc), rhs: Box::new(rhs) }, span: whole };
                (acc, depth) = deeper(file, binary, depth.max(rhs_depth), span(&op_pair))?;
            }
            Ok((acc, depth))
        }
        Rule::unary => {
            let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
            let (negs, primary) = parts.split_at(parts.len() - 1);
            let (mut acc, mut depth) = expr(file, primary[0].clone())?;
            for neg in negs.iter().rev() {
                let whole = Span::new(neg.as_span().start(), acc.span.end);
                let negated = Expr { kind: ExprKind::Neg(Box::new(acc)), span: whole };
                (acc, depth) = deeper(file, negated, depth, span(neg))?;
            }
            Ok((acc, depth))
        }
        Rule::number => leaf(ExprKind::Number(pair.as_str().parse().unwrap_or(f64::INFINITY))),
        Rule::boolean => leaf(ExprKind::Bool(pair.as_str() == "true")),
        Rule::ident => leaf(ExprKind::Name(pair.as_str().to_string())),
        Rule::list => {
            let (items, depth) = all(file, pair.into_inner())?;
            deeper(
                file,
                Expr { kind: ExprKind::List(items), span: whole },
                depth,
                Span::new(whole.start, whole.start + 1),
            )
        }
        Rule::call | Rule::repeat_call => stage_call(file, pair),
        r => unreachable!("unexpected expression {r:?}"),
    }
}

/// One more level on top of subexpressions `depth` deep, or an error at
/// `at`, the operator or call that went past the limit.
fn deeper(file: FileId, e: Expr, depth: usize, at: Span) -> Built {
    if depth < MAX_EXPR_DEPTH {
        return Ok((e, depth + 1));
    }
    let loc = Loc { file, span: at };
    Err(Diagnostic::new(Code::Syntax, loc, format!("expression nested more than {MAX_EXPR_DEPTH} deep"))
        .hint("give parts of it names: `a = ...` on a line of its own"))
}

fn all<'i>(file: FileId, pairs: impl Iterator<Item = Pair<'i, Rule>>) -> Result<(Vec<Expr>, usize), Diagnostic> {
    let mut depth = 0;
    let mut items = Vec::new();
    for pair in pairs {
        let (e, d) = expr(file, pair)?;
        depth = depth.max(d);
        items.push(e);
    }
    Ok((items, depth))
}

/// A call, a `repeat`, or a bare name used as a call in a pipe (`x |> relu`).
fn stage_call(file: FileId, pair: Pair<Rule>) -> Built {
    let whole = span(&pair);
    if pair.as_rule() == Rule::repeat_call {
        let mut inner = pair.into_inner();
        let (count, count_depth) = expr(file, inner.next().expect("repeat count"))?;
        let (callee, args, depth) = call_parts(file, inner.next().expect("repeated call"))?;
        let kind = ExprKind::Repeat { count: Box::new(count), callee, args };
        return deeper(
            file,
            Expr { kind, span: whole },
            depth.max(count_depth),
            Span::new(whole.start, whole.start + 6),
        );
    }
    let (callee, args, depth) = call_parts(file, pair)?;
    let at = callee.span;
    deeper(file, Expr { kind: ExprKind::Call { callee, args }, span: whole }, depth, at)
}

fn call_parts(file: FileId, pair: Pair<Rule>) -> Result<(Ident, Vec<Arg>, usize), Diagnostic> {
    if pair.as_rule() == Rule::ident {
        return Ok((ident(pair), Vec::new(), 0));
    }
    let mut inner = pair.into_inner();
    let callee = ident(inner.next().expect("callee"));
    let mut depth = 0;
    let mut args = Vec::new();
    for arg in inner {
        let a = arg.into_inner().next().expect("argument");
        let (name, value) = if a.as_rule() == Rule::named_arg {
            let mut n = a.into_inner();
            (Some(ident(n.next().expect("argument name"))), n.next().expect("argument value"))
        } else {
            (None, a)
        };
        let (value, d) = expr(file, value)?;
        depth = depth.max(d);
        args.push(Arg { name, value });
    }
    Ok((callee, args, depth))
}

fn syntax_error(file: FileId, text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let start = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let token = token_at(&text[start..]);
    let found = if token.is_empty() { "the end of the file".to_string() } else { format!("`{token}`") };
    let loc = Loc { file, span: Span::new(start, start + token.len()) };
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } if !positives.is_empty() => {
            let mut expected: Vec<&str> = positives.iter().map(|r| describe(*r)).collect();
            expected.sort_unstable();
            expected.dedup();
            format!("expected {}, found {found}", one_of(&expected))
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
        _ => format!("unexpected {found}"),
    };
    let mut d = Diagnostic::new(Code::Syntax, loc, message);
    let before = text[..start].trim_end();
    // A bracket left open on an earlier line is the usual cause of an error
    // at the start of the next statement.
    let open_earlier = unclosed_bracket(&text[..start]).filter(|open| text[*open..start].contains('\n'));
    if let Some(open) = open_earlier {
        let closing = match text.as_bytes()[open] {
            b'(' => ')',
            b'[' => ']',
            _ => '}',
        };
        d = d.note(
            format!("this `{}` is not closed", text.as_bytes()[open] as char),
            Loc { file, span: Span::new(open, open + 1) },
        );
        d = d.hint(format!("add the missing `{closing}`"));
    } else if unclosed_bracket(&text[..start]).is_some()
        && token.starts_with(|c: char| c.is_alphanumeric())
        && before.ends_with(|c: char| c.is_alphanumeric() || c == ')' || c == ']')
    {
        d = d.hint("a `,` may be missing between the arguments");
    } else if token.starts_with(['+', '-', '*', '/']) && statement_has_pipe(before) {
        d = d.hint("`|>` binds loosest: put the pipeline in parentheses, `(x |> f(a)) + y`");
    } else if token.starts_with('.') && before.ends_with(|c: char| c.is_ascii_digit()) {
        d = d.hint("a decimal point needs digits after it: `1.0`, not `1.`");
    } else if d.message.contains("a statement") && token.starts_with(|c: char| c.is_alphabetic()) {
        d = d.hint("a statement is `name = expression`");
    }
    d
}

/// The token at the start of `rest`: a word or number, an operator, or
/// one other character.
fn token_at(rest: &str) -> &str {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let end = match rest.chars().next() {
        None => 0,
        Some(c) if word(c) => rest.find(|c: char| !word(c)).unwrap_or(rest.len()),
        Some(_) if rest.starts_with("|>") || rest.starts_with("+++") => {
            if rest.starts_with("+++") {
                3
            } else {
                2
            }
        }
        Some(c) => c.len_utf8(),
    };
    &rest[..end]
}

/// The last `(` or `[` before `end` of the current statement that is
/// still open: the usual cause of an error at the next line.
fn unclosed_bracket(text: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut in_comment = false;
    for (i, c) in text.char_indices() {
        match c {
            '#' => in_comment = true,
            '\n' => in_comment = false,
            _ if in_comment => {}
            '(' | '[' | '{' => open.push((i, c)),
            ')' | ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.into_iter().rev().find(|(_, c)| *c != '{').map(|(i, _)| i)
}

fn statement_has_pipe(before: &str) -> bool {
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[line_start..].contains("|>")
}

fn one_of(items: &[&str]) -> String {
    match items {
        [] => "something else".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "the end of the file",
        Rule::front_matter | Rule::toml_body => "front matter closed by `+++`",
        Rule::item | Rule::use_decl | Rule::block_def | Rule::net_def => "`use`, `block` or `net`",
        Rule::params | Rule::param => "a parameter",
        Rule::body => "`{`",
        Rule::stmt | Rule::input_stmt | Rule::probe_stmt | Rule::return_stmt | Rule::assign_stmt => "a statement",
        Rule::expr | Rule::sum | Rule::product | Rule::unary | Rule::primary | Rule::stage => "an expression",
        Rule::repeat_call | Rule::call => "a call",
        Rule::arg | Rule::named_arg => "an argument",
        Rule::add_op | Rule::mul_op | Rule::neg => "an operator",
        Rule::list => "a list",
        Rule::number => "a number",
        Rule::string | Rule::str_text => "a string",
        Rule::boolean => "`true` or `false`",
        Rule::keyword => "a keyword",
        Rule::ident | Rule::ident_char => "a name",
        Rule::WHITESPACE | Rule::COMMENT | Rule::file | Rule::blank => "more input",
    }
}
