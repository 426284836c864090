//! CIFAR-10 in its binary form: records of one label byte and 3,072 image
//! bytes (C x H x W), five training files and one test file.

use std::path::Path;

use super::{DataError, Dataset, Split, balanced_subset};

const SHAPE: [usize; 3] = [3, 32, 32];
const IMAGE: usize = 3 * 32 * 32;
const RECORD: usize = IMAGE + 1;

/// The standard class names, in label order.
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

pub(super) fn load(
    dir: &str,
    split: Split,
    shape: [usize; 3],
    limit: Option<usize>,
    seed: u64,
) -> Result<Dataset, DataError> {
    let source = format!("cifar10:{dir}");
    if shape != SHAPE {
        return Err(DataError::Shape {
            data: source,
            what: format!("images are 3x32x32, but the spec wants {}x{}x{}", shape[0], shape[1], shape[2]),
        });
    }
    let dir = Path::new(dir);

    let meta = dir.join("batches.meta.txt");
    let classes: Vec<String> = match std::fs::read_to_string(&meta) {
        Ok(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CLASSES.iter().map(|s| s.to_string()).collect(),
        Err(e) => return Err(DataError::io(meta.display(), e)),
    };
    if classes.is_empty() {
        return Err(DataError::bad(meta.display(), "names no classes"));
    }

    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|k| format!("data_batch_{k}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    let mut files = Vec::with_capacity(names.len());
    let mut labels = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| {
            // No CIFAR-10 at all there: say what it is and how to get it. A
            // folder with part of it gets the name of the missing file.
            let absent = ["data_batch_1.bin", "test_batch.bin"].iter().all(|f| !dir.join(f).exists());
            if e.kind() == std::io::ErrorKind::NotFound && absent {
                DataError::Missing { guide: super::get::cifar10_missing(&dir.display().to_string()) }
            } else {
                DataError::io(path.display(), e)
            }
        })?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(DataError::bad(
                path.display(),
                format!("{} bytes is not a whole number of {RECORD}-byte records", bytes.len()),
            ));
        }
        for (k, record) in bytes.chunks_exact(RECORD).enumerate() {
            let label = record[0];
            if label as usize >= classes.len() {
                return Err(DataError::bad(
                    path.display(),
                    format!("record {k} has label {label}, but there are only {} classes", classes.len()),
                ));
            }
            labels.push(label as u32);
        }
        files.push(bytes);
    }

    let chosen = balanced_subset(&labels, limit.unwrap_or(usize::MAX), seed);
    let mut images = Vec::with_capacity(chosen.len() * IMAGE);
    let records = || files.iter().flat_map(|f| f.chunks_exact(RECORD));
    let mut next = chosen.iter().peekable();
    for (i, record) in records().enumerate() {
        if next.peek() == Some(&&i) {
            images.extend_from_slice(&record[1..]);
            next.next();
        }
    }
    let labels = chosen.iter().map(|&i| labels[i]).collect();
    Ok(Dataset { classes, shape, images, labels, masks: None, source, index: chosen, skipped: Vec::new() })
}
