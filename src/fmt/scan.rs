//! The formatter's view of a spec: every token in order, comments included,
//! with how many line breaks came before it.
//!
//! The pest grammar drops comments (`COMMENT` is silent), so the formatter
//! reads the text itself with this scanner. It runs only on text that has
//! already parsed, and its tokens follow the grammar's atomic rules
//! (`number`, `string`, `ident`); `super::format_source` checks the result
//! against the parse, so a scanner that disagreed with pest could fail to
//! format a file but never change one.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The TOML between the `+++` lines; `text` is the body, verbatim.
    FrontMatter,
    /// `# ...` to the end of the line; `text` is without trailing whitespace.
    Comment,
    /// A name, keyword or boolean.
    Word,
    Number,
    /// `"..."`, quotes included.
    Str,
    /// `|>` or one other character: a bracket, an operator, `,`, `=`, `:`.
    Punct,
}

#[derive(Clone, Debug)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    /// Line breaks between the previous token and this one.
    pub newlines: usize,
    /// The column (in characters) the token starts at in its line.
    pub column: usize,
}

impl Token<'_> {
    pub fn is(&self, punct: &str) -> bool {
        self.kind == Kind::Punct && self.text == punct
    }

    pub fn is_word(&self, word: &str) -> bool {
        self.kind == Kind::Word && self.text == word
    }
}

/// Words that cannot be names.
pub const KEYWORDS: &[&str] = &["net", "block", "use", "input", "probe", "return", "repeat", "true", "false"];

/// Splits `text` into tokens. Never fails: a character the grammar does not
/// know becomes a one-character `Punct` (the parse has refused such a file
/// before the formatter sees it).
pub fn scan(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut newlines = 0;
    let mut line_start = 0;
    // A front matter may follow only comments.
    let mut code_seen = false;
    while i < text.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b'\n' => {
                newlines += 1;
                i += 1;
                line_start = i;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                i = text[i..].find('\n').map_or(text.len(), |n| i + n);
                Kind::Comment
            }
            b'+' if !code_seen && text[i..].starts_with("+++") => {
                let (body, end) = front_matter(text, i);
                let column = text[line_start..start].chars().count();
                tokens.push(Token { kind: Kind::FrontMatter, text: body, newlines, column });
                code_seen = true;
                newlines = 0;
                i = end;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                i += text[i..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len() - i);
                Kind::Word
            }
            b'0'..=b'9' => {
                i = number_end(bytes, i);
                Kind::Number
            }
            b'"' => {
                let rest = &text[i + 1..];
                i += 1 + rest
                    .find(['"', '\n'])
                    .map_or(rest.len(), |n| if rest.as_bytes()[n] == b'"' { n + 1 } else { n });
                Kind::Str
            }
            b'|' if text[i..].starts_with("|>") => {
                i += 2;
                Kind::Punct
            }
            _ => {
                i += text[i..].chars().next().map_or(1, char::len_utf8);
                Kind::Punct
            }
        };
        let mut token = &text[start..i];
        if kind == Kind::Comment {
            token = token.trim_end();
        } else {
            code_seen = true;
        }
        let column = text[line_start..start].chars().count();
        tokens.push(Token { kind, text: token, newlines, column });
        newlines = 0;
    }
    tokens
}

/// The front matter opening at `start`: its body (from the line after the
/// opening `+++` to the start of the closing one) and where the closing
/// line's `+++` and trailing blanks end. Without a closing line (which the
/// parse refuses), the rest of the text is the body.
fn front_matter(text: &str, start: usize) -> (&str, usize) {
    let Some(open_end) = text[start..].find('\n').map(|n| start + n + 1) else {
        return ("", text.len());
    };
    let mut line = open_end;
    while line < text.len() {
        if text[line..].starts_with("+++") {
            let after = line + 3;
            let end = after + text[after..].find(|c| c != ' ' && c != '\t').unwrap_or(text.len() - after);
            return (&text[open_end..line], end);
        }
        line = text[line..].find('\n').map_or(text.len(), |n| line + n + 1);
    }
    (&text[open_end..], text.len())
}

/// The end of the number at `i`, as the grammar's `number` rule reads it:
/// digits, then `.digits` and an exponent only when complete.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    let digits = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    i = digits(i);
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        i = digits(i + 1);
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            i = digits(j);
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, &str, usize)> {
        scan(text).into_iter().map(|t| (t.kind, t.text, t.newlines)).collect()
    }

    #[test]
    fn numbers_end_where_the_grammar_ends_them() {
        let t = kinds("1.5e-3 2. 3e 4E+2");
        let texts: Vec<&str> = t.iter().map(|t| t.1).collect();
        assert_eq!(texts, ["1.5e-3", "2", ".", "3", "e", "4E+2"]);
    }

    #[test]
    fn comments_front_matter_and_line_breaks() {
        let t = kinds("# a  \n+++\nx = 1\n+++  \n\nnet n |> \"s\" # b\r\n");
        assert_eq!(t[0], (Kind::Comment, "# a", 0));
        assert_eq!(t[1], (Kind::FrontMatter, "x = 1\n", 1));
        assert_eq!(t[2], (Kind::Word, "net", 2));
        assert_eq!(t[4], (Kind::Punct, "|>", 0));
        assert_eq!(t[5], (Kind::Str, "\"s\"", 0));
        assert_eq!(t[6], (Kind::Comment, "# b", 0));
    }

    #[test]
    fn odd_text_gives_tokens_and_no_panic() {
        for text in ["\"open", "+++", "+++\nno close", "é|", "1e", "1.", "#"] {
            let _ = scan(text);
        }
    }
}
