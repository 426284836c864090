#!/usr/bin/env node
'use strict';
// Tokenises every spec in specs/ and specs/lib/ with the TextMate grammar,
// through the same engine VS Code uses (vscode-textmate on vscode-oniguruma),
// and compares the tokens with the snapshots in test/snapshots/; then checks
// a few scopes by name; no token of a spec may be left bare (no scope but
// source.netc and meta.*) or invalid. Exit 1 on any difference or failed check.
//
//   node test/tokenize.js            # compare
//   node test/tokenize.js --update   # rewrite the snapshots (review the diff)
//
// The front matter's TOML is tokenised by the TOML grammar of tm-grammars
// (textmate/toml.tmbundle, the one GitHub uses), standing in for whatever
// TOML grammar an editor has.

const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const EXT = path.resolve(__dirname, '..');
const ROOT = path.resolve(EXT, '..', '..');
const SNAPSHOTS = path.join(__dirname, 'snapshots');
const GRAMMARS = {
  'source.netc': path.join(EXT, 'syntaxes', 'netc.tmLanguage.json'),
  'source.toml': require.resolve('tm-grammars/grammars/toml.json'),
};

async function loadGrammar() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) => {
      const file = GRAMMARS[scopeName];
      if (!file) return null;
      return vsctm.parseRawGrammar(fs.readFileSync(file, 'utf8'), file);
    },
  });
  const grammar = await registry.loadGrammar('source.netc');
  if (!grammar) throw new Error('source.netc did not load');
  return grammar;
}

// [{line, col, text, scopes}] for a whole file, 1-based line and column.
function tokenize(grammar, source) {
  const lines = source.replace(/^\uFEFF/, '').split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const tokens = [];
  let stack = vsctm.INITIAL;
  lines.forEach((line, i) => {
    const result = grammar.tokenizeLine(line, stack, 5000);
    if (result.stoppedEarly) throw new Error(`line ${i + 1}: tokenising took over 5 s`);
    for (const t of result.tokens) {
      const text = line.slice(t.startIndex, Math.min(t.endIndex, line.length));
      if (text === '') continue;
      tokens.push({ line: i + 1, col: t.startIndex + 1, text, scopes: t.scopes });
    }
    stack = result.ruleStack;
  });
  return tokens;
}

function render(relPath, tokens) {
  const out = [
    `# ${relPath}: one token a line, "line:col text scopes"; whitespace-only tokens left out.`,
    '# Regenerate with: node editors/vscode/test/tokenize.js --update',
  ];
  for (const t of tokens) {
    if (t.text.trim() === '') continue;
    out.push(`${t.line}:${t.col} ${JSON.stringify(t.text)} ${t.scopes.join(' ')}`);
  }
  return out.join('\n') + '\n';
}

function specFiles() {
  const files = [];
  for (const dir of ['specs', path.join('specs', 'lib')]) {
    for (const name of fs.readdirSync(path.join(ROOT, dir)).sort()) {
      if (name.endsWith('.net')) files.push(path.join(dir, name).split(path.sep).join('/'));
    }
  }
  return files;
}

// specs/ours.net -> ours.tokens.txt, specs/lib/attention.net -> lib.attention.tokens.txt
function snapshotName(relPath) {
  return relPath.replace(/^specs\//, '').replace(/\.net$/, '').replace(/\//g, '.') + '.tokens.txt';
}

function firstDifference(expected, actual) {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      const lines = [`  first difference at snapshot line ${i + 1}:`];
      if (a[i] !== undefined) lines.push(`  - ${a[i]}`);
      if (b[i] !== undefined) lines.push(`  + ${b[i]}`);
      return lines.join('\n');
    }
  }
  return '';
}

