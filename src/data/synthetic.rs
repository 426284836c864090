//! Built-in synthetic images: one of ten shapes, of random place, size and
//! colour, over clutter (a noisy gradient with small blobs and thin lines
//! that are not class objects). The shape is the label; the mask marks the
//! object's pixels. Image `i` of a split depends only on (seed, split, i).

use std::convert::Infallible;

use super::{DataError, Dataset, Split, par_each};
use crate::rng::{Rng, TAG_SYNTHETIC, mix};

/// The class names, in label order.
pub const CLASSES: [&str; 10] =
    ["disc", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar", "x", "frame"];

const DEFAULT_TRAIN: usize = 10_000;
const DEFAULT_TEST: usize = 2_000;
const MIN_SIDE: usize = 16;

pub(super) fn load(split: Split, shape: [usize; 3], limit: Option<usize>, seed: u64) -> Result<Dataset, DataError> {
    let [c, h, w] = shape;
    let name = "synthetic";
    if c != 1 && c != 3 {
        return Err(DataError::Shape { data: name.into(), what: format!("images have 1 or 3 channels, not {c}") });
    }
    if h < MIN_SIDE || w < MIN_SIDE {
        return Err(DataError::Shape {
            data: name.into(),
            what: format!("images need at least {MIN_SIDE}x{MIN_SIDE} pixels, not {h}x{w}"),
        });
    }
    let n = limit.unwrap_or(match split {
        Split::Train => DEFAULT_TRAIN,
        Split::Test => DEFAULT_TEST,
    });
    // Per image: its pixels, its mask, its label and its place in the
    // work list below.
    crate::memory::check_fits(
        n as u128 * ((c + 1) * h * w + 36) as u128,
        &format!("{n} images of {c}x{h}x{w} (and their object masks)"),
        "use fewer images (`--train-images` and `--test-images` for a run, `--count` for a probe) or a smaller input",
    )
    .map_err(|what| DataError::Shape { data: name.into(), what })?;
    let split_seed = mix(&[TAG_SYNTHETIC, seed, split as u64]);
    // Labels cycle through the classes, so every prefix is balanced.
    let labels: Vec<u32> = (0..n).map(|i| (i % CLASSES.len()) as u32).collect();
    let mut images = vec![0u8; n * c * h * w];
    let mut masks = vec![0u8; n * h * w];
    let mut items: Vec<(&mut [u8], &mut [u8])> =
        images.chunks_exact_mut(c * h * w).zip(masks.chunks_exact_mut(h * w)).collect();
    par_each(&mut items, |i, (img, mask)| {
        let mut rng = Rng::new(mix(&[split_seed, i as u64]));
        draw(img, mask, shape, labels[i] as usize, &mut rng);
        Ok::<(), Infallible>(())
    })
    .unwrap_or_else(|e| match e {});
    drop(items);
    Ok(Dataset {
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        shape,
        images,
        labels,
        masks: Some(masks),
        source: name.into(),
        index: (0..n).collect(),
        skipped: Vec::new(),
    })
}

/// Whether the point (u, v), in units of the object's half-size from its
/// centre (v down), is inside the shape of `class`.
fn inside(class: usize, u: f32, v: f32) -> bool {
    let (au, av) = (u.abs(), v.abs());
    match class {
        0 => u * u + v * v <= 1.0,
        1 => au <= 0.8 && av <= 0.8,
        2 => (-0.9..=0.85).contains(&v) && au <= 0.95 * (v + 0.9) / 1.75,
        3 => (au <= 0.25 && av <= 0.95) || (av <= 0.25 && au <= 0.95),
        4 => (0.36..=1.0).contains(&(u * u + v * v)),
        5 => au + av <= 1.0,
        6 => au <= 0.95 && av <= 0.28,
        7 => au <= 0.28 && av <= 0.95,
        8 => au <= 0.85 && av <= 0.85 && ((u - v).abs() <= 0.3 || (u + v).abs() <= 0.3),
        _ => au.max(av) <= 0.9 && au.max(av) >= 0.58,
    }
}

struct Canvas<'a> {
    img: &'a mut [u8],
    c: usize,
    h: usize,
    w: usize,
}

