//! Image folders: `train/<class>/*.{png,jpg,jpeg}` and `test/<class>/*`,
//! either as a directory or as a `.tar.gz` (or plain `.tar`) with the same
//! layout, possibly under one top-level directory. Archives are read
//! streaming, never unpacked; with a limit, only the chosen images are
//! decoded.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use super::{DataError, Dataset, Split, balanced_subset, par_each};

/// Where one image's bytes are.
enum Bytes {
    File(PathBuf),
    Memory(Vec<u8>),
}

struct Entry {
    /// The file, or the path inside the archive, for messages.
    name: String,
    class: String,
    bytes: Bytes,
}

pub(super) fn load(
    path: &str,
    split: Split,
    shape: [usize; 3],
    limit: Option<usize>,
    seed: u64,
    skip_bad: bool,
) -> Result<Dataset, DataError> {
    let source = format!("folder:{path}");
    let [c, h, w] = shape;
    if c != 1 && c != 3 {
        return Err(DataError::Shape { data: source, what: format!("images have 1 or 3 channels, not {c}") });
    }
    let root = Path::new(path);
    let meta = std::fs::metadata(root).map_err(|e| DataError::io(path, e))?;
    let archive = !meta.is_dir();
    let (mut classes, mut entries) = if archive { scan_archive(path, split)? } else { scan_dir(root, split)? };
    classes.extend(entries.iter().map(|e| e.class.clone()));
    let classes: Vec<String> = classes.into_iter().collect();
    if entries.is_empty() {
        let layout = if archive { "the archive" } else { "the folder" };
        return Err(DataError::bad(
            path,
            format!("{layout} has no .png, .jpg or .jpeg images under {}/<class>/", split.name()),
        ));
    }
    entries.sort_by(|a, b| (&a.class, &a.name).cmp(&(&b.class, &b.name)));
    let all_labels: Vec<u32> =
        entries.iter().map(|e| classes.binary_search(&e.class).expect("class was collected") as u32).collect();

    let chosen = balanced_subset(&all_labels, limit.unwrap_or(usize::MAX), seed);
    let labels: Vec<u32> = chosen.iter().map(|&i| all_labels[i]).collect();
    let index = chosen.clone();
    let mut entries: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
    let chosen: Vec<Entry> = chosen.iter().map(|&i| entries[i].take().expect("indices are distinct")).collect();
    drop(entries);

    let size = c * h * w;
    crate::memory::check_fits(
        (chosen.len() * size) as u128,
        &format!("{} images of {c}x{h}x{w}", chosen.len()),
        "use fewer images (`--train-images` and `--test-images` for a run, `--count` for a probe)",
    )
    .map_err(|what| DataError::Shape { data: source.clone(), what })?;
    let mut images = vec![0u8; chosen.len() * size];
    let mut items: Vec<(&Entry, &mut [u8], Option<DataError>)> =
        chosen.iter().zip(images.chunks_exact_mut(size)).map(|(e, out)| (e, out, None)).collect();
    par_each(&mut items, |_, (entry, out, failed)| {
        let fail = |what: String| {
            if archive {
                DataError::bad_entry(path, entry.name.clone(), what)
            } else {
                DataError::bad(&entry.name, what)
            }
        };
        let read;
        let bytes = match &entry.bytes {
            Bytes::Memory(b) => Ok(b.as_slice()),
            Bytes::File(p) => match std::fs::read(p) {
                Ok(bytes) => {
                    read = bytes;
                    Ok(read.as_slice())
                }
                Err(e) => Err(DataError::io(p.display(), e)),
            },
        };
        match bytes.and_then(|b| decode(b, shape, out).map_err(fail)) {
            Ok(()) => Ok(()),
            Err(e) if skip_bad => {
                *failed = Some(e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    })?;
    let failed: Vec<Option<DataError>> = items.into_iter().map(|(_, _, f)| f).collect();
    let mut dataset = Dataset { classes, shape, images, labels, masks: None, source, index, skipped: Vec::new() };
    if failed.iter().any(Option::is_some) {
        dataset = without(dataset, &failed);
    }
    Ok(dataset)
}

/// The data set less the images that failed, which are listed as skipped.
fn without(d: Dataset, failed: &[Option<DataError>]) -> Dataset {
    let kept: Vec<usize> = (0..d.len()).filter(|&i| failed[i].is_none()).collect();
    Dataset {
        images: kept.iter().flat_map(|&i| d.image(i).iter().copied()).collect(),
        labels: kept.iter().map(|&i| d.labels[i]).collect(),
        index: kept.iter().map(|&i| d.index[i]).collect(),
        skipped: failed.iter().flatten().map(|e| e.to_string()).collect(),
        classes: d.classes,
        shape: d.shape,
        masks: None,
        source: d.source,
    }
}

fn is_image(name: &str) -> bool {
    if name.starts_with('.') {
        return false;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

/// Decodes one image into `out` (C x H x W), which must match `shape`.
fn decode(bytes: &[u8], [c, h, w]: [usize; 3], out: &mut [u8]) -> Result<(), String> {
    let img = image::load_from_memory(bytes).map_err(|e| {
        format!("cannot decode the image: {e} (`--skip-bad-images` leaves out images that cannot be read)")
    })?;
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    if (iw, ih) != (w, h) {
        return Err(format!(
            "the image is {iw}x{ih} (width x height), but the spec's input is {w}x{h}; images are not resized"
        ));
    }
    if c == 1 {
        out.copy_from_slice(img.into_luma8().as_raw());
        return Ok(());
    }
    let rgb = img.into_rgb8();
    let plane = h * w;
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (p, px) in rgb.as_raw().chunks_exact(3).enumerate() {
        r[p] = px[0];
        g[p] = px[1];
        b[p] = px[2];
    }
    Ok(())
}

fn sorted_dir(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, DataError> {
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| DataError::io(dir.display(), e))? {
        let item = item.map_err(|e| DataError::io(dir.display(), e))?;
        let path = item.path();
        let is_dir = std::fs::metadata(&path).map_err(|e| DataError::io(path.display(), e))?.is_dir();
        out.push((item.file_name().to_string_lossy().into_owned(), path, is_dir));
    }
    out.sort();
    Ok(out)
}

fn scan_dir(root: &Path, split: Split) -> Result<(BTreeSet<String>, Vec<Entry>), DataError> {
    let mut classes = BTreeSet::new();
    let mut entries = Vec::new();
    for (class, dir, is_dir) in sorted_dir(&root.join(split.name()))? {
        if !is_dir || class.starts_with('.') {
            continue;
        }
        for (name, path, is_dir) in sorted_dir(&dir)? {
            if !is_dir && is_image(&name) {
                entries.push(Entry {
                    name: path.display().to_string(),
                    class: class.clone(),
                    bytes: Bytes::File(path),
                });
            }
        }
        classes.insert(class);
    }
    Ok((classes, entries))
}

fn scan_archive(path: &str, split: Split) -> Result<(BTreeSet<String>, Vec<Entry>), DataError> {
    let mut file = BufReader::new(File::open(path).map_err(|e| DataError::io(path, e))?);
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|e| DataError::io(path, e))?;
    let reader = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
    let reader: Box<dyn Read> =
        if magic[..n] == [0x1f, 0x8b] { Box::new(flate2::read::GzDecoder::new(reader)) } else { Box::new(reader) };
    let broken = |e: std::io::Error| DataError::bad(path, format!("is not a readable .tar.gz or .tar archive: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut classes = BTreeSet::new();
    let mut entries = Vec::new();
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let name = entry.path().map_err(broken)?.to_string_lossy().into_owned();
        let parts: Vec<String> = Path::new(&name)
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        // Skip at most one top-level directory in front of `train/` or `test/`.
        let rest = match parts.iter().position(|p| p == split.name()) {
            Some(at @ (0 | 1)) => &parts[at + 1..],
            _ => continue,
        };
        let kind = entry.header().entry_type();
        match rest {
            [class] if kind.is_dir() && !class.starts_with('.') => {
                classes.insert(class.clone());
            }
            [class, file] if kind.is_file() && !class.starts_with('.') && is_image(file) => {
                let mut bytes = Vec::with_capacity(entry.size().min(1 << 24) as usize);
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| DataError::bad_entry(path, name.clone(), format!("cannot read the entry: {e}")))?;
                entries.push(Entry { name, class: class.clone(), bytes: Bytes::Memory(bytes) });
            }
            _ => {}
        }
    }
    Ok((classes, entries))
}
