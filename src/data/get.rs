//! `netc data get`: downloads a data set's official archive, checks its
//! checksum, and unpacks it where the specs look for it.
//!
//! Nothing half-done is ever left where the data belongs: the download
//! goes to `<archive>.part` (and resumes from there with an HTTP range
//! request when run again), the archive is checked before it is opened, and
//! it is unpacked into a temporary folder that is renamed into place only
//! once every expected file is there.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A data set's archive and what it must unpack to.
#[derive(Clone, Copy, Debug)]
pub struct Archive {
    /// What `netc data get` calls it.
    pub name: &'static str,
    /// What it is, for messages.
    pub about: &'static str,
    pub url: &'static str,
    /// The archive's file name.
    pub file: &'static str,
    pub bytes: u64,
    pub sha256: &'static str,
    /// The publisher's MD5, quoted in messages so that a user can check a
    /// copy they fetched themselves.
    pub md5: &'static str,
    /// The folder the archive holds, and the files that must be in it.
    pub folder: &'static str,
    pub files: &'static [&'static str],
}

/// CIFAR-10's binary version, from its authors' page.
pub const CIFAR10: Archive = Archive {
    name: "cifar10",
    about: "60,000 colour images of 32x32 pixels in 10 classes (50,000 to train, \
            10,000 to test): https://www.cs.toronto.edu/~kriz/cifar.html",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    file: "cifar-10-binary.tar.gz",
    bytes: 170_052_171,
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    folder: "cifar-10-batches-bin",
    files: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
        "batches.meta.txt",
    ],
};

/// The data sets `netc data get` knows.
pub const ARCHIVES: [Archive; 1] = [CIFAR10];

/// Where to put the data, and where else to fetch it from.
#[derive(Clone, Debug)]
pub struct GetOptions {
    /// The folder that receives the archive's folder.
    pub dir: PathBuf,
    /// A mirror of the archive, instead of the publisher's address.
    pub url: Option<String>,
    /// The SHA-256 the archive must have, when it is not the official one.
    pub sha256: Option<String>,
    /// Show a progress bar.
    pub progress: bool,
}

/// What [`get`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// Downloaded, checked and unpacked into this folder.
    Fetched(PathBuf),
    /// This folder already had every file; nothing was fetched.
    AlreadyThere(PathBuf),
}

/// Downloads, checks and unpacks `archive` into `opts.dir`.
pub fn get(archive: &Archive, opts: &GetOptions) -> Result<Got, String> {
    let target = opts.dir.join(archive.folder);
    if target.exists() {
        let missing: Vec<&str> = archive.files.iter().copied().filter(|f| !target.join(f).is_file()).collect();
        if missing.is_empty() {
            return Ok(Got::AlreadyThere(target));
        }
        return Err(format!(
            "`{}` exists but lacks {}; move it away (or delete it) and run `netc data get {}` again",
            target.display(),
            missing.join(", "),
            archive.name
        ));
    }
    std::fs::create_dir_all(&opts.dir).map_err(|e| format!("cannot create `{}`: {e}", opts.dir.display()))?;
    let part = opts.dir.join(format!("{}.part", archive.file));
    let url = opts.url.as_deref().unwrap_or(archive.url);
    download(url, &part, opts.progress)?;
    let want = opts.sha256.as_deref().unwrap_or(archive.sha256).to_ascii_lowercase();
    let got = sha256_of(&part)?;
    if got != want {
        let _ = std::fs::remove_file(&part);
        return Err(format!(
            "the archive from {url} has SHA-256 {got}, not {want}: it is not the expected file, \
             or it was damaged on the way; it was deleted, run the command again to download it anew"
        ));
    }
    unpack(archive, &part, &opts.dir)?;
    std::fs::remove_file(&part).map_err(|e| format!("cannot remove `{}`: {e}", part.display()))?;
    Ok(Got::Fetched(target))
}

