#!/usr/bin/env bash
# The editor grammar (editors/vscode/syntaxes/netc.tmLanguage.json) still
# tokenises every spec in specs/ and specs/lib/ as its committed snapshots
# say, and a few scopes are what they should be (an op name, a named
# argument, a comment, a TOML key in the front matter). Runs the grammar
# through vscode-textmate and vscode-oniguruma, the engine VS Code uses.
# Then activates the extension outside VS Code against a fake server: it
# starts exactly `netc lsp` and survives a missing netc.
#
#   scripts/check_editor_grammar.sh            # exit 1 on any difference
#   scripts/check_editor_grammar.sh --update   # rewrite the snapshots instead
#
# Needs Node.js (tested with 20) and npm, which fetches the pinned packages of
# editors/vscode/package-lock.json (no install scripts run). Under a minute.
set -euo pipefail
cd "$(dirname "$0")/../editors/vscode"
command -v node >/dev/null || { echo "needs Node.js (node) and npm" >&2; exit 2; }
command -v npm >/dev/null || { echo "needs npm" >&2; exit 2; }
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
node test/tokenize.js "$@"
node test/extension-smoke.js
