//! `netc lsp` driven over stdio the way an editor drives it: framed JSON-RPC
//! in, framed replies out. Replies are snapshots in `snapshots/lsp/`, with
//! the checkout's absolute path written as `ROOT`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::{Value, json};

/// Long enough for a debug build on a busy machine; a hang fails the test.
const PATIENCE: Duration = Duration::from_secs(60);

struct Client {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Value>,
    next_id: i64,
    /// Notifications that arrived while waiting for something else.
    pending: Vec<Value>,
}

/// `netc lsp` with its stdin and stdout piped to the test.
fn spawn_server() -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("netc lsp starts")
}

impl Client {
    fn start() -> Client {
        let mut child = spawn_server();
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, replies) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(msg) = read_message(&mut r) {
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let mut c = Client { child, stdin, replies, next_id: 0, pending: Vec::new() };
        let init = c.request("initialize", json!({ "processId": null, "rootUri": null, "capabilities": {} }));
        assert!(init["result"]["capabilities"]["hoverProvider"] == true, "{init}");
        c.notify("initialized", json!({}));
        c
    }

    fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write to netc lsp");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let msg = self.recv();
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return msg;
            }
            self.pending.push(msg);
        }
    }

    fn recv(&mut self) -> Value {
        match self.replies.recv_timeout(PATIENCE) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("netc lsp did not answer within {PATIENCE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("netc lsp closed its output"),
        }
    }

    /// The diagnostics published for `uri` at the document's `version`
    /// (`None` for a file that is not open).
    fn diagnostics(&mut self, uri: &str, version: Option<i64>) -> Value {
        let wanted = |m: &Value| is_diagnostics_for(m, uri) && m["params"]["version"] == json!(version);
        if let Some(i) = self.pending.iter().position(wanted) {
            return self.pending.remove(i)["params"].clone();
        }
        loop {
            let msg = self.recv();
            if wanted(&msg) {
                return msg["params"].clone();
            }
            self.pending.push(msg);
        }
    }

    fn open(&mut self, uri: &str, text: &str) {
        let doc = json!({ "uri": uri, "languageId": "netc", "version": 1, "text": text });
        self.notify("textDocument/didOpen", json!({ "textDocument": doc }));
    }

    fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        let pos = json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
        self.request(method, pos)
    }

    /// Shuts the server down as an editor does; it must exit cleanly.
    fn finish(mut self) {
        let reply = self.request("shutdown", Value::Null);
        assert_eq!(reply["result"], Value::Null, "{reply}");
        self.notify("exit", Value::Null);
        let status = self.child.wait().expect("netc lsp exits");
        assert!(status.success(), "netc lsp exited with {status}");
    }
}

fn is_diagnostics_for(msg: &Value, uri: &str) -> bool {
    msg["method"] == "textDocument/publishDiagnostics" && msg["params"]["uri"] == uri
}

fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn uri(path: &Path) -> String {
    netc::lsp::text::path_to_uri(path)
}

fn fixture(name: &str) -> (String, String) {
    let path = root().join("tests/lsp").join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    (uri(&path), text)
}

/// Pretty JSON with the checkout's path replaced, for snapshots.
fn shown(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).expect("json");
    text.replace(&uri(&root()), "file:///ROOT").replace(&root().display().to_string(), "ROOT")
}

/// A reply as a snapshot, without the envelope (`jsonrpc`, the request's
/// number), so that adding a request does not change the others.
fn snapshot(name: &str, v: &Value) {
    let mut v = v.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("jsonrpc");
        map.remove("id");
    }
    common::snapshots("lsp").bind(|| insta::assert_snapshot!(name, shown(&v)));
}

