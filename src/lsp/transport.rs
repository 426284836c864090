//! Framed JSON-RPC on stdin and stdout, into an `lsp_server::Connection`.
//!
//! `lsp_server::Connection::stdio` ends the session at the first frame that
//! is not a JSON-RPC message (and allocates whatever `Content-Length` a
//! client claims). This reader skips such a frame instead: it hands the
//! server an [`INVALID`] notification, which answers it with an error, and
//! reads on.

use std::io::{self, BufRead, Read, Write};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};
use lsp_server::{Connection, Message, Notification};
use serde_json::json;

/// The method of the notification that stands for a frame that could not
/// be read: `{ "id": <the request's id, if it had one>, "message": ... }`.
pub const INVALID: &str = "$/netc/invalidMessage";

/// Larger messages are skipped unread (a spec is kilobytes; the protocol
/// sends whole documents, so leave room for generated ones).
const MAX_MESSAGE: usize = 256 << 20;

/// A connection on stdin and stdout, and the writer thread to join (after
/// the connection is dropped) so that every reply is flushed. The reader
/// thread is not joined: it may be blocked on a stdin the client keeps
/// open, and it ends with the process.
pub fn stdio() -> (Connection, JoinHandle<io::Result<()>>) {
    let (to_server, from_client) = unbounded::<Message>();
    let (to_client, from_server): (Sender<Message>, Receiver<Message>) = unbounded();
    std::thread::Builder::new()
        .name("netc-lsp-reader".into())
        .spawn(move || read_loop(&mut io::stdin().lock(), &to_server))
        .expect("a thread can be started");
    let writer = std::thread::Builder::new()
        .name("netc-lsp-writer".into())
        .spawn(move || {
            let mut out = io::stdout().lock();
            for msg in from_server {
                msg.write(&mut out)?;
            }
            out.flush()
        })
        .expect("a thread can be started");
    (Connection { sender: to_client, receiver: from_client }, writer)
}

/// Reads messages until the input ends, the server is gone, or `exit`.
pub fn read_loop(input: &mut impl BufRead, to_server: &Sender<Message>) {
    loop {
        let msg = match read_frame(input) {
            Ok(None) => return,
            Ok(Some(body)) => parse(&body),
            Err(Skip(message)) => invalid(None, message),
        };
        let exit = matches!(&msg, Message::Notification(n) if n.method == "exit");
        if to_server.send(msg).is_err() || exit {
            return;
        }
    }
}

struct Skip(String);

/// One frame's body; `Ok(None)` at the end of the input.
fn read_frame(input: &mut impl BufRead) -> Result<Option<Vec<u8>>, Skip> {
    let mut length: Option<usize> = None;
    let mut bad_header = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        // A header line is short; one that is not is not a header.
        match input.by_ref().take(1024).read_until(b'\n', &mut line) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        match text.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("content-length") => {
                length = value.trim().parse().ok();
                if length.is_none() {
                    bad_header = Some(format!("bad Content-Length `{}`", value.trim()));
                }
            }
            Some(_) => {} // Content-Type and the like.
            None => bad_header = Some(format!("malformed header `{}`", text.chars().take(80).collect::<String>())),
        }
    }
    let Some(length) = length else {
        return Err(Skip(bad_header.unwrap_or_else(|| "a message without Content-Length".into())));
    };
    if length > MAX_MESSAGE {
        // Skip it without holding it.
        let skipped = io::copy(&mut input.by_ref().take(length as u64), &mut io::sink()).unwrap_or(0);
        if skipped < length as u64 {
            return Ok(None);
        }
        return Err(Skip(format!("a message of {length} bytes is larger than {MAX_MESSAGE}")));
    }
    let mut body = vec![0; length];
    match input.read_exact(&mut body) {
        Ok(()) => Ok(Some(body)),
        Err(_) => Ok(None),
    }
}

fn parse(body: &[u8]) -> Message {
    match serde_json::from_slice::<Message>(body) {
        Ok(msg) => msg,
        Err(e) => {
            // If it is JSON with an id, the error can answer that request.
            let id = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v.get("id").cloned());
            invalid(id, format!("not a JSON-RPC message: {e}"))
        }
    }
}

fn invalid(id: Option<serde_json::Value>, message: String) -> Message {
    Notification::new(INVALID.into(), json!({ "id": id, "message": message })).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Message> {
        let (tx, rx) = unbounded();
        read_loop(&mut io::Cursor::new(input.to_vec()), &tx);
        drop(tx);
        rx.into_iter().collect()
    }

    fn method(m: &Message) -> String {
        match m {
            Message::Notification(n) => n.method.clone(),
            Message::Request(r) => r.method.clone(),
            Message::Response(_) => "response".into(),
        }
    }

    #[test]
    fn bad_frames_are_skipped_and_reading_goes_on() {
        let frame = |body: &[u8]| [format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(), body].concat();
        let mut input = Vec::new();
        input.extend(frame(b"{oops"));
        input.extend(frame(b"\xff\xfe\xfd"));
        input.extend(frame(br#"{"id": 7, "method": 42}"#));
        input.extend_from_slice(b"Content-Length: 999999999999\r\n\r\n");
        let rest = frame(br#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#);
        // The huge frame swallows everything after it: nothing follows.
        let got: Vec<String> = frames(&input).iter().map(method).collect();
        assert_eq!(got, [INVALID, INVALID, INVALID]);
        let mut input = b"garbage line\r\n\r\n".to_vec();
        input.extend_from_slice(&rest);
        let got: Vec<String> = frames(&input).iter().map(method).collect();
        assert_eq!(got, [INVALID, "shutdown"]);
    }
}
