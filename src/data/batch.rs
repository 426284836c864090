//! Batches: shuffled, augmented and normalised f32 tensors made on a
//! background thread, two batches ahead of the consumer.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use candle_core::{Device, Error, Result, Tensor};

use super::Dataset;
use crate::recipe::Augment;
use crate::rng::{Rng, TAG_AUGMENT, TAG_ORDER, mix};

/// Per-channel normalisation, in [0, 1] pixel units: `(x - mean) / std`.
/// A one-channel data set uses the first slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    /// Only scales bytes to [0, 1].
    pub const NONE: Normalize = Normalize { mean: [0.0; 3], std: [1.0; 3] };

    /// The statistics of a data set (usually its training split).
    pub fn of(data: &Dataset) -> Self {
        let (mean, std) = data.channel_stats();
        Normalize { mean, std }
    }
}

/// One batch: images N x C x H x W (f32, normalised), labels N (u32), and
/// the indices of the images in the data set.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    pub indices: Vec<usize>,
}

/// The iterator returned by [`batches`]. Dropping it early stops the
/// background thread (after the batch it is making).
pub struct Batches {
    rx: Option<Receiver<Result<Batch>>>,
    worker: Option<JoinHandle<()>>,
    error: Option<String>,
}

/// The batches of one epoch of `data`.
///
/// The order is a permutation that depends only on (`seed`, `epoch`) when
/// `shuffle`, else the data set's order; the augmentation of image `i`
/// depends only on (`seed`, `epoch`, `i`). The last batch may be smaller.
/// Batches are made on a background thread, at most two ahead.
#[allow(clippy::too_many_arguments)]
pub fn batches(
    data: Arc<Dataset>,
    batch_size: usize,
    shuffle: bool,
    augment: &[Augment],
    norm: Normalize,
    seed: u64,
    epoch: u64,
    device: Device,
) -> Batches {
    if batch_size == 0 {
        return Batches { rx: None, worker: None, error: Some("the batch size must be at least 1".into()) };
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    if shuffle {
        Rng::new(mix(&[seed, epoch, TAG_ORDER])).shuffle(&mut order);
    }
    let augment = augment.to_vec();
    let (tx, rx) = sync_channel(2);
    let spawned = std::thread::Builder::new().name("netc-data".into()).spawn(move || {
        let mut scratch = (Vec::new(), Vec::new());
        for chunk in order.chunks(batch_size) {
            let batch = make_batch(&data, chunk, &augment, &norm, seed, epoch, &device, &mut scratch);
            if tx.send(batch).is_err() {
                return;
            }
        }
    });
    match spawned {
        Ok(worker) => Batches { rx: Some(rx), worker: Some(worker), error: None },
        Err(e) => Batches { rx: None, worker: None, error: Some(format!("cannot start the data loader thread: {e}")) },
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.error.take() {
            return Some(Err(Error::Msg(e)));
        }
        match self.rx.as_ref()?.recv() {
            Ok(batch) => Some(batch),
            Err(_) => {
                self.rx = None;
                if let Some(worker) = self.worker.take()
                    && worker.join().is_err()
                {
                    return Some(Err(Error::Msg("the data loader thread panicked".into())));
                }
                None
            }
        }
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the channel makes the worker's next send fail, so it ends.
        self.rx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn make_batch(
    data: &Dataset,
    indices: &[usize],
    augment: &[Augment],
    norm: &Normalize,
    seed: u64,
    epoch: u64,
    device: &Device,
    (cur, tmp): &mut (Vec<u8>, Vec<u8>),
) -> Result<Batch> {
    let [c, h, w] = data.shape;
    let plane = h * w;
    let scale: [f32; 3] = std::array::from_fn(|k| 1.0 / (255.0 * norm.std[k].max(1e-6)));
    let shift: [f32; 3] = std::array::from_fn(|k| norm.mean[k] / norm.std[k].max(1e-6));
    let mut images = Vec::with_capacity(indices.len() * c * plane);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        let mut img = data.image(i);
        if !augment.is_empty() {
            let mut rng = Rng::new(mix(&[seed, epoch, i as u64, TAG_AUGMENT]));
            apply(img, data.shape, augment, &mut rng, cur, tmp);
            img = cur;
        }
        for (ch, p) in img.chunks_exact(plane).enumerate() {
            let (a, b) = (scale[ch.min(2)], shift[ch.min(2)]);
            images.extend(p.iter().map(|&v| v as f32 * a - b));
        }
        labels.push(data.labels[i]);
    }
    let n = indices.len();
    Ok(Batch {
        images: Tensor::from_vec(images, (n, c, h, w), device)?,
        labels: Tensor::from_vec(labels, n, device)?,
        indices: indices.to_vec(),
    })
}

/// Applies the augmentations in order to `img`, leaving the result in `cur`.
fn apply(img: &[u8], [c, h, w]: [usize; 3], ops: &[Augment], rng: &mut Rng, cur: &mut Vec<u8>, tmp: &mut Vec<u8>) {
    cur.clear();
    cur.extend_from_slice(img);
    for op in ops {
        match *op {
            Augment::Crop { pad } => {
                // Zero-pad by `pad`, then crop H x W at a random offset:
                // output (y, x) is input (y + dy, x + dx), or 0 outside.
                let pad = pad as usize;
                let dy = rng.below(2 * pad + 1) as isize - pad as isize;
                let dx = rng.below(2 * pad + 1) as isize - pad as isize;
                if dx == 0 && dy == 0 {
                    continue;
                }
                tmp.clear();
                tmp.resize(c * h * w, 0);
                let (wi, hi) = (w as isize, h as isize);
                let x0 = (-dx).clamp(0, wi) as usize;
                let x1 = (wi - dx).clamp(0, wi) as usize;
                for ch in 0..c {
                    for y in 0..h {
                        let sy = y as isize + dy;
                        if sy < 0 || sy >= hi || x0 >= x1 {
                            continue;
                        }
                        let src = ch * h * w + sy as usize * w;
                        let dst = ch * h * w + y * w;
                        let sx0 = (x0 as isize + dx) as usize;
                        tmp[dst + x0..dst + x1].copy_from_slice(&cur[src + sx0..src + sx0 + (x1 - x0)]);
                    }
                }
                std::mem::swap(cur, tmp);
            }
            Augment::HFlip => {
                if rng.below(2) == 1 {
                    for row in cur.chunks_exact_mut(w) {
                        row.reverse();
                    }
                }
            }
        }
    }
}
