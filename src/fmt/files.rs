//! `netc fmt [--check] FILE...`: files rewritten in place (atomically),
//! checked, or `-` formatted from stdin to stdout.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic, Loc, Sources, Span, render_all};

/// What formatting did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Already in the canonical layout.
    Unchanged,
    /// Rewritten (or, with `check`, would be).
    Changed,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Formats the file at `path` in place, or with `check` only says whether
/// it would change. `Err` is the message to print: the rendered syntax
/// errors (as `netc check` prints them) or why the file cannot be read or
/// written; the file is then untouched.
pub fn format_file(path: &Path, check: bool) -> Result<Outcome, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        let d = Diagnostic::new(Code::MissingFile, None, format!("cannot read `{}`: {e}", path.display()));
        render_all(&[d], &Sources::default())
    })?;
    let (bom, formatted) = format_bytes(path, &bytes)?;
    let mut out = if bom { BOM.to_vec() } else { Vec::new() };
    out.extend_from_slice(formatted.as_bytes());
    if out == bytes {
        return Ok(Outcome::Unchanged);
    }
    if !check {
        write_atomically(path, &out).map_err(|e| format!("error: cannot write `{}`: {e}\n", path.display()))?;
    }
    Ok(Outcome::Changed)
}

/// The formatted text of a file's bytes, and whether they started with a
/// byte order mark (which is kept). Text that is not UTF-8 is refused as
/// `netc check` refuses it.
fn format_bytes(path: &Path, bytes: &[u8]) -> Result<(bool, String), String> {
    let bom = bytes.starts_with(BOM);
    let body = if bom { &bytes[BOM.len()..] } else { bytes };
    let mut sources = Sources::default();
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            let file = sources.add(path.to_path_buf(), String::from_utf8_lossy(body).into_owned());
            let d = Diagnostic::new(
                Code::Encoding,
                Loc { file, span: Span::new(at, at + '\u{FFFD}'.len_utf8()) },
                format!("byte 0x{:02X} is not UTF-8 text", body[at]),
            )
            .hint(
                "save the file as UTF-8; an editor set to Latin-1 or Windows-1252 writes bytes like this for `é` or `µ`",
            );
            return Err(render_all(&[d], &sources));
        }
    };
    match super::format_source(text) {
        Ok(formatted) => Ok((bom, formatted)),
        Err(errors) => {
            sources.add(path.to_path_buf(), text.to_string());
            Err(render_all(&errors, &sources))
        }
    }
}

/// Writes `bytes` to a temporary file beside `path` (with `path`'s
/// permissions), then renames it over `path`: a reader sees the old file
/// or the new one, never part of one. A symbolic link stays a link: the
/// file it points to is the one replaced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = &std::fs::canonicalize(path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or("spec".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.fmt-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// `netc fmt`: formats each file (or stdin to stdout for `-`), printing
/// the files that changed (with `check`: that would change) and the
/// errors of those that cannot be formatted. Returns the exit code: 1 when
/// any file has errors or, with `check`, would change; else 0.
pub fn command(files: &[PathBuf], check: bool) -> u8 {
    let mut failed = false;
    let mut changed = 0;
    for path in files {
        let result = if path.as_os_str() == "-" { stdin_to_stdout(check) } else { format_file(path, check) };
        let shown = if path.as_os_str() == "-" { "<stdin>".to_string() } else { path.display().to_string() };
        match result {
            Ok(Outcome::Unchanged) => {}
            Ok(Outcome::Changed) => {
                changed += 1;
                if check {
                    println!("would reformat: {shown}");
                } else if path.as_os_str() != "-" {
                    println!("formatted: {shown}");
                }
            }
            Err(message) => {
                failed = true;
                eprint!("{message}");
            }
        }
    }
    u8::from(failed || (check && changed > 0))
}

/// `-`: the text from stdin, formatted to stdout (with `check`, nothing is
/// printed but whether it would change). On errors nothing goes to stdout.
fn stdin_to_stdout(check: bool) -> Result<Outcome, String> {
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).map_err(|e| format!("error: cannot read stdin: {e}\n"))?;
    let (bom, formatted) = format_bytes(Path::new("<stdin>"), &bytes)?;
    let mut out = if bom { BOM.to_vec() } else { Vec::new() };
    out.extend_from_slice(formatted.as_bytes());
    if !check {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&out)
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("error: cannot write stdout: {e}\n"))?;
    }
    Ok(if out == bytes { Outcome::Unchanged } else { Outcome::Changed })
}