#[test]
fn an_editor_session_on_a_spec_and_its_library() {
    let mut c = Client::start();
    let (main, text) = fixture("main.net");
    c.open(&main, &text);
    let diags = c.diagnostics(&main, Some(1));
    assert_eq!(diags["diagnostics"], json!([]), "main.net is clean: {diags}");

    // Hover: an assignment's name, a name read later, a block call, an op
    // call, a probe, a `use`.
    snapshot("hover_assignment", &c.at("textDocument/hover", &main, 4, 5));
    snapshot("hover_read", &c.at("textDocument/hover", &main, 6, 14));
    snapshot("hover_block_call", &c.at("textDocument/hover", &main, 4, 13));
    snapshot("hover_repeat", &c.at("textDocument/hover", &main, 5, 30));
    snapshot("hover_op_call", &c.at("textDocument/hover", &main, 6, 22));
    snapshot("hover_probe", &c.at("textDocument/hover", &main, 7, 11));
    snapshot("hover_param", &c.at("textDocument/hover", &main, 4, 28));
    snapshot("hover_net", &c.at("textDocument/hover", &main, 2, 5));

    // Requests do not publish the same diagnostics again.
    let again = c.pending.iter().filter(|m| is_diagnostics_for(m, &main)).count();
    assert_eq!(again, 0, "{:?}", c.pending);

    // Definitions: a block in the `use`d file, the `use` path, a value.
    snapshot("definition_block", &c.at("textDocument/definition", &main, 4, 13));
    snapshot("definition_use", &c.at("textDocument/definition", &main, 0, 6));
    snapshot("definition_value", &c.at("textDocument/definition", &main, 6, 14));

    let refs = json!({
        "textDocument": { "uri": main }, "position": { "line": 6, "character": 5 },
        "context": { "includeDeclaration": true }
    });
    snapshot("references_value", &c.request("textDocument/references", refs));

    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 20, "character": 0 } });
    let hints = c.request("textDocument/inlayHint", json!({ "textDocument": { "uri": main }, "range": range }));
    snapshot("inlay_hints", &hints);
    let symbols = c.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": main } }));
    snapshot("document_symbols", &symbols);
    let format = json!({ "textDocument": { "uri": main }, "options": { "tabSize": 4, "insertSpaces": true } });
    let formatted = c.request("textDocument/formatting", format);
    assert!(formatted["result"].is_array(), "{formatted}");

    // Typing: a line that does not parse yet. Completion after `|>` offers
    // ops and blocks; inside a call, its keyword arguments and the names
    // in scope.
    let typing = text.replace("    return logits\n", "    t = logits |> \n    return logits\n");
    let change = json!({
        "textDocument": { "uri": main, "version": 2 },
        "contentChanges": [{ "text": typing }]
    });
    c.notify("textDocument/didChange", change);
    let diags = c.diagnostics(&main, Some(2));
    assert_eq!(diags["diagnostics"][0]["code"], "E0001", "{diags}");
    snapshot("completion_stage", &labels(&c.at("textDocument/completion", &main, 9, 18)));
    let typing = text.replace("    return logits\n", "    t = conv_bn(pooled, 8, \n    return logits\n");
    let change = json!({
        "textDocument": { "uri": main, "version": 3 },
        "contentChanges": [{ "text": typing }]
    });
    c.notify("textDocument/didChange", change);
    snapshot("completion_block_arguments", &labels(&c.at("textDocument/completion", &main, 9, 27)));

    // An edit that introduces a shape error: its diagnostic has netc
    // check's code, message and hint.
    let bad = text.replace("maxpool(2)", "maxpool(64)");
    let change = json!({
        "textDocument": { "uri": main, "version": 4 },
        "contentChanges": [{ "text": bad }]
    });
    c.notify("textDocument/didChange", change);
    snapshot("diagnostics_after_edit", &c.diagnostics(&main, Some(4)));
    c.finish();
}

/// A completion reply, as the labels and details offered.
fn labels(reply: &Value) -> Value {
    let items = reply["result"].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    Value::Array(items.iter().map(|i| json!(format!("{} — {}", text(&i["label"]), text(&i["detail"])))).collect())
}

#[test]
fn a_spec_with_errors_still_has_hover_and_hints_on_what_compiled() {
    let mut c = Client::start();
    let (broken, text) = fixture("broken.net");
    c.open(&broken, &text);
    snapshot("broken_diagnostics", &c.diagnostics(&broken, Some(1)));
    snapshot("broken_hover", &c.at("textDocument/hover", &broken, 7, 6));
    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 20, "character": 0 } });
    let hints = c.request("textDocument/inlayHint", json!({ "textDocument": { "uri": broken }, "range": range }));
    snapshot("broken_inlay_hints", &hints);
    c.finish();
}

