//! Positions and paths as the protocol has them: lines and UTF-16 columns,
//! `file://` URIs.

use std::path::{Component, Path, PathBuf};

use lsp_types::{Position, Range};

/// Where each line of a text starts, to turn byte offsets into protocol
/// positions (line, UTF-16 column) and back.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_boundary(text, offset.min(text.len()));
        let line = self.starts.partition_point(|s| *s <= offset).saturating_sub(1);
        let start = self.starts[line].min(offset);
        let col = text[start..offset].encode_utf16().count();
        Position::new(line as u32, col as u32)
    }

    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(self.position(text, start), self.position(text, end.max(start)))
    }

    /// The byte offset of a position; positions past a line's end or the
    /// text's end are clamped to it, as the protocol asks.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return text.len();
        };
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let mut units = 0;
        for (i, c) in text[start..line_end].char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        line_end
    }
}

pub fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The file a `file://` URI names, with `.` and `..` resolved the way the
/// compiler resolves `use` paths (without the file system).
pub fn uri_to_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    // An authority, if any, before the path: `file://localhost/a`.
    let path = &rest[rest.find('/')?..];
    let bytes = percent_decode(path)?;
    #[cfg(unix)]
    let path = {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    };
    #[cfg(not(unix))]
    let path = PathBuf::from(String::from_utf8(bytes).ok()?);
    Some(normalize(&path))
}

pub fn path_to_uri(path: &Path) -> String {
    let mut out = String::from("file://");
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().replace('\\', "/").into_bytes();
    if bytes.first() != Some(&b'/') {
        out.push('/');
    }
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// `a/b/../c.net` -> `a/c.net`, as the compiler's `use` resolution does.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        let text = "ab\nµé𝄞x\n";
        let idx = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(idx.position(text, x), Position::new(1, 4));
        assert_eq!(idx.offset(text, Position::new(1, 4)), x);
        assert_eq!(idx.offset(text, Position::new(1, 99)), text.len() - 1);
        assert_eq!(idx.offset(text, Position::new(9, 0)), text.len());
    }

    #[test]
    fn uris_round_trip() {
        let p = Path::new("/tmp/a b/ç.net");
        let uri = path_to_uri(p);
        assert_eq!(uri, "file:///tmp/a%20b/%C3%A7.net");
        assert_eq!(uri_to_path(&uri).unwrap(), p);
        assert_eq!(uri_to_path("file:///x/./y/../z.net").unwrap(), Path::new("/x/z.net"));
        assert_eq!(uri_to_path("untitled:1"), None);
    }
}