function checkSnapshots(grammar, update) {
  let failures = 0;
  const expectedNames = new Set();
  for (const rel of specFiles()) {
    const name = snapshotName(rel);
    if (expectedNames.has(name)) throw new Error(`two specs map to snapshot ${name}`);
    expectedNames.add(name);
    const tokens = tokenize(grammar, fs.readFileSync(path.join(ROOT, rel), 'utf8'));
    // Whatever the snapshot says, a spec that netc accepts has no text the
    // grammar leaves bare or calls invalid.
    for (const t of tokens) {
      if (t.text.trim() === '') continue;
      // (The TOML grammar's own gaps, like the dot of [profile.quick], are not ours.)
      const toml = t.scopes.includes('meta.embedded.block.toml');
      const bare = !toml && t.scopes.every((s) => s === 'source.netc' || s.startsWith('meta.'));
      const invalid = t.scopes.some((s) => s.startsWith('invalid.'));
      if (bare || invalid) {
        failures++;
        console.log(`FAIL ${rel}:${t.line}:${t.col} ${JSON.stringify(t.text)} is ${bare ? 'unscoped' : 'invalid'}: ${t.scopes.join(' ')}`);
      }
    }
    const actual = render(rel, tokens);
    const file = path.join(SNAPSHOTS, name);
    const expected = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (expected === actual) continue;
    if (update) {
      fs.mkdirSync(SNAPSHOTS, { recursive: true });
      fs.writeFileSync(file, actual);
      console.log(`updated ${path.relative(ROOT, file)}`);
    } else if (expected === null) {
      failures++;
      console.log(`FAIL ${rel}: no snapshot ${path.relative(ROOT, file)} (run with --update)`);
    } else {
      failures++;
      console.log(`FAIL ${rel}: tokens differ from ${path.relative(ROOT, file)}`);
      console.log(firstDifference(expected, actual));
    }
  }
  if (fs.existsSync(SNAPSHOTS)) {
    for (const name of fs.readdirSync(SNAPSHOTS).sort()) {
      if (!name.endsWith('.tokens.txt') || expectedNames.has(name)) continue;
      if (update) {
        fs.unlinkSync(path.join(SNAPSHOTS, name));
        console.log(`removed stale snapshot ${name}`);
      } else {
        failures++;
        console.log(`FAIL snapshot ${name} has no spec (run with --update to remove it)`);
      }
    }
  }
  return { failures, count: expectedNames.size };
}

