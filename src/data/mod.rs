//! Data: built-in synthetic images, CIFAR-10 binaries and image folders, and the batches made from them.
//!
//! [`load`] reads a whole split into memory as u8 images (N x C x H x W) with
//! their labels; [`batches`] turns a [`Dataset`] into normalised, optionally
//! shuffled and augmented f32 tensors, prepared on a background thread.
//!
//! Everything random is derived from explicit seeds with a small
//! splitmix64 generator ([`crate::rng`]), so a (seed, epoch) pair always gives the
//! same order and the same augmentation of each image.

mod batch;
mod cifar;
mod folder;
pub mod get;
mod synthetic;

use std::fmt;

pub use batch::{Batch, Batches, Normalize, batches};

use crate::recipe::DataSource;

/// Which half of a data set to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The folder name of the split (`train` or `test`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// A split held in memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub classes: Vec<String>,
    /// C, H, W of every image.
    pub shape: [usize; 3],
    /// N x C x H x W bytes.
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    /// N x H x W, 1 on the object (synthetic data only).
    pub masks: Option<Vec<u8>>,
    /// Where the images came from, for messages, e.g. `cifar10:/path`.
    pub source: String,
    /// Each image's position in its whole split (sorted by class and file
    /// name for folders, in file order for CIFAR-10), for saying which
    /// images a figure shows.
    pub index: Vec<usize>,
    /// Images left out because they could not be read (with
    /// `skip_bad_images`, [`load_recipe_data`]): each one's name and what was wrong.
    pub skipped: Vec<String>,
}

impl Dataset {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of one image, C x H x W.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.iter().product::<usize>();
        &self.images[i * n..(i + 1) * n]
    }

    /// The object mask of one image, H x W, where the data set has masks.
    pub fn mask(&self, i: usize) -> Option<&[u8]> {
        let n = self.shape[1] * self.shape[2];
        self.masks.as_ref().map(|m| &m[i * n..(i + 1) * n])
    }

    /// Per-channel mean and standard deviation of the pixels, in [0, 1]
    /// units. A one-channel set repeats its statistics over the three slots.
    /// An empty set gives mean 0 and std 1.
    pub fn channel_stats(&self) -> ([f32; 3], [f32; 3]) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        if self.is_empty() || plane == 0 || c == 0 {
            return ([0.0; 3], [1.0; 3]);
        }
        let mut sum = vec![0u64; c];
        let mut sq = vec![0u64; c];
        for img in self.images.chunks_exact(c * plane) {
            for (ch, p) in img.chunks_exact(plane).enumerate() {
                let (mut s, mut q) = (0u64, 0u64);
                for &v in p {
                    s += v as u64;
                    q += (v as u64) * (v as u64);
                }
                sum[ch] += s;
                sq[ch] += q;
            }
        }
        let count = (self.len() * plane) as f64;
        let mut mean = [0f32; 3];
        let mut std = [0f32; 3];
        for k in 0..3 {
            let ch = k.min(c - 1);
            let m = sum[ch] as f64 / count;
            let var = (sq[ch] as f64 / count - m * m).max(0.0);
            mean[k] = (m / 255.0) as f32;
            std[k] = (var.sqrt() / 255.0) as f32;
        }
        (mean, std)
    }
}

/// A data set that could not be loaded. Every message names the file (and
/// the archive entry) and says what is wrong.
#[derive(Debug)]
pub enum DataError {
    /// A file or directory could not be read.
    Io { path: String, error: std::io::Error },
    /// A file, or an entry of an archive, is not what the loader expects.
    Bad { path: String, entry: Option<String>, what: String },
    /// The data set cannot give images of the requested shape.
    Shape { data: String, what: String },
    /// The data set is not where the spec says, with what to do about it.
    Missing { guide: String },
}

impl DataError {
    pub(crate) fn io(path: impl fmt::Display, error: std::io::Error) -> Self {
        DataError::Io { path: path.to_string(), error }
    }

    pub(crate) fn bad(path: impl fmt::Display, what: impl Into<String>) -> Self {
        DataError::Bad { path: path.to_string(), entry: None, what: what.into() }
    }

