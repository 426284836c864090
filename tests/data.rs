//! The data module: synthetic images, CIFAR-10 binaries, image folders and
//! archives, and batches.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use netc::data::{self, Batch, DataError, Dataset, Normalize, Split};
use netc::recipe::{Augment, DataSource};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("netc-data-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn synthetic(split: Split, shape: [usize; 3], n: usize, seed: u64) -> Dataset {
    data::load(&DataSource::Synthetic, split, shape, Some(n), seed).unwrap()
}

fn counts(labels: &[u32], classes: usize) -> Vec<usize> {
    let mut c = vec![0; classes];
    for &l in labels {
        c[l as usize] += 1;
    }
    c
}

fn all_batches(
    d: &Arc<Dataset>,
    bs: usize,
    shuffle: bool,
    augment: &[Augment],
    norm: Normalize,
    seed: u64,
    epoch: u64,
) -> Vec<Batch> {
    data::batches(d.clone(), bs, shuffle, augment, norm, seed, epoch, Device::Cpu).map(|b| b.unwrap()).collect()
}

fn pixels(b: &Batch) -> Vec<f32> {
    b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

// ---------------------------------------------------------------- synthetic

#[test]
fn synthetic_is_deterministic_and_splits_differ() {
    let a = synthetic(Split::Train, [3, 32, 32], 300, 7);
    let b = synthetic(Split::Train, [3, 32, 32], 300, 7);
    assert!(a.images == b.images);
    assert_eq!(a.labels, b.labels);
    assert!(a.masks == b.masks);
    assert_eq!(a.images.len(), 300 * 3 * 32 * 32);
    assert_eq!(a.classes.len(), 10);
    let test = synthetic(Split::Test, [3, 32, 32], 300, 7);
    assert!(a.images != test.images);
    let other_seed = synthetic(Split::Train, [3, 32, 32], 300, 8);
    assert!(a.images != other_seed.images);
    // A smaller set is a prefix of a larger one.
    let small = synthetic(Split::Train, [3, 32, 32], 10, 7);
    assert!(small.images[..] == a.images[..small.images.len()]);
}

#[test]
fn synthetic_masks_are_on_the_object_and_inside_the_image() {
    for shape in [[3, 32, 32], [1, 32, 32], [3, 224, 224]] {
        let n = if shape[1] == 224 { 20 } else { 200 };
        let d = synthetic(Split::Train, shape, n, 1);
        let [c, h, w] = shape;
        assert_eq!(d.masks.as_ref().unwrap().len(), n * h * w);
        for i in 0..n {
            let m = d.mask(i).unwrap();
            assert!(m.iter().all(|&v| v <= 1));
            let on = m.iter().filter(|&&v| v == 1).count();
            // At least 2% and at most half of the image.
            assert!(on * 50 >= h * w && on * 2 <= h * w, "image {i} of {shape:?}: {on} mask pixels");
            // The object stands out: its mean colour differs from the rest.
            let img = d.image(i);
            let mut diff = 0.0;
            for ch in 0..c {
                let p = &img[ch * h * w..(ch + 1) * h * w];
                let mean = |sel: u8| {
                    let v: Vec<f64> = p.iter().zip(m).filter(|(_, k)| **k == sel).map(|(v, _)| *v as f64).collect();
                    v.iter().sum::<f64>() / v.len() as f64
                };
                diff += (mean(1) - mean(0)).abs();
            }
            assert!(diff > 20.0, "image {i} of {shape:?}: object differs from background by {diff}");
        }
        // Every class draws a different mask shape.
        assert!(d.mask(0) != d.mask(1));
    }
}

#[test]
fn synthetic_classes_are_balanced() {
    let train = data::load(&DataSource::Synthetic, Split::Train, [3, 32, 32], None, 0).unwrap();
    let test = data::load(&DataSource::Synthetic, Split::Test, [3, 32, 32], None, 0).unwrap();
    assert_eq!(train.len(), 10_000);
    assert_eq!(test.len(), 2_000);
    assert!(counts(&train.labels, 10).iter().all(|&k| k == 1000));
    assert!(counts(&test.labels, 10).iter().all(|&k| k == 200));
    let some = synthetic(Split::Train, [3, 32, 32], 95, 0);
    let c = counts(&some.labels, 10);
    assert!(c.iter().max().unwrap() - c.iter().min().unwrap() <= 1, "{c:?}");
}

#[test]
fn synthetic_rejects_shapes_it_cannot_draw() {
    let err = data::load(&DataSource::Synthetic, Split::Train, [2, 32, 32], Some(4), 0).unwrap_err();
    assert!(err.to_string().contains("1 or 3 channels"), "{err}");
    let err = data::load(&DataSource::Synthetic, Split::Train, [3, 8, 8], Some(4), 0).unwrap_err();
    assert!(err.to_string().contains("8x8"), "{err}");
}

#[test]
fn channel_stats_are_in_unit_range_and_repeat_one_channel() {
    let d = synthetic(Split::Train, [3, 32, 32], 100, 0);
    let (mean, std) = d.channel_stats();
    for k in 0..3 {
        assert!(mean[k] > 0.2 && mean[k] < 0.8, "{mean:?}");
        assert!(std[k] > 0.1 && std[k] < 0.5, "{std:?}");
    }
    let g = synthetic(Split::Train, [1, 32, 32], 100, 0);
    let (mean, std) = g.channel_stats();
    assert_eq!(mean[0], mean[1]);
    assert_eq!(mean[0], mean[2]);
    assert_eq!(std[0], std[2]);
    let exact = Dataset {
        classes: vec!["a".into()],
        shape: [1, 1, 2],
        images: vec![0, 255],
        labels: vec![0],
        masks: None,
        source: "test".into(),
        index: vec![0],
        skipped: Vec::new(),
    };
    let (mean, std) = exact.channel_stats();
    assert!((mean[0] - 0.5).abs() < 1e-6 && (std[0] - 0.5).abs() < 1e-6);
}

// ---------------------------------------------------------------- batches

#[test]
fn batches_have_shapes_and_keep_the_partial_last_batch() {
    let d = Arc::new(synthetic(Split::Train, [3, 32, 32], 50, 0));
    let bs = all_batches(&d, 16, true, &[], Normalize::NONE, 0, 0);
    let sizes: Vec<usize> = bs.iter().map(|b| b.indices.len()).collect();
    assert_eq!(sizes, [16, 16, 16, 2]);
    for b in &bs {
        let n = b.indices.len();
        assert_eq!(b.images.dims(), [n, 3, 32, 32]);
        assert_eq!(b.images.dtype(), candle_core::DType::F32);
        assert_eq!(b.labels.dims(), [n]);
        assert_eq!(b.labels.dtype(), candle_core::DType::U32);
        let labels = b.labels.to_vec1::<u32>().unwrap();
        let expected: Vec<u32> = b.indices.iter().map(|&i| d.labels[i]).collect();
        assert_eq!(labels, expected);
    }
    let mut seen: Vec<usize> = bs.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
}

#[test]
fn batches_are_normalised() {
    let d = Arc::new(synthetic(Split::Train, [3, 32, 32], 64, 3));
    let norm = Normalize::of(&d);
    let bs = all_batches(&d, 64, false, &[], norm, 0, 0);
    assert_eq!(bs.len(), 1);
    let x = pixels(&bs[0]);
    let plane = 32 * 32;
    for ch in 0..3 {
        let vals: Vec<f64> =
            (0..64).flat_map(|i| &x[(i * 3 + ch) * plane..(i * 3 + ch + 1) * plane]).map(|&v| v as f64).collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let s = (vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len() as f64).sqrt();
        assert!(m.abs() < 1e-3, "channel {ch}: mean {m}");
        assert!((s - 1.0).abs() < 1e-3, "channel {ch}: std {s}");
    }
    // One value by hand, in dataset order (no shuffle).
    let v = d.image(0)[5] as f32 / 255.0;
    assert!((x[5] - (v - norm.mean[0]) / norm.std[0]).abs() < 1e-5);
}

#[test]
fn order_and_augmentation_are_reproducible() {
    let d = Arc::new(synthetic(Split::Train, [3, 32, 32], 40, 0));
    let aug = [Augment::Crop { pad: 4 }, Augment::HFlip];
    let run = |bs: usize, seed: u64, epoch: u64| {
        let batches = all_batches(&d, bs, true, &aug, Normalize::NONE, seed, epoch);
        let order: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        let images: Vec<f32> = batches.iter().flat_map(pixels).collect();
        (order, images)
    };
    let (o1, x1) = run(8, 5, 2);
    let (o2, x2) = run(8, 5, 2);
    assert_eq!(o1, o2);
    assert!(x1 == x2);
    // The order depends on the epoch and the seed.
    assert_ne!(run(8, 5, 3).0, o1);
    assert_ne!(run(8, 6, 2).0, o1);
    // An image's augmentation depends on its index, not on its batch.
    let (o3, x3) = run(13, 5, 2);
    assert_eq!(o3, o1);
    assert!(x3 == x1);
    // Augmentation changed something.
    let unaugmented: Vec<f32> = o1.iter().flat_map(|&i| d.image(i).iter().map(|&v| v as f32 / 255.0)).collect();
    assert!(x1.iter().zip(&unaugmented).any(|(a, b)| (a - b).abs() > 1e-3));
    // Without augmentation or shuffling, the images are the data set's.
    let plain = all_batches(&d, 40, false, &[], Normalize::NONE, 5, 2);
    assert_eq!(plain[0].indices, (0..40).collect::<Vec<_>>());
    let y = pixels(&plain[0]);
    assert_eq!(y.len(), d.images.len());
    assert!(y.iter().zip(&d.images).all(|(a, &b)| (a - b as f32 / 255.0).abs() < 1e-6));
}

#[test]
fn crop_pads_with_zeros_and_flip_mirrors() {
    // One 1x4x4 image with distinct values 1..=16.
    let img: Vec<u8> = (1..=16).collect();
    let d = Arc::new(Dataset {
        classes: vec!["a".into()],
        shape: [1, 4, 4],
        images: img.clone(),
        labels: vec![0],
        masks: None,
        source: "test".into(),
        index: vec![0],
        skipped: Vec::new(),
    });
    let at =
        |y: isize, x: isize| if (0..4).contains(&y) && (0..4).contains(&x) { img[(y * 4 + x) as usize] } else { 0 };
    let mut offsets = std::collections::BTreeSet::new();
    let mut flips = 0;
    for epoch in 0..200 {
        let b = all_batches(&d, 1, true, &[Augment::Crop { pad: 2 }], Normalize::NONE, 0, epoch);
        let out: Vec<u8> = pixels(&b[0]).iter().map(|v| (v * 255.0).round() as u8).collect();
        let found = (-2..=2)
            .flat_map(|dy| (-2..=2).map(move |dx| (dy, dx)))
            .find(|&(dy, dx)| (0..4).all(|y| (0..4).all(|x| out[(y * 4 + x) as usize] == at(y + dy, x + dx))));
        offsets.insert(found.expect("a crop is a shifted, zero-padded image"));

        let b = all_batches(&d, 1, true, &[Augment::HFlip], Normalize::NONE, 0, epoch);
        let out: Vec<u8> = pixels(&b[0]).iter().map(|v| (v * 255.0).round() as u8).collect();
        let mirrored: Vec<u8> = img.chunks(4).flat_map(|r| r.iter().rev().copied()).collect();
        if out == mirrored {
            flips += 1;
        } else {
            assert_eq!(out, img);
        }
    }
    assert_eq!(offsets.len(), 25, "every offset occurs");
    assert!((60..140).contains(&flips), "{flips} flips in 200");
}

#[test]
fn dropping_batches_early_does_not_hang() {
    let d = Arc::new(synthetic(Split::Train, [3, 32, 32], 500, 0));
    let aug = [Augment::Crop { pad: 4 }];
    let mut it = data::batches(d.clone(), 10, true, &aug, Normalize::NONE, 0, 0, Device::Cpu);
    assert!(it.next().unwrap().is_ok());
    drop(it);
    drop(data::batches(d.clone(), 10, true, &aug, Normalize::NONE, 0, 0, Device::Cpu));
    let mut it = data::batches(d, 0, true, &[], Normalize::NONE, 0, 0, Device::Cpu);
    assert!(it.next().unwrap().unwrap_err().to_string().contains("batch size"));
    assert!(it.next().is_none());
}

// ---------------------------------------------------------------- cifar10 binary

fn record(label: u8, fill: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend((0..3072).map(|k| fill.wrapping_add((k % 251) as u8)));
    r
}

/// Five training files of four records each and a test file of three.
fn write_cifar(dir: &Path) {
    for k in 1..=5u8 {
        let bytes: Vec<u8> = (0..4u8).flat_map(|j| record((k + j) % 10, k * 10 + j)).collect();
        std::fs::write(dir.join(format!("data_batch_{k}.bin")), bytes).unwrap();
    }
    let bytes: Vec<u8> = (0..3u8).flat_map(|j| record(j, 200 + j)).collect();
    std::fs::write(dir.join("test_batch.bin"), bytes).unwrap();
}

#[test]
fn cifar_binary_loads() {
    let tmp = TempDir::new("cifar");
    write_cifar(&tmp.0);
    let src = DataSource::Cifar10(tmp.0.display().to_string());
    let train = data::load(&src, Split::Train, [3, 32, 32], None, 0).unwrap();
    assert_eq!(train.len(), 20);
    assert_eq!(train.classes[0], "airplane");
    assert_eq!(train.classes.len(), 10);
    assert_eq!(train.labels[0], 1);
    assert_eq!(train.image(0), &record(1, 10)[1..]);
    assert_eq!(train.image(19), &record(8, 53)[1..]);
    assert!(train.masks.is_none());
    assert!(train.source.starts_with("cifar10:"));
    let test = data::load(&src, Split::Test, [3, 32, 32], None, 0).unwrap();
    assert_eq!(test.labels, [0, 1, 2]);
    assert_eq!(test.image(2), &record(2, 202)[1..]);

    // A limit takes a class-balanced subset.
    let some = data::load(&src, Split::Train, [3, 32, 32], Some(10), 0).unwrap();
    assert_eq!(some.len(), 10);
    // Labels 1..=8 occur 1, 2, 3, 4, 4, 3, 2, 1 times: one of each, then
    // a second from the first classes that have one.
    assert_eq!(counts(&some.labels, 10), [0, 1, 2, 2, 1, 1, 1, 1, 1, 0]);
    let again = data::load(&src, Split::Train, [3, 32, 32], Some(10), 0).unwrap();
    assert!(some.images == again.images);

    std::fs::write(tmp.0.join("batches.meta.txt"), "a\nb\nc\n\n").unwrap();
    let named = data::load(&src, Split::Test, [3, 32, 32], None, 0).unwrap();
    assert_eq!(named.classes, ["a", "b", "c"]);
    let err = data::load(&src, Split::Train, [3, 32, 32], None, 0).unwrap_err();
    assert!(err.to_string().contains("data_batch_1.bin: record 2 has label 3, but there are only 3 classes"), "{err}");
}

#[test]
fn cifar_errors_name_the_file() {
    let tmp = TempDir::new("cifar-bad");
    write_cifar(&tmp.0);
    let src = DataSource::Cifar10(tmp.0.display().to_string());
    let path = tmp.0.join("data_batch_3.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(3073 * 2 - 1);
    std::fs::write(&path, bytes).unwrap();
    let err = data::load(&src, Split::Train, [3, 32, 32], None, 0).unwrap_err();
    assert!(matches!(err, DataError::Bad { .. }));
    assert_eq!(err.to_string(), format!("{}: 6145 bytes is not a whole number of 3073-byte records", path.display()));

    std::fs::remove_file(tmp.0.join("test_batch.bin")).unwrap();
    let err = data::load(&src, Split::Test, [3, 32, 32], None, 0).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("test_batch.bin: cannot read"), "{err}");

    let err = data::load(&src, Split::Test, [3, 64, 64], None, 0).unwrap_err();
    assert!(err.to_string().contains("3x32x32"), "{err}");
}

// ---------------------------------------------------------------- folders and archives

/// A w x h PNG whose pixel (x, y) is (x, y, tag).
fn png(w: u32, h: u32, tag: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, tag]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([x as u8 * 8, 100, 50]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// (path, bytes) of a tiny data set of 8x8 images: train has classes `cat`
/// and `dog` with three images each, test has one each.
fn tiny_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (split, n) in [("train", 3), ("test", 1)] {
        for (k, class) in ["dog", "cat"].iter().enumerate() {
            for j in 0..n {
                files.push((format!("{split}/{class}/{j:03}.png"), png(8, 8, (k * 10 + j) as u8)));
            }
        }
    }
    files.push(("train/cat/notes.txt".into(), b"not an image".to_vec()));
    files
}

fn write_tar_gz(path: &Path, prefix: &str, files: &[(String, Vec<u8>)]) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("{prefix}{name}"), bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn check_tiny(d: &Dataset, split: Split) {
    assert_eq!(d.classes, ["cat", "dog"]);
    assert_eq!(d.shape, [3, 8, 8]);
    let n = if split == Split::Train { 3 } else { 1 };
    assert_eq!(d.len(), 2 * n);
    assert_eq!(counts(&d.labels, 2), [n, n]);
    // The first image is cat/000.png: (x, y, 10) in CHW order.
    assert_eq!(d.labels[0], 0);
    let img = d.image(0);
    assert_eq!(img[3], 3); // R at (x 3, y 0)
    assert_eq!(img[64 + 8 * 5], 5); // G at (x 0, y 5)
    assert_eq!(img[128], 10); // B
}

#[test]
fn folder_directory_of_pngs_loads() {
    let tmp = TempDir::new("folder");
    for (name, bytes) in tiny_files() {
        let path = tmp.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let src = DataSource::Folder(tmp.0.display().to_string());
    check_tiny(&data::load(&src, Split::Train, [3, 8, 8], None, 0).unwrap(), Split::Train);
    check_tiny(&data::load(&src, Split::Test, [3, 8, 8], None, 0).unwrap(), Split::Test);
    let gray = data::load(&src, Split::Test, [1, 8, 8], None, 0).unwrap();
    assert_eq!(gray.images.len(), 2 * 64);

    let some = data::load(&src, Split::Train, [3, 8, 8], Some(2), 0).unwrap();
    assert_eq!(counts(&some.labels, 2), [1, 1]);

    let err = data::load(&src, Split::Train, [3, 16, 16], None, 0).unwrap_err();
    let file = tmp.0.join("train/cat/000.png");
    assert!(err.to_string().starts_with(&format!("{}: the image is 8x8", file.display())), "{err}");
    assert!(err.to_string().contains("16x16"), "{err}");

    std::fs::write(tmp.0.join("test/dog/bad.jpg"), b"\xff\xd8\xff\xe0 garbage").unwrap();
    let err = data::load(&src, Split::Test, [3, 8, 8], None, 0).unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}: cannot decode", tmp.0.join("test/dog/bad.jpg").display())));
    assert!(err.to_string().contains("--skip-bad-images"), "{err}");

    let missing = DataSource::Folder(tmp.0.join("nowhere").display().to_string());
    let err = data::load(&missing, Split::Train, [3, 8, 8], None, 0).unwrap_err();
    assert!(err.to_string().contains("nowhere: cannot read"), "{err}");
}

#[test]
fn folder_tar_gz_loads_with_or_without_a_top_directory() {
    let tmp = TempDir::new("tar");
    for prefix in ["", "pets/", "./"] {
        let path = tmp.0.join("tiny.tar.gz");
        write_tar_gz(&path, prefix, &tiny_files());
        let src = DataSource::Folder(path.display().to_string());
        check_tiny(&data::load(&src, Split::Train, [3, 8, 8], None, 0).unwrap(), Split::Train);
        check_tiny(&data::load(&src, Split::Test, [3, 8, 8], None, 0).unwrap(), Split::Test);
    }
}

#[test]
fn folder_tar_gz_errors_name_the_archive_and_entry() {
    let tmp = TempDir::new("tar-bad");
    let path = tmp.0.join("bad.tar.gz");
    let mut files = tiny_files();
    files.push(("train/dog/good.jpg".into(), jpeg(8, 8)));
    let mut corrupt = jpeg(8, 8);
    corrupt.truncate(corrupt.len() / 3);
    files.push(("train/dog/corrupt.jpg".into(), corrupt));
    write_tar_gz(&path, "", &files);
    let src = DataSource::Folder(path.display().to_string());
    let err = data::load(&src, Split::Train, [3, 8, 8], None, 0).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: train/dog/corrupt.jpg: cannot decode", path.display())), "{msg}");
    // The test split does not contain it.
    check_tiny(&data::load(&src, Split::Test, [3, 8, 8], None, 0).unwrap(), Split::Test);

    let mut files = tiny_files();
    files.push(("test/cat/big.png".into(), png(9, 8, 0)));
    write_tar_gz(&path, "top/", &files);
    let err = data::load(&src, Split::Test, [3, 8, 8], None, 0).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: top/test/cat/big.png: the image is 9x8", path.display())), "{msg}");

    std::fs::write(&path, b"\x1f\x8b not really gzip").unwrap();
    let err = data::load(&src, Split::Test, [3, 8, 8], None, 0).unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}: ", path.display())), "{err}");
    write_tar_gz(&path, "", &[("other/a/x.png".into(), png(8, 8, 0))]);
    let err = data::load(&src, Split::Train, [3, 8, 8], None, 0).unwrap_err();
    assert!(err.to_string().contains("no .png, .jpg or .jpeg images under train/<class>/"), "{err}");
}

