//! `netc lsp`: a language server over stdio, on top of compile and its
//! source index. It reads no spec text of its own beyond what `syntax`
//! parses: diagnostics are `netc check`'s, shapes and counts are the Graph
//! IR's nodes, and [`crate::compile::Index`] says which place made which
//! node.
//!
//! The protocol runs on rust-analyzer's `lsp-server` (synchronous, one
//! thread; docs/decisions.md). [`Server`] holds the open documents and
//! answers messages; [`run`] connects it to stdin and stdout.

mod features;
mod model;
pub mod text;
pub mod transport;

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::{
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams, PublishDiagnosticsParams,
    TextDocumentContentChangeEvent, Uri,
};
use serde_json::json;

use crate::compile::{self, Analysis};
use crate::diag::Code;
use model::FileModel;
use text::LineIndex;

/// A compiled document: the analysis, and for each of its source files the
/// syntax model (when it parses) and line index.
pub struct Analyzed {
    pub analysis: Analysis,
    pub models: Vec<Option<FileModel>>,
    pub lines: Vec<LineIndex>,
}

impl Analyzed {
    fn new(analysis: Analysis) -> Self {
        let texts = analysis.sources.texts();
        let models = texts
            .iter()
            .enumerate()
            .map(|(id, t)| crate::syntax::parse(id, t).ok().map(|f| FileModel::new(&f, t)))
            .collect();
        let lines = texts.iter().map(|t| LineIndex::new(t)).collect();
        Analyzed { analysis, models, lines }
    }

    fn text(&self, file: usize) -> &str {
        &self.analysis.sources.get(file).text
    }

    fn path(&self, file: usize) -> &Path {
        &self.analysis.sources.get(file).path
    }

    /// The range of a place, without the whitespace that some spans end
    /// with (a binary expression's reaches the next token).
    fn range(&self, loc: crate::diag::Loc) -> lsp_types::Range {
        let text = self.text(loc.file);
        let start = text::floor_boundary(text, loc.span.start);
        let end = text::floor_boundary(text, loc.span.end.max(start));
        let end = start + text[start..end].trim_end().len();
        self.lines[loc.file].range(text, start, end)
    }
}

/// An open document.
struct Doc {
    /// The path `use`s resolve against (the URI's file, if it is one).
    path: PathBuf,
    text: String,
    version: i32,
    lines: LineIndex,
    /// `None` when the text or a file it uses changed since.
    analyzed: Option<Rc<Analyzed>>,
    /// The last analysis whose text parsed, for completion in a line
    /// being typed (which seldom parses).
    last_parsed: Option<Rc<Analyzed>>,
}

/// The server's state: open documents and the diagnostics last published.
#[derive(Default)]
pub struct Server {
    docs: BTreeMap<String, Doc>,
    published: HashMap<String, Vec<lsp_types::Diagnostic>>,
    outbox: Vec<Notification>,
}

/// Runs the server on stdin and stdout until the client says `exit`.
pub fn run() -> Result<(), String> {
    let (connection, writer) = transport::stdio();
    let served = serve(&connection);
    drop(connection);
    let written = match writer.join() {
        Ok(r) => r.map_err(|e| format!("lsp: {e}")),
        Err(_) => Err("lsp: the writer thread failed".to_string()),
    };
    served.and(written)
}

