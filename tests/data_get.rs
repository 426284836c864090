//! `netc data get` against an HTTP server on 127.0.0.1 that serves a small
//! CIFAR-10-shaped archive made here: a whole download, one cut off halfway
//! and resumed, and one whose checksum is wrong. Nothing leaves this machine.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// How the server answers.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    /// The whole file, or the requested range of it (206).
    Whole,
    /// Announces the whole length but sends only the first half, then
    /// closes the connection.
    CutOff,
}

/// A server for one file; records the `Range` header of every request.
struct Server {
    url: String,
    mode: Arc<Mutex<Serve>>,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl Server {
    fn start(body: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let url = format!("http://{}/cifar-10-binary.tar.gz", listener.local_addr().expect("an address"));
        let mode = Arc::new(Mutex::new(Serve::Whole));
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let (m, r) = (mode.clone(), ranges.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(20) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = Some(v.trim().to_string());
                    }
                }
                r.lock().unwrap().push(range.clone());
                let from: usize = range.as_deref().and_then(|v| v.trim_end_matches('-').parse().ok()).unwrap_or(0);
                let rest = &body[from.min(body.len())..];
                let status = if from > 0 { "206 Partial Content" } else { "200 OK" };
                let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", rest.len());
                let _ = stream.write_all(head.as_bytes());
                let sent = if *m.lock().unwrap() == Serve::CutOff { &rest[..rest.len() / 2] } else { rest };
                let _ = stream.write_all(sent);
                let _ = stream.flush();
            }
        });
        Server { url, mode, ranges }
    }

    fn serve(&self, mode: Serve) {
        *self.mode.lock().unwrap() = mode;
    }
}

/// A gzipped tar of `cifar-10-batches-bin/` with 20 records per batch file,
/// in CIFAR-10's binary format; and its SHA-256.
fn fixture_archive() -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("cifar-10-batches-bin/{name}"), bytes).expect("append");
    };
    let batch = |seed: u8| -> Vec<u8> {
        (0..20u8)
            .flat_map(|i| {
                std::iter::once(i % 10).chain((0..3072u32).map(move |p| (p as u8).wrapping_mul(seed).wrapping_add(i)))
            })
            .collect()
    };
    for k in 1..=5 {
        add(&format!("data_batch_{k}.bin"), &batch(k));
    }
    add("test_batch.bin", &batch(9));
    add("batches.meta.txt", b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n");
    let bytes = tar.into_inner().expect("tar").finish().expect("gzip");
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    (bytes, sha)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("data_get").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

fn get(dir: &Path, url: &str, sha: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["data", "get", "cifar10", "--dir", dir.to_str().unwrap(), "--url", url, "--sha256", sha])
        .output()
        .expect("netc runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("list").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

#[test]
fn a_whole_download_is_checked_unpacked_and_read_by_a_run() {
    let (archive, sha) = fixture_archive();
    let server = Server::start(archive);
    let dir = scratch("whole");
    let (code, out, err) = get(&dir, &server.url, &sha);
    assert_eq!(code, 0, "{err}");
    let data = dir.join("cifar-10-batches-bin");
    assert!(out.contains(&format!("--data cifar10:{}", data.display())), "{out}");
    assert_eq!(listing(&dir), ["cifar-10-batches-bin"], "no partial download or staging folder is left");
    assert_eq!(listing(&data).len(), 7);

    let (code, out, _) = get(&dir, &server.url, &sha);
    assert_eq!(code, 0);
    assert!(out.contains("already complete"), "{out}");
    assert_eq!(server.ranges.lock().unwrap().len(), 1, "the second call fetched nothing");

    // The unpacked folder is a CIFAR-10 that netc reads.
    let run = dir.join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["run", "tests/fixtures/small_cnn.net", "--epochs", "1", "--quiet"])
        .args(["--data", &format!("cifar10:{}", data.display()), "--out", run.to_str().unwrap()])
        .output()
        .expect("netc runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_download_cut_off_halfway_resumes_where_it_stopped() {
    let (archive, sha) = fixture_archive();
    let half = archive.len() / 2;
    let server = Server::start(archive);
    let dir = scratch("cut");
    server.serve(Serve::CutOff);
    let (code, _, err) = get(&dir, &server.url, &sha);
    assert_eq!(code, 1);
    assert!(err.contains("stopped after") && err.contains("run the same command again"), "{err}");
    assert_eq!(listing(&dir), ["cifar-10-binary.tar.gz.part"], "only the partial download is left");
    assert_eq!(std::fs::metadata(dir.join("cifar-10-binary.tar.gz.part")).unwrap().len() as usize, half);

    server.serve(Serve::Whole);
    let (code, _, err) = get(&dir, &server.url, &sha);
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.ranges.lock().unwrap().last().cloned().flatten(), Some(format!("{half}-")));
    assert_eq!(listing(&dir), ["cifar-10-batches-bin"]);
}

#[test]
fn an_archive_with_the_wrong_checksum_is_deleted_and_nothing_unpacked() {
    let (archive, _) = fixture_archive();
    let server = Server::start(archive);
    let dir = scratch("checksum");
    let wrong = "0".repeat(64);
    let (code, _, err) = get(&dir, &server.url, &wrong);
    assert_eq!(code, 1);
    assert!(err.contains("SHA-256") && err.contains(&wrong) && err.contains("deleted"), "{err}");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
}

#[test]
fn a_missing_cifar10_says_what_it_is_and_how_to_get_it() {
    let guide = netc::data::load(
        &netc::recipe::DataSource::Cifar10("no/such/cifar-10-batches-bin".into()),
        netc::data::Split::Test,
        [3, 32, 32],
        None,
        0,
    )
    .expect_err("no data there")
    .to_string();
    for needed in [
        "CIFAR-10 is not in `no/such/cifar-10-batches-bin`",
        "netc data get cifar10 --dir no/such",
        "c32a1d4ab5d03f1284b67883e8d87530",
        "--profile quick",
        "--data synthetic",
        "--data folder:PATH",
    ] {
        assert!(guide.contains(needed), "no `{needed}` in:\n{guide}");
    }
}