#[test]
fn unsaved_text_of_an_open_library_is_what_the_spec_uses() {
    let mut c = Client::start();
    let (main, text) = fixture("main.net");
    let (lib, lib_text) = fixture("lib.net");
    c.open(&lib, &lib_text);
    c.open(&main, &text);
    assert_eq!(c.diagnostics(&main, Some(1))["diagnostics"], json!([]));
    // A library on its own instantiates nothing: its hover and hints come
    // from the open spec that uses it, one entry per block instance.
    snapshot("library_hover_from_spec", &c.at("textDocument/hover", &lib, 7, 4));
    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 20, "character": 0 } });
    let hints = c.request("textDocument/inlayHint", json!({ "textDocument": { "uri": lib }, "range": range }));
    snapshot("library_inlay_hints_from_spec", &hints);
    // References of a block from its definition: its calls in the library
    // and in the open spec that uses it.
    snapshot("library_hover_block_definition", &c.at("textDocument/hover", &lib, 2, 8));
    let refs = json!({
        "textDocument": { "uri": lib }, "position": { "line": 2, "character": 8 },
        "context": { "includeDeclaration": true }
    });
    snapshot("library_block_references", &c.request("textDocument/references", refs));
    // Renaming a block in the open library, unsaved, breaks the spec that
    // calls it: the spec reads the buffer, not the file on disk.
    let edited = lib_text.replace("block unit(x, c)", "block unit2(x, c)");
    let change = json!({ "textDocument": { "uri": lib, "version": 2 }, "contentChanges": [{ "text": edited }] });
    c.notify("textDocument/didChange", change);
    let diags = c.diagnostics(&main, Some(1));
    assert_eq!(diags["diagnostics"][0]["code"], "E0103", "{diags}");
    assert!(diags["diagnostics"][0]["message"].as_str().unwrap().contains("unit"), "{diags}");
    c.finish();
}

