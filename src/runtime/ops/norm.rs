//! Batch normalisation in training mode as one op: batch statistics,
//! normalisation, scale and shift in two passes over the data, and the
//! whole backward (input, scale and shift gradients) in two more, as
//! PyTorch's CPU kernel does. Built from candle's elementwise and reduction
//! ops, the same computation takes several times as many passes.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::{Real, contiguous, for_planes};

/// `(x - mean) / sqrt(var + eps) * weight + bias` with the per-channel
/// mean and (biased) variance of the batch `x` [N, C, H, W]. Returns the
/// output and those statistics, for the running averages.
pub fn batch_norm_train(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<(Tensor, Vec<f64>, Vec<f64>)> {
    if x.rank() != 4 || weight.dims() != [x.dim(1)?] || bias.dims() != [x.dim(1)?] {
        bail!("batch_norm: input {:?} with weight {:?} and bias {:?}", x.dims(), weight.dims(), bias.dims());
    }
    let stats = Arc::new(Mutex::new(Stats::default()));
    let y = x.apply_op3(weight, bias, BatchNorm { eps, stats: stats.clone() })?;
    let s = stats.lock().expect("not poisoned");
    Ok((y, s.mean.clone(), s.var.clone()))
}

/// Per-channel statistics of the last forward pass, kept for the backward.
#[derive(Default)]
struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
}

struct BatchNorm {
    eps: f64,
    stats: Arc<Mutex<Stats>>,
}

/// Sums `f(value)` over the elements of channel `c` of an [N, C, L] array.
fn channel_sum<T: Real>(x: &[T], [n, c, l]: [usize; 3], ch: usize, f: impl Fn(usize, T) -> f64) -> f64 {
    let mut sum = 0.0;
    for b in 0..n {
        let start = (b * c + ch) * l;
        for (i, v) in x[start..start + l].iter().enumerate() {
            sum += f(start + i, *v);
        }
    }
    sum
}

fn dims3(l: &Layout) -> Result<[usize; 3]> {
    match *l.dims() {
        [n, c, h, w] => Ok([n, c, h * w]),
        ref d => bail!("batch_norm: expected an NCHW tensor, got {d:?}"),
    }
}

impl BatchNorm {
    fn forward<T: Real>(&self, x: &[T], dims: [usize; 3], weight: &[T], bias: &[T]) -> Vec<T> {
        let [n, c, l] = dims;
        let count = (n * l) as f64;
        let mean: Vec<f64> = (0..c).map(|ch| channel_sum(x, dims, ch, |_, v| v.to_f64()) / count).collect();
        let var: Vec<f64> =
            (0..c).map(|ch| channel_sum(x, dims, ch, |_, v| (v.to_f64() - mean[ch]).powi(2)) / count).collect();
        let mut y = vec![T::ZERO; x.len()];
        for_planes(&mut y, l, |plane, out| {
            let ch = plane % c;
            let scale = weight[ch].to_f64() / (var[ch] + self.eps).sqrt();
            let shift = bias[ch].to_f64() - mean[ch] * scale;
            for (o, v) in out.iter_mut().zip(&x[plane * l..(plane + 1) * l]) {
                *o = T::from_f64(v.to_f64() * scale + shift);
            }
        });
        *self.stats.lock().expect("not poisoned") = Stats { mean, var };
        y
    }
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims3(l1)?;
        if !l2.is_contiguous() || !l3.is_contiguous() {
            bail!("batch_norm: weight and bias must be contiguous");
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => f32::wrap(self.forward(
                &contiguous(x, l1),
                dims,
                &w[l2.start_offset()..][..dims[1]],
                &b[l3.start_offset()..][..dims[1]],
            )),
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => f64::wrap(self.forward(
                &contiguous(x, l1),
                dims,
                &w[l2.start_offset()..][..dims[1]],
                &b[l3.start_offset()..][..dims[1]],
            )),
            _ => bail!("batch_norm: expected f32 or f64 tensors of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (mean, var) = {
            let s = self.stats.lock().expect("not poisoned");
            (s.mean.clone(), s.var.clone())
        };
        let weight: Vec<f64> = weight.to_dtype(candle_core::DType::F64)?.to_vec1()?;
        let sums = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let back = Backward { mean, var, weight, eps: self.eps, sums: sums.clone() };
        let dx = x.apply_op2_no_bwd(grad, &back)?;
        let (dw, db) = sums.lock().expect("not poisoned").clone();
        let c = dw.len();
        let (dw, db) = (Tensor::from_vec(dw, c, x.device())?, Tensor::from_vec(db, c, x.device())?);
        Ok((Some(dx), Some(dw.to_dtype(x.dtype())?), Some(db.to_dtype(x.dtype())?)))
    }
}

/// The input gradient; the scale and shift gradients (per-channel sums of
/// `dy * xhat` and `dy`) are left in `sums`.
struct Backward {
    mean: Vec<f64>,
    var: Vec<f64>,
    weight: Vec<f64>,
    eps: f64,
    sums: Arc<Mutex<(Vec<f64>, Vec<f64>)>>,
}

impl Backward {
    fn run<T: Real>(&self, x: &[T], dy: &[T], dims: [usize; 3]) -> Vec<T> {
        let [n, c, l] = dims;
        let count = (n * l) as f64;
        let inv: Vec<f64> = self.var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let sum_dy: Vec<f64> = (0..c).map(|ch| channel_sum(dy, dims, ch, |_, g| g.to_f64())).collect();
        let sum_dy_xhat: Vec<f64> = (0..c)
            .map(|ch| channel_sum(dy, dims, ch, |i, g| g.to_f64() * (x[i].to_f64() - self.mean[ch]) * inv[ch]))
            .collect();
        let mut dx = vec![T::ZERO; x.len()];
        for_planes(&mut dx, l, |plane, out| {
            let ch = plane % c;
            let (k, m1, m2) = (self.weight[ch] * inv[ch], sum_dy[ch] / count, sum_dy_xhat[ch] / count);
            let range = plane * l..(plane + 1) * l;
            for ((o, v), g) in out.iter_mut().zip(&x[range.clone()]).zip(&dy[range]) {
                let xhat = (v.to_f64() - self.mean[ch]) * inv[ch];
                *o = T::from_f64(k * (g.to_f64() - m1 - xhat * m2));
            }
        });
        *self.sums.lock().expect("not poisoned") = (sum_dy_xhat, sum_dy);
        dx
    }
}

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        "batch_norm_backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = dims3(l1)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                f32::wrap(self.run(&contiguous(x, l1), &contiguous(g, l2), dims))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                f64::wrap(self.run(&contiguous(x, l1), &contiguous(g, l2), dims))
            }
            _ => bail!("batch_norm_backward: expected f32 or f64 tensors of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}
