// STUB: replaced by the fmt branch at merge
//! Placeholder for the formatter, which another branch writes. It returns
//! the text unchanged, so that `netc lsp`'s formatting handler has the
//! signature it will call.

/// Formats spec text. STUB: returns the text unchanged.
pub fn format_source(text: &str) -> Result<String, Vec<crate::diag::Diagnostic>> {
    Ok(text.to_string())
}