#[test]
fn hostile_input_gets_diagnostics_or_errors_and_the_server_keeps_serving() {
    let dir = std::env::temp_dir().join(format!("netc-lsp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut c = Client::start();

    // A `use`d file that is not UTF-8.
    std::fs::write(dir.join("latin1.net"), b"block f(x) {\n    # caf\xe9\n    return x\n}\n").expect("write");
    let spec = dir.join("uses_latin1.net");
    let text = "use \"latin1.net\"\n\nnet n() {\n    input x: [3, 8, 8]\n    return x |> gap |> linear(2)\n}\n";
    c.open(&uri(&spec), text);
    let diags = c.diagnostics(&uri(&dir.join("latin1.net")), None);
    assert_eq!(diags["diagnostics"][0]["code"], "E0006", "{diags}");

    // `use`s of a device, of the server's own input, of a folder: each a
    // located error, and nothing is read from them.
    let devices = dir.join("devices.net");
    let text =
        "use \"/dev/zero\"\nuse \"/dev/stdin\"\nuse \"/tmp\"\n\nnet n() {\n    input x: [3, 8, 8]\n    return x\n}\n";
    c.open(&uri(&devices), text);
    let diags = c.diagnostics(&uri(&devices), Some(1));
    let codes: Vec<&Value> = diags["diagnostics"].as_array().unwrap().iter().map(|d| &d["code"]).collect();
    assert_eq!(codes, [&json!("E0003"), &json!("E0003"), &json!("E0003")], "{diags}");

    // A `use` cycle.
    let (cycle, cycle_text) = fixture("cycle_a.net");
    c.open(&cycle, &cycle_text);
    let (cycle_b, _) = fixture("cycle_b.net");
    let diags = c.diagnostics(&cycle_b, None);
    assert_eq!(diags["diagnostics"][0]["code"], "E0004", "{diags}");

    // A 20,000-line file: diagnostics and hover still come.
    let mut big = String::from("net big() {\n    input x: [3, 8, 8]\n    y0 = x |> relu\n");
    for i in 1..20_000 {
        big.push_str(&format!("    y{i} = y{} |> relu\n", i - 1));
    }
    big.push_str("    return y19999 |> gap |> linear(2)\n}\n");
    let big_uri = uri(&dir.join("big.net"));
    c.open(&big_uri, &big);
    let diags = c.diagnostics(&big_uri, Some(1));
    assert_eq!(diags["diagnostics"], json!([]), "{diags}");
    let hover = c.at("textDocument/hover", &big_uri, 15_000, 5);
    assert!(hover["result"]["contents"]["value"].as_str().unwrap().contains("[3, 8, 8]"), "{hover}");

    // Edits out of order, and for a document that is not open.
    let stale = json!({ "textDocument": { "uri": big_uri, "version": 0 }, "contentChanges": [{ "text": "garbage(" }] });
    c.notify("textDocument/didChange", stale);
    let unknown = uri(&dir.join("never_opened.net"));
    let change = json!({ "textDocument": { "uri": unknown, "version": 5 }, "contentChanges": [{ "text": "x" }] });
    c.notify("textDocument/didChange", change);
    let ranged = json!({
        "textDocument": { "uri": big_uri, "version": 9 },
        "contentChanges": [{ "range": { "start": { "line": 99_999, "character": 7 }, "end": { "line": 0, "character": 0 } }, "text": "" }]
    });
    c.notify("textDocument/didChange", ranged);
    let hover = c.at("textDocument/hover", &big_uri, 2, 5);
    assert!(hover["result"]["contents"]["value"].as_str().unwrap().contains("y0"), "{hover}");
    let reply = c.at("textDocument/hover", &unknown, 0, 0);
    assert!(reply["error"]["code"].is_i64(), "{reply}");

    // Unknown methods, bad parameters, positions far outside the text.
    let reply = c.request("netc/unknown", json!({}));
    assert_eq!(reply["error"]["code"], -32601, "{reply}");
    c.notify("netc/unknownNotification", json!({ "anything": [1, 2] }));
    let reply = c.request("textDocument/hover", json!({ "nonsense": true }));
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    let reply = c.at("textDocument/hover", &big_uri, 4_000_000_000, 4_000_000_000);
    assert!(reply.get("result").is_some(), "{reply}");
    let reply = c.at("textDocument/completion", &big_uri, 0, 4_000_000_000);
    assert!(reply["result"].is_array(), "{reply}");

    // Still serving.
    let symbols = c.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": cycle } }));
    assert_eq!(symbols["result"][0]["name"], "a", "{symbols}");
    c.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every bad spec gets, in the editor, what `netc check` prints: the same
/// codes, messages, hints and places.
#[test]
fn diagnostics_are_those_of_netc_check() {
    use lsp_server::Notification;
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("tests/bad")).expect("tests/bad") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "net") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let expected: Vec<String> = match netc::compile::check_file(&path) {
            Ok(_) => Vec::new(),
            Err(f) => f
                .diagnostics
                .iter()
                .map(|d| {
                    let (file, line, col) = d.loc.map_or((path.clone(), 1, 1), |l| {
                        let (line, col) = f.sources.line_col(l.file, l.span.start);
                        (f.sources.get(l.file).path.clone(), line, col)
                    });
                    let hint = d.hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default();
                    format!("{}:{line}:{col} {} {}{hint}", uri(&file), d.code.as_str(), d.message)
                })
                .collect(),
        };
        let mut server = netc::lsp::Server::default();
        let doc = json!({ "uri": uri(&path), "languageId": "netc", "version": 1, "text": text });
        server.notify(Notification::new("textDocument/didOpen".into(), json!({ "textDocument": doc })));
        server.publish_diagnostics();
        let mut got: Vec<String> = server
            .take_outbox()
            .iter()
            .flat_map(|n| {
                let uri = n.params["uri"].as_str().unwrap_or("").to_string();
                n.params["diagnostics"].as_array().cloned().unwrap_or_default().into_iter().map(move |d| {
                    let start = &d["range"]["start"];
                    format!(
                        "{uri}:{}:{} {} {}",
                        start["line"].as_u64().unwrap() + 1,
                        start["character"].as_u64().unwrap() + 1,
                        d["code"].as_str().unwrap(),
                        d["message"].as_str().unwrap()
                    )
                })
            })
            .collect();
        let mut expected = expected;
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} bad specs");
}