impl Canvas<'_> {
    /// Paints `colour` (with a little noise) on the pixels whose centres
    /// satisfy `test`, within the box [x0, x1) x [y0, y1); marks them in
    /// `mask` when given.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        (x0, x1, y0, y1): (f32, f32, f32, f32),
        colour: [f32; 3],
        rng: &mut Rng,
        mut mask: Option<&mut [u8]>,
        test: impl Fn(f32, f32) -> bool,
    ) {
        let clampi = |v: f32, n: usize| (v.max(0.0) as usize).min(n);
        let (xa, xb) = (clampi(x0.floor(), self.w), clampi(x1.ceil(), self.w));
        let (ya, yb) = (clampi(y0.floor(), self.h), clampi(y1.ceil(), self.h));
        let plane = self.h * self.w;
        for y in ya..yb {
            for x in xa..xb {
                if !test(x as f32 + 0.5, y as f32 + 0.5) {
                    continue;
                }
                let noise = rng.next_u64();
                for (ch, &value) in colour.iter().enumerate().take(self.c) {
                    let n = ((noise >> (8 * ch)) & 0xff) as f32 / 255.0 - 0.5;
                    self.img[ch * plane + y * self.w + x] = (value + 20.0 * n).clamp(0.0, 255.0) as u8;
                }
                if let Some(m) = mask.as_deref_mut() {
                    m[y * self.w + x] = 1;
                }
            }
        }
    }
}

fn random_colour(rng: &mut Rng) -> [f32; 3] {
    [rng.range(0.0, 256.0), rng.range(0.0, 256.0), rng.range(0.0, 256.0)]
}

fn draw(img: &mut [u8], mask: &mut [u8], [c, h, w]: [usize; 3], class: usize, rng: &mut Rng) {
    let s = h.min(w) as f32;
    let (hf, wf) = (h as f32, w as f32);

    // Background: a colour with a gentle gradient and per-pixel noise.
    let base = random_colour(rng);
    let gx: [f32; 3] = std::array::from_fn(|_| rng.range(-30.0, 30.0));
    let gy: [f32; 3] = std::array::from_fn(|_| rng.range(-30.0, 30.0));
    let plane = h * w;
    for ch in 0..c {
        let row_step = gx[ch] / wf;
        for y in 0..h {
            let row = base[ch] + gy[ch] * ((y as f32 + 0.5) / hf - 0.5) - 0.5 * gx[ch];
            let out = &mut img[ch * plane + y * w..ch * plane + (y + 1) * w];
            let mut bits = 0u64;
            for (x, px) in out.iter_mut().enumerate() {
                if x % 8 == 0 {
                    bits = rng.next_u64();
                }
                let n = ((bits >> (8 * (x % 8))) & 0xff) as f32 / 255.0 - 0.5;
                *px = (row + row_step * (x as f32 + 0.5) + 40.0 * n).clamp(0.0, 255.0) as u8;
            }
        }
    }

    let mut canvas = Canvas { img, c, h, w };

    // Clutter: small blobs and thin lines, far from any class object's size.
    for _ in 0..2 + rng.below(3) {
        let colour = random_colour(rng);
        let (cx, cy) = (rng.range(0.0, wf), rng.range(0.0, hf));
        if rng.below(2) == 0 {
            let r = rng.range(0.03, 0.07) * s;
            let bbox = (cx - r, cx + r, cy - r, cy + r);
            canvas.fill(bbox, colour, rng, None, |x, y| (x - cx).powi(2) + (y - cy).powi(2) <= r * r);
        } else {
            let half = rng.range(0.08, 0.18) * s;
            let angle = rng.range(0.0, std::f32::consts::PI);
            let (dx, dy) = (angle.cos(), angle.sin());
            let t = (s / 64.0).max(0.6);
            let e = half + t;
            let bbox = (cx - e, cx + e, cy - e, cy + e);
            canvas.fill(bbox, colour, rng, None, |x, y| {
                let (px, py) = (x - cx, y - cy);
                let along = (px * dx + py * dy).clamp(-half, half);
                (px - along * dx).powi(2) + (py - along * dy).powi(2) <= t * t
            });
        }
    }

    // The object, in a colour that stands out from the background.
    let r = rng.range(0.2, 0.38) * s;
    let cx = rng.range(r, wf - r);
    let cy = rng.range(r, hf - r);
    let distance = |a: &[f32; 3]| (0..c).map(|ch| (a[ch] - base[ch]).abs()).sum::<f32>();
    let needed = if c == 1 { 70.0 } else { 160.0 };
    let mut colour = random_colour(rng);
    for _ in 0..32 {
        if distance(&colour) >= needed {
            break;
        }
        colour = random_colour(rng);
    }
    if distance(&colour) < needed {
        colour = base.map(|b| if b < 128.0 { 255.0 } else { 0.0 });
    }
    canvas.fill((cx - r, cx + r, cy - r, cy + r), colour, rng, Some(mask), |x, y| {
        inside(class, (x - cx) / r, (y - cy) / r)
    });
}