// Each check: a source, the line that holds the token (its first line
// containing `line`), the token's text (its first occurrence on that line at
// or after `line`'s start), the scope it must have, and scopes it must not.
const CHECKS = [
  {
    what: 'an op name in a pipe call',
    src: 'net n {\n    input x: [3, 8, 8]\n    y = x |> conv(64)\n    return y\n}\n',
    line: 'x |> conv(64)', token: 'conv', scope: 'support.function.op.netc',
  },
  {
    what: 'the pipe operator',
    src: 'net n {\n    y = x |> conv(64)\n}\n',
    line: 'x |> conv', token: '|>', scope: 'keyword.operator.pipe.netc',
  },
  {
    what: 'a named argument',
    src: 'net n {\n    y = conv_bn(x, 64, k = 3)\n}\n',
    line: 'k = 3', token: 'k', scope: 'variable.parameter.named-argument.netc',
  },
  {
    what: 'a named argument on a continued pipe line',
    src: 'block m(a, like) {\n    return a |> upsample(like = like, mode = bilinear)\n             |> conv(1, pad = same)\n}\n',
    line: 'pad = same', token: 'pad', scope: 'variable.parameter.named-argument.netc',
  },
  {
    what: 'a comment',
    src: '# a comment: net block use\nnet n {\n}\n',
    line: '# a comment', token: ' a comment: net block use', scope: 'comment.line.number-sign.netc',
  },
  {
    what: 'a comment after code',
    src: 'net n {\n    y = x |> relu   # 112\n}\n',
    line: '# 112', token: ' 112', scope: 'comment.line.number-sign.netc',
  },
  {
    what: 'a TOML key in the front matter',
    src: '+++\n[train]\nepochs = 200\n+++\n\nnet n {\n}\n',
    line: 'epochs', token: 'epochs', scope: 'variable.other.key.toml', also: ['meta.embedded.block.toml'],
  },
  {
    what: 'a TOML table in the front matter',
    src: '+++\n[profile.quick]\nepochs = 2\n+++\n',
    line: '[profile', token: 'quick', scope: 'entity.name.section.toml',
  },
  {
    what: 'the front matter ends at +++ even inside an unclosed TOML array',
    src: '+++\nlist = [1,\n+++\nnet n {\n}\n',
    line: 'net n', token: 'net', scope: 'storage.type.net.netc', not: ['meta.frontmatter.netc', 'meta.embedded.block.toml'],
  },
  {
    what: 'a block name at its definition',
    src: 'block conv_bn(x, c, k = 1) {\n    return x |> conv(c, k)\n}\n',
    line: 'block', token: 'conv_bn', scope: 'entity.name.function.block.netc',
  },
  {
    what: 'a parameter',
    src: 'block conv_bn(x, c, k = 1) {\n    return x |> conv(c, k)\n}\n',
    line: 'block', token: 'k', scope: 'variable.parameter.netc',
  },
  {
    what: 'a name in a default value is a reference, not a parameter',
    src: 'block f(x, c, mid = c / 4) {\n    return x\n}\n',
    line: 'c / 4', token: 'c', scope: 'variable.other.netc', not: ['variable.parameter.netc'],
  },
  {
    what: 'a block name on the line after `block`',
    src: 'block   # the stem\n  stem(x) {\n    return x\n}\n',
    line: 'stem(x)', token: 'stem', scope: 'entity.name.function.block.netc',
  },
  {
    what: 'a keyword after a nameless `block` (mid-edit) stays a keyword',
    src: 'block\nnet n {\n}\n',
    line: 'net n', token: 'n', scope: 'entity.name.type.net.netc',
  },
  {
    what: 'a net name at its definition',
    src: 'net ours(classes = 10, width = 1.0) {\n    input x: [3, 32, 32]\n    return x\n}\n',
    line: 'net ours', token: 'ours', scope: 'entity.name.type.net.netc',
  },
  {
    what: 'the net keyword',
    src: 'net ours {\n}\n',
    line: 'net ours', token: 'net', scope: 'storage.type.net.netc',
  },
  {
    what: 'the input keyword',
    src: 'net n {\n    input x: [3, 32, 32]\n}\n',
    line: 'input', token: 'input', scope: 'keyword.other.input.netc',
  },
  {
    what: 'a probe name',
    src: 'net n {\n    probe mid = a4\n}\n',
    line: 'probe', token: 'mid', scope: 'variable.other.definition.probe.netc',
  },
  {
    what: 'an assignment target',
    src: 'net n {\n    stem = conv_bn(x, 192 * width, k = 3)\n}\n',
    line: 'stem', token: 'stem', scope: 'variable.other.definition.netc',
  },
  {
    what: 'a block call',
    src: 'net n {\n    stem = conv_bn(x, 192 * width, k = 3)\n}\n',
    line: 'stem', token: 'conv_bn', scope: 'entity.name.function.call.netc',
  },
  {
    what: 'a block as a pipe stage without arguments',
    src: 'net n {\n    m = x |> mask_head |> sigmoid\n}\n',
    line: 'm =', token: 'mask_head', scope: 'entity.name.function.call.netc',
  },
  {
    what: 'the repeat keyword',
    src: 'net n {\n    y = x |> repeat(3) unit(256)\n}\n',
    line: 'repeat', token: 'repeat', scope: 'keyword.control.repeat.netc',
  },
  {
    what: 'the block that repeat applies',
    src: 'net n {\n    y = x |> repeat(3) unit(256)\n}\n',
    line: 'repeat', token: 'unit', scope: 'entity.name.function.call.netc',
  },
  {
    what: 'a named argument of the block that repeat applies',
    src: 'net n {\n    y = x |> repeat(3) unit(c = 256)\n}\n',
    line: 'repeat', token: 'c', scope: 'variable.parameter.named-argument.netc',
  },
  {
    what: 'repeat of a block without arguments',
    src: 'net n {\n    y = x |> repeat(2) residual\n}\n',
    line: 'repeat', token: 'residual', scope: 'entity.name.function.call.netc',
  },
  {
    what: 'a number with an exponent is one token',
    src: 'net n {\n    y = x * 5e-4\n}\n',
    line: 'y =', token: '5e-4', scope: 'constant.numeric.decimal.netc',
  },
  {
    what: 'a decimal number',
    src: 'net n(width = 1.0) {\n}\n',
    line: 'net', token: '1.0', scope: 'constant.numeric.decimal.netc',
  },
  {
    what: 'a setting word',
    src: 'net n {\n    y = upsample(x, like = z, mode = bilinear)\n}\n',
    line: 'y =', token: 'bilinear', scope: 'constant.language.setting.netc',
  },
  {
    what: 'a boolean',
    src: 'net n {\n    y = conv(x, 8, bias = false)\n}\n',
    line: 'y =', token: 'false', scope: 'constant.language.boolean.netc',
  },
  {
    what: 'the use keyword',
    src: 'use "lib/inception.net"\n',
    line: 'use', token: 'use', scope: 'keyword.control.import.netc',
  },
  {
    what: 'the use path',
    src: 'use "lib/inception.net"\n',
    line: 'use', token: 'lib/inception.net', scope: 'string.quoted.double.netc',
  },
  {
    what: 'a name that starts with a keyword is a name',
    src: 'net n {\n    return_1 = input_x |> netblock\n}\n',
    line: 'return_1', token: 'input_x', scope: 'variable.other.netc',
  },
  {
    what: 'a stray character is marked, as netc rejects it',
    src: 'net n {\n    y = conv(x, 64, 3);\n}\n',
    line: 'y =', token: ';', scope: 'invalid.illegal.character.netc',
  },
  {
    what: 'the return keyword',
    src: 'net n {\n    return (a + b) |> relu\n}\n',
    line: 'return', token: 'return', scope: 'keyword.control.return.netc', not: ['entity.name.function.call.netc'],
  },
];