/// Every request at every few characters of every paper spec, library and
/// bad spec (and a mangled copy of each) is answered without an internal
/// error (a handler that panicked).
#[test]
fn every_request_anywhere_in_every_spec_is_answered() {
    use lsp_server::{Notification, Request, RequestId};
    let mut files = Vec::new();
    for dir in ["specs", "specs/lib", "tests/bad", "tests/lsp"] {
        for entry in std::fs::read_dir(root().join(dir)).expect("folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "net") {
                files.push(path);
            }
        }
    }
    let mut asked = 0;
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        // The text, and the text cut off in the middle of a line.
        let cut: String = text.chars().take(text.chars().count() * 2 / 3).collect();
        for (version, text) in [(1, text), (2, cut)] {
            let mut server = netc::lsp::Server::default();
            let doc = json!({ "uri": uri(&path), "languageId": "netc", "version": version, "text": text });
            server.notify(Notification::new("textDocument/didOpen".into(), json!({ "textDocument": doc })));
            server.publish_diagnostics();
            let lines: Vec<&str> = text.lines().collect();
            for (line, l) in lines.iter().enumerate() {
                for character in (0..=l.chars().count() + 1).step_by(3) {
                    let td = json!({ "uri": uri(&path) });
                    let pos = json!({ "line": line, "character": character });
                    for (method, params) in [
                        ("textDocument/hover", json!({ "textDocument": td, "position": pos })),
                        ("textDocument/definition", json!({ "textDocument": td, "position": pos })),
                        ("textDocument/completion", json!({ "textDocument": td, "position": pos })),
                        (
                            "textDocument/references",
                            json!({ "textDocument": td, "position": pos, "context": { "includeDeclaration": true } }),
                        ),
                    ] {
                        let reply = server.request(Request::new(RequestId::from(1), method.into(), params));
                        assert!(reply.response_result.is_ok(), "{method} at {line}:{character} of {}", path.display());
                        asked += 1;
                    }
                }
            }
            let whole =
                json!({ "start": { "line": 0, "character": 0 }, "end": { "line": lines.len() + 1, "character": 0 } });
            for (method, params) in [
                ("textDocument/inlayHint", json!({ "textDocument": { "uri": uri(&path) }, "range": whole })),
                ("textDocument/documentSymbol", json!({ "textDocument": { "uri": uri(&path) } })),
                (
                    "textDocument/formatting",
                    json!({ "textDocument": { "uri": uri(&path) }, "options": { "tabSize": 4, "insertSpaces": true } }),
                ),
            ] {
                let reply = server.request(Request::new(RequestId::from(2), method.into(), params));
                assert!(reply.response_result.is_ok(), "{method} on {}: {:?}", path.display(), reply.response_result);
            }
        }
    }
    assert!(asked > 10_000, "only {asked} requests");
}

/// A 20,000-line spec with an error on every line, and its shape hints:
/// answered, and quickly enough that nothing is quadratic.
#[test]
fn a_file_of_twenty_thousand_errors_and_hints_is_answered_quickly() {
    use lsp_server::{Notification, Request, RequestId};
    let mut text = String::from("net big() {\n    input x: [3, 8, 8]\n    y0 = x |> relu\n");
    for i in 1..20_000 {
        text.push_str(&format!("    y{i} = y{} |> relu |> nope{i}\n", i - 1));
    }
    text.push_str("    return y0 |> gap |> linear(2)\n}\n");
    let path = std::env::temp_dir().join("netc-lsp-errors.net");
    let start = std::time::Instant::now();
    let mut server = netc::lsp::Server::default();
    let doc = json!({ "uri": uri(&path), "languageId": "netc", "version": 1, "text": text });
    server.notify(Notification::new("textDocument/didOpen".into(), json!({ "textDocument": doc })));
    server.publish_diagnostics();
    let published = server.take_outbox();
    let n = published[0].params["diagnostics"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 19_999, "one unknown op per line");
    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 30_000, "character": 0 } });
    let params = json!({ "textDocument": { "uri": uri(&path) }, "range": range });
    let reply = server.request(Request::new(RequestId::from(1), "textDocument/inlayHint".into(), params));
    assert!(reply.response_result.is_ok());
    // Seconds even in a debug build on a busy machine; quadratic would be minutes.
    assert!(start.elapsed() < std::time::Duration::from_secs(30), "{:?}", start.elapsed());
}

