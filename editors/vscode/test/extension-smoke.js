#!/usr/bin/env node
'use strict';
// Activates extension.js outside VS Code, with a stand-in for the `vscode`
// module (any property is a callable stub; settings and messages are
// recorded), twice:
//   1. netc.serverPath = test/fake-netc: the server is started as exactly
//      `<serverPath> lsp`, gets initialize, and shutdown on deactivate; no
//      message is shown.
//   2. netc.serverPath names no program: activation still succeeds (the
//      grammar needs no server) and a warning names the netc.serverPath setting.
// It does not show that VS Code itself loads the package; see README.md.

const fs = require('fs');
const os = require('os');
const path = require('path');
const Module = require('module');

const settings = {};
const messages = [];

function stub(name) {
  return new Proxy(function () {}, {
    get(_, prop) {
      if (prop === 'then') return undefined; // not a promise
      if (prop === 'version') return '1.82.0';
      if (prop === 'getConfiguration') {
        return (section) => ({
          get: (key, fallback) => (`${section}.${key}` in settings ? settings[`${section}.${key}`] : fallback),
          has: () => false,
          inspect: () => undefined,
        });
      }
      if (/^show(Warning|Error|Information)Message$/.test(String(prop))) {
        return (text) => {
          messages.push(`${String(prop)}: ${text}`);
          return Promise.resolve(undefined);
        };
      }
      return stub(`${name}.${String(prop)}`);
    },
    apply: () => stub(`${name}()`),
    construct: () => stub(`new ${name}`),
  });
}

const load = Module._load;
Module._load = function (request, ...rest) {
  return request === 'vscode' ? stub('vscode') : load.call(this, request, ...rest);
};
const extension = require('../extension.js');

function context() {
  return { subscriptions: [], extensionPath: path.resolve(__dirname, '..'), asAbsolutePath: (p) => p };
}

async function main() {
  const failures = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netc-ext-'));
  const logFile = path.join(tmp, 'server.log');
  process.env.NETC_FAKE_LOG = logFile;

  settings['netc.serverPath'] = path.join(__dirname, 'fake-netc');
  await extension.activate(context());
  await extension.deactivate();
  const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trim().split('\n') : [];
  // The exit notification may come after stop() returns, or the client may
  // end the process first: not checked.
  const seen = log.filter((line) => line !== 'method exit');
  const want = ['argv ["lsp"]', 'method initialize', 'method initialized', 'method shutdown'];
  if (JSON.stringify(seen) !== JSON.stringify(want)) {
    failures.push(`the server saw ${JSON.stringify(log)}, not ${JSON.stringify(want)}`);
  }
  if (messages.length) failures.push(`messages with a working server: ${JSON.stringify(messages)}`);

  messages.length = 0;
  settings['netc.serverPath'] = path.join(tmp, 'no-such-netc');
  await extension.activate(context());
  await extension.deactivate();
  if (!messages.some((m) => m.startsWith('showWarningMessage') && m.includes('netc.serverPath'))) {
    failures.push(`no warning naming netc.serverPath for a missing server: ${JSON.stringify(messages)}`);
  }

  fs.rmSync(tmp, { recursive: true, force: true });
  for (const f of failures) console.log(`FAIL extension: ${f}`);
  console.log(`extension smoke test: ${failures.length ? `${failures.length} failed` : 'starts `netc lsp`, survives a missing server'}`);
  process.exit(failures.length ? 1 : 0);
}

const timer = setTimeout(() => {
  console.log('FAIL extension: no answer in 20 s');
  process.exit(1);
}, 20000);
timer.unref();
main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