function runChecks(grammar) {
  let failures = 0;
  for (const c of CHECKS) {
    const tokens = tokenize(grammar, c.src);
    const lines = c.src.split('\n');
    const lineIndex = lines.findIndex((l) => l.includes(c.line));
    const from = lineIndex >= 0 ? lines[lineIndex].indexOf(c.line) + 1 : 0;
    const token = tokens.find((t) => t.line === lineIndex + 1 && t.col >= from && t.text === c.token);
    const want = [c.scope, ...(c.also || [])];
    let problem = null;
    if (!token) problem = `no token ${JSON.stringify(c.token)} on line ${lineIndex + 1}`;
    else if (!want.every((s) => token.scopes.includes(s))) problem = `scopes are ${token.scopes.join(' ')}`;
    else if ((c.not || []).some((s) => token.scopes.includes(s))) problem = `scopes are ${token.scopes.join(' ')}`;
    if (problem) {
      failures++;
      console.log(`FAIL ${c.what}: ${JSON.stringify(c.token)} should have ${want.join(', ')}` +
        `${c.not ? ` and not ${c.not.join(', ')}` : ''}; ${problem}`);
    }
  }
  return { failures, count: CHECKS.length };
}

async function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--update');
  if (unknown.length) {
    console.error(`usage: node test/tokenize.js [--update]   (unknown: ${unknown.join(' ')})`);
    process.exit(2);
  }
  const grammar = await loadGrammar();
  const snapshots = checkSnapshots(grammar, args.includes('--update'));
  const checks = runChecks(grammar);
  const failures = snapshots.failures + checks.failures;
  console.log(`${snapshots.count} spec snapshots, ${checks.count} scope checks: ` +
    (failures ? `${failures} failed` : 'all pass'));
  process.exit(failures ? 1 : 0);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