/// Frames that are not JSON-RPC, messages before `initialize` and after
/// `shutdown`: each is answered or logged, and the session goes on.
#[test]
fn broken_frames_and_messages_out_of_place_do_not_end_the_session() {
    let mut child = spawn_server();
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, replies) = channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        while let Some(msg) = read_message(&mut r) {
            let _ = tx.send(msg);
        }
    });
    let mut raw = |bytes: &[u8]| {
        stdin.write_all(bytes).expect("write");
        stdin.flush().expect("flush");
    };
    let frame = |body: &str| format!("Content-Length: {}\r\n\r\n{body}", body.len());
    let next = || replies.recv_timeout(PATIENCE).expect("a reply");
    raw(frame(r#"{"jsonrpc":"2.0","id":1,"method":"textDocument/hover","params":{}}"#).as_bytes());
    assert_eq!(next()["error"]["code"], -32002, "not initialized yet");
    raw(frame(r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"capabilities":{}}}"#).as_bytes());
    assert!(next()["result"]["capabilities"].is_object());
    // No `initialized`: a client may skip it. Then frames that are not
    // JSON-RPC, one with an id, one not UTF-8, one without a length.
    raw(frame("{this is not json").as_bytes());
    assert_eq!(next()["method"], "window/logMessage");
    raw(frame(r#"{"jsonrpc":"2.0","id":3,"method":7}"#).as_bytes());
    assert_eq!(next()["error"]["code"], -32600);
    raw(b"Content-Length: 2\r\n\r\n\xff\xfe");
    assert_eq!(next()["method"], "window/logMessage");
    raw(b"X-Nonsense\r\n\r\n");
    assert_eq!(next()["method"], "window/logMessage");
    raw(frame(r#"{"jsonrpc":"2.0","id":4,"method":"netc/nothing"}"#).as_bytes());
    assert_eq!(next()["error"]["code"], -32601);
    raw(frame(r#"{"jsonrpc":"2.0","id":5,"method":"shutdown"}"#).as_bytes());
    assert_eq!(next()["id"], 5);
    raw(frame(r#"{"jsonrpc":"2.0","id":6,"method":"textDocument/hover","params":{}}"#).as_bytes());
    assert_eq!(next()["error"]["code"], -32600, "after shutdown");
    raw(frame(r#"{"jsonrpc":"2.0","method":"exit"}"#).as_bytes());
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn formatting_replaces_the_document_with_what_netc_fmt_writes() {
    let mut c = Client::start();
    let path = root().join("tests/lsp/unformatted.net");
    let main = uri(&path);
    let text = "net t(){\ninput x:[3,8,8]\ny=x|>conv(4,3,pad=same)|>relu # keep me\nreturn y|>gap|>linear(2)\n}\n";
    c.open(&main, text);
    let format = json!({ "textDocument": { "uri": main }, "options": { "tabSize": 4, "insertSpaces": true } });
    let reply = c.request("textDocument/formatting", format);
    let edits = reply["result"].as_array().unwrap_or_else(|| panic!("{reply}"));
    assert_eq!(edits.len(), 1, "{reply}");
    let want = netc::fmt::format_source(text).expect("formats");
    assert_ne!(want, text);
    assert_eq!(edits[0]["newText"], want.as_str(), "{reply}");
    // A document with a syntax error is left alone.
    let broken = json!({ "textDocument": { "uri": main, "version": 2 }, "contentChanges": [{ "text": "net t( {\n" }] });
    c.notify("textDocument/didChange", broken);
    let format = json!({ "textDocument": { "uri": main }, "options": { "tabSize": 4, "insertSpaces": true } });
    let reply = c.request("textDocument/formatting", format);
    assert!(reply.get("error").is_some() || reply["result"].is_null() || reply["result"] == json!([]), "{reply}");
    c.finish();
}
