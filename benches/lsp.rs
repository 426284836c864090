//! How long `netc lsp` takes to answer on the largest paper spec,
//! specs/ran92.net: an edit checked and its diagnostics published, hover
//! right after an edit (which compiles the spec again first), and hover on
//! an unchanged document: in process, and through the binary's stdio as
//! an editor sees it. Run: `cargo bench --bench lsp`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lsp_server::{Notification, Request, RequestId};
use serde_json::json;

use netc::lsp::Server;

const RUNS: usize = 30;

fn main() {
    let path = std::fs::canonicalize("specs/ran92.net").expect("run from the checkout");
    let uri = netc::lsp::text::path_to_uri(&path);
    let text = std::fs::read_to_string(&path).expect("ran92.net");
    let mut server = Server::default();
    let doc = json!({ "uri": uri, "languageId": "netc", "version": 1, "text": text });
    server.notify(Notification::new("textDocument/didOpen".into(), json!({ "textDocument": doc })));
    server.publish_diagnostics();
    let published = server.take_outbox();
    assert!(published.iter().any(|n| n.params["diagnostics"] == json!([])), "ran92.net is clean");

    let mut version = 1;
    let mut edit = |server: &mut Server| {
        version += 1;
        // A comment at the end: the text changes, the net does not.
        let changed = format!("{text}# edit {version}\n");
        let params = json!({
            "textDocument": { "uri": uri, "version": version },
            "contentChanges": [{ "text": changed }]
        });
        server.notify(Notification::new("textDocument/didChange".into(), params));
    };
    // `att3` in `r4 = residual_proj(att3, 1024 * width)`: a value made by
    // three repeated attention blocks.
    let line = text.lines().position(|l| l.contains("r4 = residual_proj(att3")).expect("line") as u32;
    let hover = |id: i32| {
        let params = json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": 25 } });
        Request::new(RequestId::from(id), "textDocument/hover".into(), params)
    };
    let reply = server.request(hover(0));
    let shown = reply.response_result.expect("hover answers").to_string();
    assert!(shown.contains("att3"), "{shown}");

    let diagnostics = time(|| {
        edit(&mut server);
        server.publish_diagnostics();
        server.take_outbox();
    });
    let hover_after_edit = time(|| {
        edit(&mut server);
        server.request(hover(1));
    });
    let hover_warm = time(|| {
        server.request(hover(2));
    });
    let (stdio_edit, stdio_hover) = over_stdio(&uri, &text, line);
    println!("specs/ran92.net, median of {RUNS} runs (min, max):");
    report("edit -> diagnostics published", &diagnostics);
    report("edit -> hover (compiles first)", &hover_after_edit);
    report("hover, no edit", &hover_warm);
    println!("through `netc lsp` over stdio:");
    report("edit -> diagnostics received", &stdio_edit);
    report("hover -> reply received", &stdio_hover);
}

/// The same over the release binary's stdin and stdout.
fn over_stdio(uri: &str, text: &str, line: u32) -> (Vec<Duration>, Vec<Duration>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("netc lsp starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut send = |v: serde_json::Value| {
        let body = v.to_string();
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        stdin.flush().expect("flush");
    };
    // Reads until a message that `done` accepts.
    let mut until = |done: &dyn Fn(&serde_json::Value) -> bool| loop {
        let mut length = 0;
        loop {
            let mut header = String::new();
            stdout.read_line(&mut header).expect("read");
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some(n) = header.strip_prefix("Content-Length: ") {
                length = n.parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        stdout.read_exact(&mut body).expect("body");
        let msg: serde_json::Value = serde_json::from_slice(&body).expect("json");
        if done(&msg) {
            return;
        }
    };
    send(json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": { "capabilities": {} } }));
    until(&|m| m["id"] == 0);
    send(json!({ "jsonrpc": "2.0", "method": "initialized", "params": {} }));
    let doc = json!({ "uri": uri, "languageId": "netc", "version": 1, "text": text });
    send(json!({ "jsonrpc": "2.0", "method": "textDocument/didOpen", "params": { "textDocument": doc } }));
    until(&|m| m["method"] == "textDocument/publishDiagnostics");
    let mut version = 1;
    let mut edits = Vec::new();
    for _ in 0..=RUNS {
        version += 1;
        let start = Instant::now();
        // A real change, so that the diagnostics are published again: the
        // spec fails, then compiles, in turn.
        let changed = if version % 2 == 0 { text.replace("input x", "input y") } else { text.to_string() };
        let change =
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": changed }] });
        send(json!({ "jsonrpc": "2.0", "method": "textDocument/didChange", "params": change }));
        until(&|m| m["method"] == "textDocument/publishDiagnostics" && m["params"]["version"] == version);
        edits.push(start.elapsed());
    }
    let mut hovers = Vec::new();
    for id in 1..=RUNS as i64 + 1 {
        let start = Instant::now();
        let params = json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": 25 } });
        send(json!({ "jsonrpc": "2.0", "id": id, "method": "textDocument/hover", "params": params }));
        until(&|m| m["id"] == id);
        hovers.push(start.elapsed());
    }
    send(json!({ "jsonrpc": "2.0", "id": -1, "method": "shutdown" }));
    until(&|m| m["id"] == -1);
    send(json!({ "jsonrpc": "2.0", "method": "exit" }));
    child.wait().expect("netc lsp exits");
    // The first of each is the warm-up.
    for t in [&mut edits, &mut hovers] {
        t.remove(0);
        t.sort();
    }
    (edits, hovers)
}

fn time(mut f: impl FnMut()) -> Vec<Duration> {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn report(what: &str, times: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {what:<32} {:8.3} ms  ({:.3}, {:.3})",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}