fn serve(connection: &Connection) -> Result<(), String> {
    // The protocol's states: before `initialize`, serving, after `shutdown`.
    // Messages out of place are answered with an error, never the end of
    // the session; only `exit` (or the end of the input) ends it.
    let mut initialized = false;
    let mut shut_down = false;
    let mut server = Server::default();
    while let Ok(msg) = connection.receiver.recv() {
        let mut next = Some(msg);
        // Take everything already waiting before publishing diagnostics, so
        // that a burst of edits is checked once.
        while let Some(msg) = next.take() {
            match msg {
                Message::Notification(n) if n.method == "exit" => return Ok(()),
                Message::Request(req) if req.method == "initialize" && !initialized => {
                    initialized = true;
                    let init = json!({
                        "capabilities": capabilities(),
                        "serverInfo": { "name": "netc", "version": env!("CARGO_PKG_VERSION") },
                    });
                    send(connection, Response::new_ok(req.id, init).into())?;
                }
                Message::Request(req) if !initialized || shut_down => {
                    let (code, state) = if shut_down {
                        (ErrorCode::InvalidRequest, "after `shutdown`")
                    } else {
                        (ErrorCode::ServerNotInitialized, "before `initialize`")
                    };
                    let message = format!("`{}` {state}", req.method);
                    send(connection, Response::new_err(req.id, code as i32, message).into())?;
                }
                Message::Request(req) if req.method == "shutdown" => {
                    shut_down = true;
                    send(connection, Response::new_ok(req.id, ()).into())?;
                }
                Message::Request(req) => {
                    let resp = server.request(req);
                    send(connection, resp.into())?;
                }
                Message::Notification(n) if n.method == transport::INVALID => {
                    if let Some(resp) = server.invalid(n) {
                        send(connection, resp.into())?;
                    }
                }
                Message::Notification(_) if !initialized || shut_down => {}
                Message::Notification(n) => server.notify(n),
                Message::Response(_) => {}
            }
            for n in server.take_outbox() {
                send(connection, n.into())?;
            }
            next = connection.receiver.try_recv().ok();
        }
        if initialized && !shut_down {
            server.publish_diagnostics();
        }
        for n in server.take_outbox() {
            send(connection, n.into())?;
        }
    }
    Ok(())
}

fn send(connection: &Connection, msg: Message) -> Result<(), String> {
    connection.sender.send(msg).map_err(|e| format!("lsp: {e}"))
}

/// What the server can do, for `initialize`.
pub fn capabilities() -> serde_json::Value {
    json!({
        "positionEncoding": "utf-16",
        "textDocumentSync": { "openClose": true, "change": 1, "save": true },
        "hoverProvider": true,
        "definitionProvider": true,
        "referencesProvider": true,
        "completionProvider": { "triggerCharacters": ["(", ",", ">", " "] },
        "inlayHintProvider": true,
        "documentSymbolProvider": true,
        "documentFormattingProvider": true,
    })
}

