//! Tokens to text in the canonical layout (docs/language.md, "Formatting").
//!
//! One pass over the tokens decides, before each, whether it starts a new
//! line and how far that line is indented, and otherwise how many spaces
//! separate it from the previous token. Only whitespace between tokens
//! changes: every token, comments included, comes out in its order.

use super::scan::{KEYWORDS, Kind, Token};

const INDENT: usize = 4;

#[derive(Default)]
struct Line {
    indent: usize,
    /// The code, without its indentation.
    code: String,
    /// Characters in `code`.
    width: usize,
    /// An end-of-line comment and the column it was written at.
    comment: Option<(String, usize)>,
    /// The column the line's first token was written at.
    written_at: usize,
    blank_before: bool,
    /// A comment on a line of its own: indented like the code after it.
    comment_only: bool,
    starts_with_closer: bool,
}

/// A statement (or definition header) or an open bracket: the indentation
/// of the line it starts on, that line, and the column of its first `|>`
/// on that line, which continuation lines that start with `|>` align to.
#[derive(Clone, Copy)]
struct Ctx {
    indent: usize,
    line: usize,
    pipe_col: Option<usize>,
}

pub fn layout(tokens: &[Token]) -> String {
    let next_code = next_code_tokens(tokens);
    let mut lines: Vec<Line> = Vec::new();
    let mut brace = 0usize;
    let mut brackets: Vec<Ctx> = Vec::new();
    let mut stmt = Ctx { indent: 0, line: 0, pipe_col: None };
    let mut prev: Option<&Token> = None;
    let mut prev_unary = false;
    // The next code token starts a line (after `{` and the front matter).
    let mut force_line = false;
    // The next line is preceded by a blank one (after a definition).
    let mut force_blank = false;
    // No blank line here: the start of the file or of a body.
    let mut after_open = true;

    for (i, t) in tokens.iter().enumerate() {
        if t.kind == Kind::Comment {
            match lines.last_mut() {
                Some(line) if t.newlines == 0 && line.comment.is_none() => {
                    line.comment = Some((t.text.to_string(), t.column));
                }
                _ => {
                    // A blank line may come before a comment between
                    // statements or definitions, not inside a statement.
                    let boundary = brackets.is_empty()
                        && next_code[i].is_none_or(|n| {
                            let next = &tokens[n];
                            next.is("}")
                                || (brace == 0 && starts_item(next))
                                || (brace > 0 && starts_statement(tokens, &next_code, n, prev))
                        });
                    let blank_before = !after_open && boundary && (force_blank || t.newlines >= 2);
                    lines.push(Line {
                        comment: Some((t.text.to_string(), t.column)),
                        comment_only: true,
                        blank_before,
                        ..Line::default()
                    });
                    (after_open, force_blank) = (false, false);
                }
            }
            continue;
        }

        let unary = t.is("-") && !prev.is_some_and(ends_operand);
        let item = brace == 0 && brackets.is_empty() && starts_item(t);
        let statement = brace > 0 && brackets.is_empty() && starts_statement(tokens, &next_code, i, prev);
        let last_has_comment = lines.last().is_none_or(|l| l.comment.is_some());
        let new_line = if t.is("}") {
            Some((brace.saturating_sub(1) * INDENT, false))
        } else if item || statement {
            let blank = !after_open && ((item && force_blank) || t.newlines >= 2);
            Some((if item { 0 } else { brace * INDENT }, blank))
        } else if t.is("{") && !last_has_comment {
            None
        } else if t.is("{") {
            Some((stmt.indent, false))
        } else if force_line || last_has_comment || t.newlines >= 1 {
            Some((continuation(t, &brackets, &stmt), false))
        } else {
            None
        };

        match new_line {
            Some((indent, blank_before)) => {
                let starts_with_closer = t.is(")") || t.is("]") || t.is("}");
                lines.push(Line { indent, blank_before, starts_with_closer, written_at: t.column, ..Line::default() });
                if item || statement {
                    stmt = Ctx { indent, line: lines.len() - 1, pipe_col: None };
                }
                (force_line, force_blank, after_open) = (false, false, false);
            }
            None => {
                let line = lines.last_mut().expect("a token joins the line of an earlier one");
                if prev.is_some_and(|p| space(p, prev_unary, t)) {
                    line.code.push(' ');
                    line.width += 1;
                }
            }
        }

        let at = lines.len() - 1;
        let line = lines.last_mut().expect("the token's line exists");
        let column = line.indent + line.width;
        if t.kind == Kind::FrontMatter {
            line.code = format!("+++\n{}+++", t.text);
            force_line = true;
        } else {
            line.code.push_str(t.text);
            line.width += t.text.chars().count();
        }

        if t.is("|>") {
            let ctx = brackets.last_mut().unwrap_or(&mut stmt);
            if ctx.pipe_col.is_none() && ctx.line == at {
                ctx.pipe_col = Some(column);
            }
        } else if t.is("(") || t.is("[") {
            brackets.push(Ctx { indent: line.indent, line: at, pipe_col: None });
        } else if t.is(")") || t.is("]") {
            brackets.pop();
        } else if t.is("{") {
            brace += 1;
            brackets.clear();
            (force_line, after_open) = (true, true);
        } else if t.is("}") {
            brace = brace.saturating_sub(1);
            brackets.clear();
            force_blank = brace == 0;
        }
        prev = Some(t);
        prev_unary = unary;
    }
    render(lines)
}

