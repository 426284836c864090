'use strict';
// The netc extension: the grammar and language configuration are declared in
// package.json; this file only starts the language server, `netc lsp`, over
// stdio. Plain JavaScript, so there is no build step.

const os = require('os');
const path = require('path');
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

// netc.serverPath, with a leading `~/` made the home folder (no shell runs
// the command to do it).
function serverPath() {
  const configured = vscode.workspace.getConfiguration('netc').get('serverPath');
  const command = (typeof configured === 'string' && configured.trim()) || 'netc';
  return command.startsWith('~/') ? path.join(os.homedir(), command.slice(2)) : command;
}

async function startServer() {
  const command = serverPath();
  // No `transport` on purpose: the client then talks over the process's
  // stdin and stdout without adding `--stdio` to the arguments, so the server
  // runs as exactly `netc lsp`.
  const serverOptions = { command, args: ['lsp'] };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'netc' },
      { scheme: 'untitled', language: 'netc' },
    ],
  };
  try {
    client = new LanguageClient('netc', 'netc language server', serverOptions, clientOptions);
    await client.start();
  } catch (err) {
    // Highlighting does not need the server: say what failed and go on.
    client = undefined;
    const message = err && err.message ? err.message : String(err);
    vscode.window.showWarningMessage(
      `netc: could not start the language server \`${command} lsp\` (${message}). ` +
        'Set netc.serverPath to the netc executable; highlighting works without it.'
    );
  }
}

async function stopServer() {
  if (client) {
    const running = client;
    client = undefined;
    try {
      await running.stop();
    } catch (_) {
      // A server that already died has nothing to stop.
    }
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('netc.restartServer', async () => {
      await stopServer();
      await startServer();
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('netc.serverPath')) {
        await stopServer();
        await startServer();
      }
    })
  );
  await startServer();
}

function deactivate() {
  return stopServer();
}

module.exports = { activate, deactivate };
