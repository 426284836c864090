//! The one seeded generator (splitmix64): fast, reproducible, good enough
//! for initialisation, shuffling, augmentation, dropout and drawing
//! synthetic images. Every use seeds its own generator with [`mix`] of the
//! run's seed, a position (epoch, image, step) and a stream tag, so a
//! number never depends on how many were drawn before it.

/// Stream tags, so that different uses of one seed do not share numbers.
pub(crate) const TAG_SUBSET: u64 = 0x5b5e_7000;
pub(crate) const TAG_ORDER: u64 = 0x0bde_7000;
pub(crate) const TAG_AUGMENT: u64 = 0xa065_7000;
pub(crate) const TAG_SYNTHETIC: u64 = 0x5e7_7000;
pub(crate) const TAG_INIT: u64 = 0x1417_7000;
pub(crate) const TAG_DROPOUT: u64 = 0xd809_7000;

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes a sequence of keys into one seed (order matters).
pub(crate) fn mix(keys: &[u64]) -> u64 {
    keys.iter().fold(0x243f_6a88_85a3_08d3, |h, &k| splitmix(h ^ k))
}

pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(splitmix(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in 0..n (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A number in [0, 1).
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// A number in [0, 1), with double precision.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal number (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.uniform()).cos()
    }

    /// A number in [lo, hi).
    pub(crate) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}
