//! The editor package's checks, run by `cargo test` where Node.js is
//! installed: the TextMate grammar tokenises every spec as its committed
//! snapshots say, and the VS Code extension starts `netc lsp`
//! (scripts/check_editor_grammar.sh; it fetches its pinned npm packages).

use std::process::Command;

#[test]
fn the_editor_grammar_tokenises_every_spec_as_its_snapshots_say() {
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !have("node") || !have("npm") {
        eprintln!("skipped: the editor grammar's check needs Node.js and npm");
        return;
    }
    let out = Command::new("bash").arg("scripts/check_editor_grammar.sh").output().expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/check_editor_grammar.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