#[test]
fn bad_images_are_left_out_and_counted_when_asked() {
    let tmp = TempDir::new("skip-bad");
    let path = tmp.0.join("mixed.tar.gz");
    let mut files = tiny_files();
    files.push(("train/dog/truncated.png".into(), png(8, 8, 7)[..40].to_vec()));
    files.push(("train/cat/big.png".into(), png(9, 8, 0)));
    write_tar_gz(&path, "", &files);
    for source in [DataSource::Folder(path.display().to_string()), {
        // The same files as a folder.
        let dir = tmp.0.join("mixed");
        for (name, bytes) in &files {
            let file = dir.join(name);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, bytes).unwrap();
        }
        DataSource::Folder(dir.display().to_string())
    }] {
        // By default the first bad image stops the load, by name, with the way out.
        let err = data::load(&source, Split::Train, [3, 8, 8], None, 0).unwrap_err().to_string();
        assert!(err.contains("big.png") || err.contains("truncated.png"), "{err}");
        let recipe = netc::recipe::Data { dataset: source.clone(), skip_bad_images: true, ..Default::default() };
        let d = data::load_recipe_data(&recipe, Split::Train, [3, 8, 8], None, 0).unwrap();
        assert_eq!(d.len(), 6, "the six good images stay");
        assert_eq!(d.images.len(), 6 * 3 * 64);
        assert_eq!(d.skipped.len(), 2, "{:?}", d.skipped);
        assert!(
            d.skipped.iter().any(|s| s.contains("truncated.png") && s.contains("cannot decode")),
            "{:?}",
            d.skipped
        );
        assert!(d.skipped.iter().any(|s| s.contains("big.png") && s.contains("9x8")), "{:?}", d.skipped);
        // What remains is what a load without the bad files gives.
        check_tiny(&d, Split::Train);
        assert_eq!(d.index.len(), 6);
        assert!(d.index.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn folder_limit_decodes_only_the_chosen_images() {
    let tmp = TempDir::new("tar-limit");
    let path = tmp.0.join("limit.tar.gz");
    // Classes take turns, so a limit of 2 takes one image of `a` and one of
    // `b`; the broken image of `c` is never decoded.
    let files = [
        ("train/a/0.png".to_string(), png(8, 8, 1)),
        ("train/a/1.png".to_string(), png(8, 8, 2)),
        ("train/b/0.png".to_string(), png(8, 8, 3)),
        ("train/c/0.jpg".to_string(), b"\xff\xd8\xff\xe0 garbage".to_vec()),
    ];
    write_tar_gz(&path, "", &files);
    let src = DataSource::Folder(path.display().to_string());
    let d = data::load(&src, Split::Train, [3, 8, 8], Some(2), 0).unwrap();
    assert_eq!(d.classes, ["a", "b", "c"]);
    assert_eq!(d.labels, [0, 1]);
    assert_eq!(d.image(1)[128], 3);
    assert!(data::load(&src, Split::Train, [3, 8, 8], None, 0).is_err());
}

// ---------------------------------------------------------------- the shared real CIFAR-10

/// `shared/data/cifar10-jpg.tar.gz` next to the repository (or a worktree's
/// repository), if there.
fn real_cifar() -> Option<PathBuf> {
    let found = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/data/cifar10-jpg.tar.gz"))
        .find(|p| p.is_file());
    if found.is_none() {
        println!("note: shared/data/cifar10-jpg.tar.gz not found; skipping the real-data check");
    }
    found
}

#[test]
fn real_cifar10_jpg_loads_with_a_limit() {
    let Some(path) = real_cifar() else { return };
    let src = DataSource::Folder(path.display().to_string());
    let d = data::load(&src, Split::Test, [3, 32, 32], Some(1000), 0).unwrap();
    assert_eq!(d.len(), 1000);
    assert_eq!(d.shape, [3, 32, 32]);
    assert_eq!(d.classes.len(), 10);
    assert_eq!(d.classes[0], "airplane");
    assert_eq!(counts(&d.labels, 10), vec![100; 10]);
    let (mean, std) = d.channel_stats();
    assert!(mean.iter().all(|m| (0.35..0.6).contains(m)), "{mean:?}");
    assert!(std.iter().all(|s| (0.15..0.35).contains(s)), "{std:?}");
}

/// Timings; run with `cargo test --release --test data -- --ignored --nocapture`.
#[test]
#[ignore]
fn timings() {
    let t = Instant::now();
    let d = data::load(&DataSource::Synthetic, Split::Train, [3, 32, 32], None, 0).unwrap();
    println!("synthetic: {} train images 3x32x32 in {:.3} s", d.len(), t.elapsed().as_secs_f64());
    let t = Instant::now();
    let d = data::load(&DataSource::Synthetic, Split::Train, [3, 224, 224], Some(1000), 0).unwrap();
    println!("synthetic: {} train images 3x224x224 in {:.3} s", d.len(), t.elapsed().as_secs_f64());
    let d = Arc::new(synthetic(Split::Train, [3, 32, 32], 10_000, 0));
    let t = Instant::now();
    let n =
        data::batches(d, 128, true, &[Augment::Crop { pad: 4 }, Augment::HFlip], Normalize::NONE, 0, 0, Device::Cpu)
            .count();
    println!("batches: {n} augmented batches of 128 in {:.3} s", t.elapsed().as_secs_f64());
    let Some(path) = real_cifar() else { return };
    let src = DataSource::Folder(path.display().to_string());
    for limit in [None, Some(5000)] {
        let t = Instant::now();
        let d = data::load(&src, Split::Train, [3, 32, 32], limit, 0).unwrap();
        println!("cifar10-jpg: {} train images (limit {limit:?}) in {:.3} s", d.len(), t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    let d = data::load(&src, Split::Test, [3, 32, 32], None, 0).unwrap();
    println!("cifar10-jpg: {} test images in {:.3} s", d.len(), t.elapsed().as_secs_f64());
}