    pub(crate) fn bad_entry(path: impl fmt::Display, entry: impl Into<String>, what: impl Into<String>) -> Self {
        DataError::Bad { path: path.to_string(), entry: Some(entry.into()), what: what.into() }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, error } => write!(f, "{path}: cannot read: {error}"),
            DataError::Bad { path, entry: None, what } => write!(f, "{path}: {what}"),
            DataError::Bad { path, entry: Some(entry), what } => write!(f, "{path}: {entry}: {what}"),
            DataError::Shape { data, what } => write!(f, "{data}: {what}"),
            DataError::Missing { guide } => f.write_str(guide),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Loads one split of `source` with images of `shape` (C, H, W).
///
/// `limit` takes a seeded, class-balanced subset of N images (all when
/// absent; for synthetic data it is the number of images to make, 10,000
/// train and 2,000 test by default). `seed` decides the synthetic images and
/// the subset.
pub fn load(
    source: &DataSource,
    split: Split,
    shape: [usize; 3],
    limit: Option<usize>,
    seed: u64,
) -> Result<Dataset, DataError> {
    load_split(source, split, shape, limit, seed, false)
}

/// [`load`] as a recipe's `[data]` says: its source, and with
/// `skip_bad_images` an image of a folder or archive that cannot be read,
/// decoded, or is not of `shape` is left out and listed in
/// [`Dataset::skipped`] instead of failing the whole load.
pub fn load_recipe_data(
    data: &crate::recipe::Data,
    split: Split,
    shape: [usize; 3],
    limit: Option<usize>,
    seed: u64,
) -> Result<Dataset, DataError> {
    load_split(&data.dataset, split, shape, limit, seed, data.skip_bad_images)
}

fn load_split(
    source: &DataSource,
    split: Split,
    shape: [usize; 3],
    limit: Option<usize>,
    seed: u64,
    skip_bad: bool,
) -> Result<Dataset, DataError> {
    match source {
        DataSource::Synthetic => synthetic::load(split, shape, limit, seed),
        DataSource::Cifar10(dir) => cifar::load(dir, split, shape, limit, seed),
        DataSource::Folder(path) => folder::load(path, split, shape, limit, seed, skip_bad),
    }
}

/// The one rule for the test images heatmaps are drawn on, shared by
/// `netc run` (its end-of-run figure), `netc probe` and `netc compare`: a
/// class-balanced subset of `count` images of the whole test split, drawn
/// with the fixed seed 0 ([`balanced_subset`]; for synthetic data, the first
/// `count` test images, whose labels cycle through the classes). The same
/// data therefore gives the same images to every run, whatever its seed or
/// `test_images`. Their positions in the split are [`Dataset::index`].
pub fn probe_images(data: &crate::recipe::Data, shape: [usize; 3], count: usize) -> Result<Dataset, DataError> {
    load_recipe_data(data, Split::Test, shape, Some(count), 0)
}

/// The indices (sorted) of a seeded subset of `n` items that is as balanced
/// over the classes as the data allow: each class's items are shuffled, then
/// classes take turns giving one until `n` are taken. All items when `n` is
/// at least their number.
pub(crate) fn balanced_subset(labels: &[u32], n: usize, seed: u64) -> Vec<usize> {
    if n >= labels.len() {
        return (0..labels.len()).collect();
    }
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut rng = crate::rng::Rng::new(crate::rng::mix(&[seed, crate::rng::TAG_SUBSET]));
    for list in &mut by_class {
        rng.shuffle(list);
    }
    let mut taken = Vec::with_capacity(n);
    let mut round = 0;
    while taken.len() < n {
        for list in &by_class {
            if taken.len() == n {
                break;
            }
            if let Some(&i) = list.get(round) {
                taken.push(i);
            }
        }
        round += 1;
    }
    taken.sort_unstable();
    taken
}

/// Runs `f(i, &mut items[i])` for every item, spread over all cores.
/// Returns the error of the lowest index, if any.
pub(crate) fn par_each<T: Send, E: Send>(
    items: &mut [T],
    f: impl Fn(usize, &mut T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let n = items.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n.div_ceil(64)).max(1);
    if threads == 1 {
        return items.iter_mut().enumerate().try_for_each(|(i, item)| f(i, item));
    }
    let per = n.div_ceil(threads);
    let f = &f;
    let errors: Vec<Option<E>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks_mut(per)
            .enumerate()
            .map(|(t, part)| {
                s.spawn(move || part.iter_mut().enumerate().try_for_each(|(k, item)| f(t * per + k, item)).err())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    match errors.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