impl Server {
    /// Answers one request. Never panics: a handler that does is answered
    /// with an internal error, and the server keeps serving.
    pub fn request(&mut self, req: Request) -> Response {
        let id = req.id.clone();
        let method = req.method.clone();
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.dispatch(req))) {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err((code, message))) => Response::new_err(id, code as i32, message),
            Err(_) => Response::new_err(id, ErrorCode::InternalError as i32, format!("netc lsp failed on `{method}`")),
        }
    }

    fn dispatch(&mut self, req: Request) -> Result<serde_json::Value, (ErrorCode, String)> {
        use features as f;
        let p = req.params;
        let out = match req.method.as_str() {
            "textDocument/hover" => to_json(f::hover(self, params(p)?)),
            "textDocument/definition" => to_json(f::definition(self, params(p)?)),
            "textDocument/references" => to_json(f::references(self, params(p)?)),
            "textDocument/completion" => to_json(f::completion(self, params(p)?)),
            "textDocument/inlayHint" => to_json(f::inlay_hints(self, params(p)?)),
            "textDocument/documentSymbol" => to_json(f::document_symbols(self, params(p)?)),
            "textDocument/formatting" => to_json(f::formatting(self, params(p)?)),
            "shutdown" => Ok(serde_json::Value::Null),
            other => return Err((ErrorCode::MethodNotFound, format!("netc lsp does not handle `{other}`"))),
        };
        out.map_err(|message| (ErrorCode::InvalidParams, message))
    }

    /// Takes one notification. Edits that cannot apply (an unknown
    /// document, an older version) are dropped with a message to the
    /// client's log.
    pub fn notify(&mut self, n: Notification) {
        let method = n.method.clone();
        if std::panic::catch_unwind(AssertUnwindSafe(|| self.take_notification(n))).is_err() {
            self.log(format!("netc lsp failed on `{method}`"));
        }
    }

    fn take_notification(&mut self, n: Notification) {
        match n.method.as_str() {
            "textDocument/didOpen" => match serde_json::from_value::<DidOpenTextDocumentParams>(n.params) {
                Ok(p) => self.open(p.text_document.uri, p.text_document.version, p.text_document.text),
                Err(e) => self.log(format!("didOpen: {e}")),
            },
            "textDocument/didChange" => match serde_json::from_value::<DidChangeTextDocumentParams>(n.params) {
                Ok(p) => self.change(p),
                Err(e) => self.log(format!("didChange: {e}")),
            },
            "textDocument/didClose" => match serde_json::from_value::<DidCloseTextDocumentParams>(n.params) {
                Ok(p) => {
                    let key = p.text_document.uri.as_str().to_string();
                    if let Some(doc) = self.docs.remove(&key) {
                        self.invalidate(&doc.path);
                    }
                }
                Err(e) => self.log(format!("didClose: {e}")),
            },
            // A saved file may be `use`d by another open document.
            "textDocument/didSave" | "workspace/didChangeWatchedFiles" => {
                self.docs.values_mut().for_each(|d| d.analyzed = None)
            }
            _ => {} // `initialized`, `$/cancelRequest`, and what netc does not use.
        }
    }

    fn open(&mut self, uri: Uri, version: i32, text: String) {
        let key = uri.as_str().to_string();
        let path = text::uri_to_path(&key).unwrap_or_else(|| PathBuf::from(&key));
        let lines = LineIndex::new(&text);
        self.invalidate(&path);
        self.docs.insert(key, Doc { path, text, version, lines, analyzed: None, last_parsed: None });
    }

    fn change(&mut self, p: DidChangeTextDocumentParams) {
        let key = p.text_document.uri.as_str().to_string();
        let Some(doc) = self.docs.get_mut(&key) else {
            return self.log(format!("didChange for `{key}`, which is not open: ignored"));
        };
        if p.text_document.version <= doc.version {
            let (got, have) = (p.text_document.version, doc.version);
            return self.log(format!("didChange for `{key}` version {got}, but it is at {have}: ignored"));
        }
        for change in p.content_changes {
            apply_change(doc, change);
        }
        doc.version = p.text_document.version;
        let path = doc.path.clone();
        self.invalidate(&path);
    }

    /// The text at `path` changed: every document that reads it, or that
    /// misses a file, is checked again.
    fn invalidate(&mut self, path: &Path) {
        for doc in self.docs.values_mut() {
            let reads = doc.analyzed.as_ref().is_none_or(|a| {
                a.analysis.sources.find(path).is_some()
                    || a.analysis
                        .outcome
                        .as_ref()
                        .is_err_and(|ds| ds.iter().any(|d| matches!(d.code, Code::MissingFile | Code::UseCycle)))
            });
            if doc.path == path || reads {
                doc.analyzed = None;
            }
        }
    }

    /// The analysis of an open document, compiled now if it is stale.
    fn analyzed(&mut self, key: &str) -> Option<Rc<Analyzed>> {
        let doc = self.docs.get(key)?;
        if let Some(a) = &doc.analyzed {
            return Some(a.clone());
        }
        let docs = &self.docs;
        // `use`d files come from the editor's buffers when they are open.
        let reader = |p: &Path| match docs.values().find(|d| d.path == p) {
            Some(d) => Ok(d.text.as_bytes().to_vec()),
            None => crate::compile::read_file(p),
        };
        let analysis = compile::analyze(&doc.path, doc.text.clone(), &reader);
        let analyzed = Rc::new(Analyzed::new(analysis));
        let doc = self.docs.get_mut(key)?;
        if matches!(analyzed.models.first(), Some(Some(_))) {
            doc.last_parsed = Some(analyzed.clone());
        }
        doc.analyzed = Some(analyzed.clone());
        Some(analyzed)
    }

    /// The analyses that hold the document `key`: its own (as file 0),
    /// then those of the other open documents that `use` it.
    fn analyses_of(&mut self, key: &str) -> Vec<(Rc<Analyzed>, usize)> {
        let Some(path) = self.docs.get(key).map(|d| d.path.clone()) else { return Vec::new() };
        let mut out: Vec<(Rc<Analyzed>, usize)> = self.analyzed(key).map(|a| (a, 0)).into_iter().collect();
        let others: Vec<String> = self.docs.keys().filter(|k| *k != key).cloned().collect();
        for other in others {
            if let Some(a) = self.analyzed(&other)
                && let Some(file) = a.analysis.sources.find(&path)
                && file != 0
            {
                out.push((a, file));
            }
        }
        out
    }

    /// Checks every stale document and queues `publishDiagnostics` for
    /// each file whose diagnostics changed (all the files that open
    /// documents read, and those that no longer have any).
    pub fn publish_diagnostics(&mut self) {
        let keys: Vec<String> = self.docs.keys().cloned().collect();
        let mut by_uri: BTreeMap<String, Vec<lsp_types::Diagnostic>> = BTreeMap::new();
        // A file's diagnostics found from two documents are shown once.
        let mut seen = std::collections::HashSet::new();
        for key in &keys {
            let Some(a) = self.analyzed(key) else { continue };
            by_uri.entry(key.clone()).or_default();
            for (file, d) in features::diagnostics(&a) {
                let uri = self.uri_of(a.path(file));
                let (start, end) = (d.range.start, d.range.end);
                let place = (start.line, start.character, end.line, end.character);
                if seen.insert((uri.clone(), place, d.message.clone())) {
                    by_uri.entry(uri).or_default().push(d);
                }
            }
        }
        // Files that had diagnostics and now have none, or are closed.
        self.published.retain(|uri, diags| !diags.is_empty() || self.docs.contains_key(uri));
        for uri in self.published.keys() {
            by_uri.entry(uri.clone()).or_default();
        }
        for (uri, diags) in by_uri {
            if self.published.get(&uri) == Some(&diags) {
                continue;
            }
            let Ok(parsed) = uri.parse::<Uri>() else { continue };
            let version = self.docs.get(&uri).map(|d| d.version);
            let params = PublishDiagnosticsParams { uri: parsed, diagnostics: diags.clone(), version };
            self.outbox.push(Notification::new("textDocument/publishDiagnostics".into(), params));
            // Empty lists are kept for open documents, so that an idle
            // moment does not publish "no diagnostics" again.
            if diags.is_empty() && !self.docs.contains_key(&uri) {
                self.published.remove(&uri);
            } else {
                self.published.insert(uri, diags);
            }
        }
    }

    /// The URI of a source file: the open document's own, or a `file://`.
    fn uri_of(&self, path: &Path) -> String {
        match self.docs.iter().find(|(_, d)| d.path == path) {
            Some((key, _)) => key.clone(),
            None => text::path_to_uri(path),
        }
    }

    pub fn take_outbox(&mut self) -> Vec<Notification> {
        std::mem::take(&mut self.outbox)
    }

    /// A frame the transport could not read: an error reply if it had a
    /// request id, else a log message.
    fn invalid(&mut self, n: Notification) -> Option<Response> {
        let message = n.params["message"].as_str().unwrap_or("an unreadable message").to_string();
        match serde_json::from_value::<lsp_server::RequestId>(n.params["id"].clone()) {
            Ok(id) => Some(Response::new_err(id, ErrorCode::InvalidRequest as i32, message)),
            Err(_) => {
                self.log(format!("ignored {message}"));
                None
            }
        }
    }

    fn log(&mut self, message: String) {
        let params = json!({ "type": 3, "message": message });
        self.outbox.push(Notification::new("window/logMessage".into(), params));
    }
}

fn apply_change(doc: &mut Doc, change: TextDocumentContentChangeEvent) {
    match change.range {
        None => doc.text = change.text,
        Some(range) => {
            let start = doc.lines.offset(&doc.text, range.start);
            let end = doc.lines.offset(&doc.text, range.end).max(start);
            doc.text.replace_range(start..end, &change.text);
        }
    }
    doc.lines = LineIndex::new(&doc.text);
}

fn params<P: serde::de::DeserializeOwned>(p: serde_json::Value) -> Result<P, (ErrorCode, String)> {
    serde_json::from_value(p).map_err(|e| (ErrorCode::InvalidParams, format!("invalid parameters: {e}")))
}

fn to_json<T: serde::Serialize>(r: Result<T, String>) -> Result<serde_json::Value, String> {
    r.and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
}