/// For each token, the index of the next token that is not a comment.
fn next_code_tokens(tokens: &[Token]) -> Vec<Option<usize>> {
    let mut next = vec![None; tokens.len()];
    let mut after = None;
    for i in (0..tokens.len()).rev() {
        next[i] = after;
        if tokens[i].kind != Kind::Comment {
            after = Some(i);
        }
    }
    next
}

/// Whether a token at the top level begins a definition, a `use` or the
/// front matter.
fn starts_item(t: &Token) -> bool {
    t.kind == Kind::FrontMatter || ["use", "block", "net"].iter().any(|w| t.is_word(w))
}

/// Whether token `i`, outside brackets in a body, begins a statement:
/// `input`, `probe`, `return`, or the name in `name = ...` (but not in
/// `probe name = ...`). `=` occurs outside brackets only in those two.
fn starts_statement(tokens: &[Token], next_code: &[Option<usize>], i: usize, prev: Option<&Token>) -> bool {
    let t = &tokens[i];
    if ["input", "probe", "return"].iter().any(|w| t.is_word(w)) {
        return true;
    }
    t.kind == Kind::Word
        && !KEYWORDS.contains(&t.text)
        && next_code[i].is_some_and(|n| tokens[n].is("="))
        && !prev.is_some_and(|p| p.is_word("probe"))
}

/// The indentation of a line that continues a statement: a closing bracket
/// goes back to the line that opened it; `|>` lines up under the first
/// `|>` of the line the statement (or innermost bracket) starts on;
/// anything else is indented one step from that line.
fn continuation(t: &Token, brackets: &[Ctx], stmt: &Ctx) -> usize {
    let ctx = brackets.last().unwrap_or(stmt);
    if t.is(")") || t.is("]") {
        return ctx.indent;
    }
    match ctx.pipe_col {
        Some(col) if t.is("|>") => col,
        _ => ctx.indent + INDENT,
    }
}

/// Whether a `-` after this token subtracts (rather than negates).
fn ends_operand(t: &Token) -> bool {
    match t.kind {
        Kind::Number | Kind::Str => true,
        Kind::Word => !KEYWORDS.contains(&t.text) || t.text == "true" || t.text == "false",
        Kind::Punct => t.text == ")" || t.text == "]",
        Kind::FrontMatter | Kind::Comment => false,
    }
}

/// Whether a space separates `t` from `prev` on one line.
fn space(prev: &Token, prev_unary: bool, t: &Token) -> bool {
    if prev.is("(") || prev.is("[") || prev_unary {
        return false;
    }
    if t.is(")") || t.is("]") || t.is(",") || t.is(":") {
        return false;
    }
    let callee = prev.kind == Kind::Word && (!KEYWORDS.contains(&prev.text) || prev.text == "repeat");
    !(t.is("(") && callee)
}

fn render(mut lines: Vec<Line>) -> String {
    // A comment on its own line takes the indentation of the code after it,
    // one step deeper when that code closes a bracket or body.
    let mut next: Option<(usize, bool)> = None;
    for line in lines.iter_mut().rev() {
        if line.comment_only {
            line.indent = next.map_or(0, |(indent, closer)| indent + if closer { INDENT } else { 0 });
        } else {
            next = Some((line.indent, line.starts_with_closer));
        }
    }
    let mut out = String::new();
    for line in lines {
        if line.blank_before && !out.is_empty() {
            out.push('\n');
        }
        out.extend(std::iter::repeat_n(' ', line.indent));
        out.push_str(&line.code);
        if let Some((comment, column)) = line.comment {
            if !line.code.is_empty() {
                // An end-of-line comment keeps its distance from the start
                // of the line (its column, where the indentation stays), so
                // comments aligned by hand stay aligned; at least a space
                // separates it from the code.
                let end = line.indent + line.width;
                let at = (column + line.indent).saturating_sub(line.written_at);
                out.extend(std::iter::repeat_n(' ', at.max(end + 1) - end));
            }
            out.push_str(&comment);
        }
        out.push('\n');
    }
    out
}