/// Downloads `url` into `part`, continuing after the bytes already there
/// when the server allows it.
fn download(url: &str, part: &Path, progress: bool) -> Result<(), String> {
    let have = std::fs::metadata(part).map_or(0, |m| m.len());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(None)
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| format!("cannot download {url}: {e}"))?;
    let length =
        response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let (resume, total) = match response.status().as_u16() {
        206 => (true, length.map(|l| have + l)),
        200 => (false, length),
        // The range starts at the end: the file is whole already.
        416 if have > 0 => return Ok(()),
        status => return Err(format!("cannot download {url}: the server answered HTTP {status}")),
    };
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resume)
        .truncate(!resume)
        .open(part)
        .map_err(|e| format!("cannot write `{}`: {e}", part.display()))?;
    let start = if resume { have } else { 0 };
    let bar = bytes_bar(progress, total, start);
    let mut body = response.into_body().into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    let mut done = start;
    loop {
        let n = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                bar.abandon();
                let _ = out.sync_all();
                return Err(format!(
                    "the download of {url} stopped after {} (of {}): {e}; \
                     run the same command again to continue where it stopped",
                    megabytes(done),
                    total.map_or("an unknown size".to_string(), megabytes)
                ));
            }
        };
        out.write_all(&buffer[..n]).map_err(|e| format!("cannot write `{}`: {e}", part.display()))?;
        done += n as u64;
        bar.set_position(done);
    }
    bar.finish_and_clear();
    out.sync_all().map_err(|e| format!("cannot write `{}`: {e}", part.display()))
}

/// indicatif draws only on a terminal, so a hidden bar is left to it.
fn bytes_bar(show: bool, total: Option<u64>, start: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = total.map_or_else(indicatif::ProgressBar::no_length, indicatif::ProgressBar::new);
    let style = indicatif::ProgressStyle::with_template("[{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .expect("a valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_position(start);
    bar
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn sha256_of(path: &Path) -> Result<String, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
        }
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Unpacks the archive's folder into a temporary folder beside its place,
/// checks that every expected file came out, and renames it into place.
fn unpack(archive: &Archive, tarball: &Path, dir: &Path) -> Result<(), String> {
    let staging = dir.join(format!(".{}.unpacking-{}", archive.folder, std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = unpack_into(archive, tarball, &staging).and_then(|()| {
        let unpacked = staging.join(archive.folder);
        let missing: Vec<&str> = archive.files.iter().copied().filter(|f| !unpacked.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(format!(
                "`{}` checked out but lacks {}/{}",
                tarball.display(),
                archive.folder,
                missing.join(", ")
            ));
        }
        let target = dir.join(archive.folder);
        std::fs::rename(&unpacked, &target).map_err(|e| format!("cannot move the data to `{}`: {e}", target.display()))
    });
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn unpack_into(archive: &Archive, tarball: &Path, staging: &Path) -> Result<(), String> {
    let broken = |e: std::io::Error| format!("`{}` is not a readable .tar.gz: {e}", tarball.display());
    let file = File::open(tarball).map_err(|e| format!("cannot read `{}`: {e}", tarball.display()))?;
    std::fs::create_dir_all(staging).map_err(|e| format!("cannot create `{}`: {e}", staging.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    for entry in tar.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let path = entry.path().map_err(broken)?.into_owned();
        // Only the data set's own folder; `unpack_in` refuses paths that
        // would leave the staging folder.
        if path.starts_with(archive.folder) {
            entry.unpack_in(staging).map_err(|e| format!("cannot unpack `{}`: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// What to tell a user whose spec reads CIFAR-10 from `dir`, where it is not.
pub fn cifar10_missing(dir: &str) -> String {
    let a = CIFAR10;
    let path = Path::new(dir);
    let get = match (path.file_name(), path.parent()) {
        (Some(name), Some(parent)) if name == a.folder => {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            format!("netc data get {} --dir {}", a.name, parent.display())
        }
        _ => format!("netc data get {}", a.name),
    };
    format!(
        "CIFAR-10 is not in `{dir}` (no data_batch_1.bin or test_batch.bin there).\n\
         \x20 CIFAR-10 is {about}.\n\
         \x20 To get it, run\n\
         \x20     {get}\n\
         \x20 which downloads the official binary archive ({mb:.0} MB, MD5 {md5}) from\n\
         \x20 {url}, checks it and unpacks it. Or unpack that archive yourself\n\
         \x20 and pass `--data cifar10:DIR`, where DIR holds data_batch_1.bin ... test_batch.bin.\n\
         \x20 To train without it:\n\
         \x20     --profile quick          the spec's quick profile, on the built-in synthetic shapes\n\
         \x20     --data synthetic         the built-in synthetic shapes at the spec's full size\n\
         \x20     --data folder:PATH       your own images: PATH/train/<class>/*.png and PATH/test/<class>/*.png\n\
         \x20                              (or .jpg; PATH may also be a .tar.gz with that layout)",
        about = a.about,
        url = a.url,
        mb = a.bytes as f64 / 1e6,
        md5 = a.md5,
    )
}
