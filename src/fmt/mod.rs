//! `netc fmt`: one canonical layout for `.net` specs, on top of the syntax
//! phase (see docs/language.md, "Formatting", and docs/decisions.md).
//!
//! The parse decides whether a file may be formatted (a file with syntax
//! errors is refused with the diagnostics of `netc check`); [`scan`] reads
//! its tokens, comments included, which the grammar drops; [`layout`]
//! writes them out in the canonical layout. Only whitespace between tokens
//! changes, and [`format_source`] checks that before it returns: the output
//! has the same tokens and parses to the same tree.

mod files;
mod layout;
mod scan;

use std::fmt::Write as _;

use crate::diag::{Code, Diagnostic, Span};
use crate::syntax::{self, ast};

pub use files::{Outcome, command, format_file};

/// The file id of every diagnostic [`format_source`] returns.
const FILE: crate::diag::FileId = 0;

/// `text` in the canonical layout, or its syntax errors (file id 0).
///
/// A byte order mark at the start is kept, and the spans of the errors are
/// offsets into `text` as given. Should the layout ever fail its own check
/// (the same tokens, the same syntax tree), which would be a bug in netc
/// fmt, the error is one diagnostic without a place, and nothing changes.
pub fn format_source(text: &str) -> Result<String, Vec<Diagnostic>> {
    const BOM: char = '\u{FEFF}';
    let Some(rest) = text.strip_prefix(BOM) else {
        return format_text(text);
    };
    let shift = BOM.len_utf8();
    let moved = |s: Span| Span::new(s.start + shift, s.end + shift);
    match format_text(rest) {
        Ok(out) => Ok(format!("{BOM}{out}")),
        Err(mut errors) => {
            for d in &mut errors {
                if let Some(loc) = &mut d.loc {
                    loc.span = moved(loc.span);
                }
                for (_, loc) in &mut d.notes {
                    loc.span = moved(loc.span);
                }
            }
            Err(errors)
        }
    }
}

fn format_text(text: &str) -> Result<String, Vec<Diagnostic>> {
    let before = syntax::parse(FILE, text)?;
    let tokens = scan::scan(text);
    let out = layout::layout(&tokens);
    let same_tokens = || {
        let after = scan::scan(&out);
        after.len() == tokens.len() && after.iter().zip(&tokens).all(|(a, b)| a.kind == b.kind && a.text == b.text)
    };
    let same_tree = || syntax::parse(FILE, &out).is_ok_and(|after| tree(&after) == tree(&before));
    if !(same_tokens() && same_tree()) {
        // A bug in the formatter: say so rather than change what the spec means.
        return Err(vec![
            Diagnostic::new(Code::Syntax, None, "netc fmt cannot lay out this file without changing it")
                .hint("this is a bug in netc fmt; the file is left as it is"),
        ]);
    }
    Ok(out)
}

/// The syntax tree as text, without spans: two texts that differ only in
/// layout have the same tree.
fn tree(file: &ast::File) -> String {
    let mut out = String::new();
    if let Some((toml, _)) = &file.front_matter {
        let _ = writeln!(out, "front matter {toml:?}");
    }
    for u in &file.uses {
        let _ = writeln!(out, "use {:?}", u.path);
    }
    for (kind, defs) in [("block", &file.blocks), ("net", &file.nets)] {
        for def in defs {
            let _ = write!(out, "{kind} {}(", def.name.name);
            for p in &def.params {
                let _ = write!(out, "{}", p.name.name);
                if let Some(e) = &p.default {
                    out.push('=');
                    expr(&mut out, e);
                }
                out.push(',');
            }
            out.push_str(") {\n");
            for s in &def.body {
                match s {
                    ast::Stmt::Input { name, shape } => {
                        let _ = write!(out, "input {}: ", name.name);
                        expr(&mut out, shape);
                    }
                    ast::Stmt::Assign { name, value } => {
                        let _ = write!(out, "{} = ", name.name);
                        expr(&mut out, value);
                    }
                    ast::Stmt::Probe { name, value } => {
                        let _ = write!(out, "probe {}", name.name);
                        if let Some(v) = value {
                            out.push_str(" = ");
                            expr(&mut out, v);
                        }
                    }
                    ast::Stmt::Return { value, .. } => {
                        out.push_str("return ");
                        expr(&mut out, value);
                    }
                }
                out.push('\n');
            }
            out.push_str("}\n");
        }
    }
    out
}

/// An expression, fully parenthesised. Trees are at most 1000 deep; the
/// stack grows as the compiler's walks do.
fn expr(out: &mut String, e: &ast::Expr) {
    stacker::maybe_grow(128 * 1024, 4 * 1024 * 1024, || match &e.kind {
        ast::ExprKind::Number(n) => {
            let _ = write!(out, "{n:?}");
        }
        ast::ExprKind::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        ast::ExprKind::Name(n) => out.push_str(n),
        ast::ExprKind::List(items) => {
            out.push('[');
            for item in items {
                expr(out, item);
                out.push(',');
            }
            out.push(']');
        }
        ast::ExprKind::Neg(inner) => {
            out.push_str("(-");
            expr(out, inner);
            out.push(')');
        }
        ast::ExprKind::Binary { op, lhs, rhs } => {
            out.push('(');
            expr(out, lhs);
            out.push_str(op.symbol());
            expr(out, rhs);
            out.push(')');
        }
        ast::ExprKind::Call { callee, args } => call(out, &callee.name, args),
        ast::ExprKind::Repeat { count, callee, args } => {
            out.push_str("repeat(");
            expr(out, count);
            out.push(')');
            call(out, &callee.name, args);
        }
        ast::ExprKind::Pipe { head, stages } => {
            out.push('(');
            expr(out, head);
            for stage in stages {
                out.push_str("|>");
                expr(out, stage);
            }
            out.push(')');
        }
    })
}

fn call(out: &mut String, callee: &str, args: &[ast::Arg]) {
    let _ = write!(out, "{callee}(");
    for a in args {
        if let Some(name) = &a.name {
            let _ = write!(out, "{}=", name.name);
        }
        expr(out, &a.value);
        out.push(',');
    }
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::format_source;

    #[test]
    fn a_messy_net_gets_the_canonical_layout() {
        let messy = "net n(c=1){input x:[3,8,8]\n  y=x|>conv(c ,3,pad=same)   |>relu # r\n\n\n  return -y*2}";
        let want = "net n(c = 1) {\n    input x: [3, 8, 8]\n    y = x |> conv(c, 3, pad = same) |> relu # r\n\n    return -y * 2\n}\n";
        assert_eq!(format_source(messy).as_deref(), Ok(want));
        assert_eq!(format_source(want).as_deref(), Ok(want));
    }

    #[test]
    fn syntax_errors_are_returned_with_their_places() {
        let errors = format_source("\u{FEFF}net n( {").expect_err("a syntax error");
        assert!(errors.iter().all(|d| d.loc.is_some_and(|l| l.file == 0 && l.span.start >= 3)), "{errors:?}");
    }
}
