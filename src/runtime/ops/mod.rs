//! Ops that candle lacks or does slowly, as candle custom ops with their own backward.
//!
//! Each op is a [`CustomOp1`] whose `bwd` applies a second custom op (without
//! backward of its own) that computes the input gradient from the output
//! gradient. All follow PyTorch's semantics, on CPU, for f32 and f64 NCHW
//! tensors of any layout. The kernels loop over the N*C planes, split across
//! the available cores when the work is large enough.
//!
//! [`CustomOp1`]: candle_core::CustomOp1

mod conv;
mod norm;
pub(crate) mod pool;
pub(crate) mod upsample;

pub use conv::conv2d;
pub use norm::batch_norm_train;
pub use pool::{avg_pool2d, max_pool2d};
pub use upsample::{upsample_bilinear2d, upsample_nearest2d};

use std::borrow::Cow;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, bail};

/// The element types the kernels run on: f32 and f64. Arithmetic on
/// coordinates and sums happens in the element type itself, as PyTorch's CPU
/// kernels do (their `opmath_t` is the type itself for f32 and f64).
pub(crate) trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    const HALF: Self;
    const NEG_INFINITY: Self;
    fn from_usize(n: usize) -> Self;
    fn floor(self) -> Self;
    /// Truncation towards zero of a non-negative value, as C's cast to an integer.
    fn to_usize(self) -> usize;
    fn is_nan(self) -> bool;
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $variant:ident) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const HALF: Self = 0.5;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            fn to_usize(self) -> usize {
                self as usize
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }
    };
}

impl_real!(f32, F32);
impl_real!(f64, F64);

/// A kernel from one NCHW tensor to another, generic over the element type.
/// [`Op1`] makes it a candle op.
pub(crate) trait Kernel1 {
    const NAME: &'static str;
    /// `x` is the contiguous data of an NCHW tensor of shape `dims`.
    fn run<T: Real>(&self, x: &[T], dims: [usize; 4]) -> Result<(Vec<T>, Shape)>;

    /// The input gradient from the output gradient, as candle's
    /// `CustomOp1::bwd`; kernels that are themselves gradients have none.
    fn backward(&self, _arg: &Tensor, _res: &Tensor, _grad: &Tensor) -> Result<Option<Tensor>> {
        Err(candle_core::Error::BackwardNotSupported { op: Self::NAME })
    }
}

/// A [`Kernel1`] as a candle custom op: the one `CustomOp1` implementation
/// the kernels share.
pub(crate) struct Op1<K>(pub K);

impl<K: Kernel1> CustomOp1 for Op1<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_fwd1(&self.0, s, l)
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        self.0.backward(arg, res, grad)
    }
}

/// A kernel from two NCHW tensors of the same dtype to a third.
pub(crate) trait Kernel2 {
    const NAME: &'static str;
    fn run<T: Real>(&self, a: &[T], a_dims: [usize; 4], b: &[T], b_dims: [usize; 4]) -> Result<(Vec<T>, Shape)>;
}

/// Dispatches a [`Kernel1`] on the dtype of a CPU storage.
pub(crate) fn cpu_fwd1<K: Kernel1>(k: &K, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
    let dims = dims4(K::NAME, l)?;
    match s {
        CpuStorage::F32(v) => k.run(&contiguous(v, l), dims).map(|(o, sh)| (f32::wrap(o), sh)),
        CpuStorage::F64(v) => k.run(&contiguous(v, l), dims).map(|(o, sh)| (f64::wrap(o), sh)),
        _ => bail!("{}: unsupported dtype {:?}, expected f32 or f64", K::NAME, s.dtype()),
    }
}

/// Dispatches a [`Kernel2`] on the dtype of two CPU storages.
pub(crate) fn cpu_fwd2<K: Kernel2>(
    k: &K,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let (d1, d2) = (dims4(K::NAME, l1)?, dims4(K::NAME, l2)?);
    match (s1, s2) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => {
            k.run(&contiguous(a, l1), d1, &contiguous(b, l2), d2).map(|(o, sh)| (f32::wrap(o), sh))
        }
        (CpuStorage::F64(a), CpuStorage::F64(b)) => {
            k.run(&contiguous(a, l1), d1, &contiguous(b, l2), d2).map(|(o, sh)| (f64::wrap(o), sh))
        }
        _ => bail!(
            "{}: unsupported dtypes {:?} and {:?}, expected both f32 or both f64",
            K::NAME,
            s1.dtype(),
            s2.dtype()
        ),
    }
}

/// Checks, before running an op, that `x` is a 4-d f32 or f64 tensor, and
/// returns its dims.
pub(crate) fn check_input(op: &str, x: &Tensor) -> Result<[usize; 4]> {
    if !matches!(x.dtype(), DType::F32 | DType::F64) {
        bail!("{op}: unsupported dtype {:?}, expected f32 or f64", x.dtype());
    }
    if x.rank() != 4 {
        bail!("{op}: expected an NCHW tensor of rank 4, got shape {:?}", x.dims());
    }
    let (n, c, h, w) = x.dims4()?;
    Ok([n, c, h, w])
}

fn dims4(op: &str, l: &Layout) -> Result<[usize; 4]> {
    match *l.dims() {
        [n, c, h, w] => Ok([n, c, h, w]),
        ref d => bail!("{op}: expected an NCHW tensor of rank 4, got shape {d:?}"),
    }
}

/// The data of a 4-d tensor in row-major order: borrowed if the layout is
/// contiguous, gathered otherwise.
pub(crate) fn contiguous<'a, T: Copy>(data: &'a [T], l: &Layout) -> Cow<'a, [T]> {
    if let Some((start, end)) = l.contiguous_offsets() {
        return Cow::Borrowed(&data[start..end]);
    }
    let (d, s, o) = (l.dims(), l.stride(), l.start_offset());
    let mut out = Vec::with_capacity(l.shape().elem_count());
    for i0 in 0..d[0] {
        for i1 in 0..d[1] {
            for i2 in 0..d[2] {
                let row = o + i0 * s[0] + i1 * s[1] + i2 * s[2];
                out.extend((0..d[3]).map(|i3| data[row + i3 * s[3]]));
            }
        }
    }
    Cow::Owned(out)
}

/// Below this many output elements per thread, a kernel runs on one thread.
const MIN_WORK_PER_THREAD: usize = 1 << 15;

/// Runs `f(plane, out_plane)` for each plane of `out`, whose planes are
/// `plane_len` elements each, splitting the planes across the available
/// cores when there is enough work.
pub(crate) fn for_planes<T: Send>(out: &mut [T], plane_len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if plane_len == 0 {
        return;
    }
    let planes = out.len() / plane_len;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(planes).min(out.len() / MIN_WORK_PER_THREAD).max(1);
    if threads == 1 {
        for (p, chunk) in out.chunks_mut(plane_len).enumerate() {
            f(p, chunk);
        }
        return;
    }
    let per_thread = planes.div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, chunk) in out.chunks_mut(per_thread * plane_len).enumerate() {
            let f = &f;
            scope.spawn(move || {
                for (p, plane) in chunk.chunks_mut(plane_len).enumerate() {
                    f(t * per_thread + p, plane);
                }
            });
        }
    });
}
