//! Optimisers with PyTorch's update rules, the loss, the training step that
//! uses them, and the learning-rate schedule.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use crate::recipe::{OptimizerKind, Schedule, Train};
use crate::runtime::Mode;
use crate::runtime::native::{self, Net, Param};

/// SGD (momentum, Nesterov, L2 weight decay) or AdamW (decoupled decay),
/// with PyTorch's update rules in f32. Its state is a set of named
/// buffers, saved in checkpoints under `netc/optim/<param>.<slot>`, so a
/// resumed run continues exactly.
pub struct Optimizer {
    settings: crate::recipe::Optimizer,
    /// `<param>.momentum` for SGD; `<param>.m`, `<param>.v` for AdamW.
    state: BTreeMap<String, Vec<f32>>,
    /// Updates done, for AdamW's bias correction.
    pub steps: u64,
}

impl Optimizer {
    pub fn new(settings: &crate::recipe::Optimizer) -> Self {
        Optimizer { settings: settings.clone(), state: BTreeMap::new(), steps: 0 }
    }

    /// One update of every parameter from its gradient.
    pub fn step(&mut self, params: &mut [Param], lr: f64) {
        self.steps += 1;
        let o = &self.settings;
        let (lr, wd) = (lr as f32, o.weight_decay as f32);
        for p in params.iter_mut().filter(|p| p.has_grad) {
            match o.kind {
                OptimizerKind::Sgd => {
                    let momentum = o.momentum as f32;
                    if momentum == 0.0 {
                        for (v, g) in p.value.iter_mut().zip(&p.grad) {
                            *v -= lr * (g + wd * *v);
                        }
                        continue;
                    }
                    let slot = format!("{}.momentum", p.name);
                    // PyTorch starts the momentum buffer at the first gradient.
                    let fresh = !self.state.contains_key(&slot);
                    let buf = self.state.entry(slot).or_insert_with(|| vec![0.0; p.value.len()]);
                    for ((v, g), b) in p.value.iter_mut().zip(&p.grad).zip(buf.iter_mut()) {
                        let g = g + wd * *v;
                        *b = if fresh { g } else { momentum * *b + g };
                        *v -= lr * if o.nesterov { g + momentum * *b } else { *b };
                    }
                }
                OptimizerKind::Adamw => {
                    let [b1, b2] = o.betas.map(|b| b as f32);
                    let t = self.steps as i32;
                    let (c1, c2) = (1.0 - o.betas[0].powi(t), 1.0 - o.betas[1].powi(t));
                    let (c1, c2, eps) = (c1 as f32, c2 as f32, o.eps as f32);
                    let fresh = || vec![0.0; p.value.len()];
                    let mut m = self.state.remove(&format!("{}.m", p.name)).unwrap_or_else(fresh);
                    let mut v = self.state.remove(&format!("{}.v", p.name)).unwrap_or_else(fresh);
                    for (((w, g), m), v) in p.value.iter_mut().zip(&p.grad).zip(m.iter_mut()).zip(v.iter_mut()) {
                        *m = b1 * *m + (1.0 - b1) * g;
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        let adam = (*m / c1) / ((*v / c2).sqrt() + eps);
                        *w -= lr * (adam + wd * *w);
                    }
                    self.state.insert(format!("{}.m", p.name), m);
                    self.state.insert(format!("{}.v", p.name), v);
                }
            }
        }
    }

    /// The state, by name, for a checkpoint (without the `optim.` prefix).
    pub fn state(&self) -> BTreeMap<String, Tensor> {
        let tensor = |v: &Vec<f32>| Tensor::from_slice(v, v.len(), &Device::Cpu).expect("a vector fits its length");
        self.state.iter().map(|(k, v)| (k.clone(), tensor(v))).collect()
    }

    /// Takes the state of a checkpoint back; `steps` updates were done.
    pub fn restore(&mut self, state: &BTreeMap<String, Tensor>, steps: u64) -> Result<(), String> {
        self.state = state
            .iter()
            .map(|(k, t)| {
                let v = t.flatten_all().and_then(|t| t.to_dtype(candle_core::DType::F32)).and_then(|t| t.to_vec1());
                v.map(|v| (k.clone(), v)).map_err(|e| format!("optimiser state `{k}`: {e}"))
            })
            .collect::<Result<_, _>>()?;
        self.steps = steps;
        Ok(())
    }
}

/// Scales all gradients so that their global L2 norm is at most `limit`.
fn clip(params: &mut [Param], limit: f64) {
    let total: f64 = params.iter().flat_map(|p| &p.grad).map(|g| (*g as f64) * (*g as f64)).sum();
    let norm = total.sqrt();
    if norm > limit {
        let scale = (limit / norm) as f32;
        params.iter_mut().flat_map(|p| &mut p.grad).for_each(|g| *g *= scale);
    }
}

/// The learning rate at `step` (counted from 0 over the whole run): linear
/// warm-up over `warmup_epochs`, then the schedule, per step.
pub fn learning_rate(train: &Train, base: f64, step: u64, steps_per_epoch: u64) -> f64 {
    let per_epoch = steps_per_epoch.max(1) as f64;
    let warmup = train.warmup_epochs as f64 * per_epoch;
    let t = step as f64;
    if t < warmup {
        return base * (t + 1.0) / warmup;
    }
    let total = (train.epochs as f64 * per_epoch - warmup).max(1.0);
    match &train.schedule {
        Schedule::Constant => base,
        Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * ((t - warmup) / total).min(1.0)).cos()),
        Schedule::Step { milestones, gamma } => {
            let epoch = (t / per_epoch).floor() as u32;
            base * gamma.powi(milestones.iter().filter(|m| epoch >= **m).count() as i32)
        }
    }
}

/// What one training step needs besides the batch.
#[derive(Clone, Copy, Debug)]
pub struct StepSettings {
    pub lr: f64,
    pub label_smoothing: f64,
    /// The largest global L2 norm of the gradients, if any.
    pub grad_clip: Option<f64>,
    pub dropout_seed: u64,
}

/// One training step on a batch (NCHW `images`, one label each), the one
/// `netc run` and `netc bench` take: forward in training mode, the loss,
/// and, when the loss is finite, backward, clipping and the update. A loss
/// that is not finite comes back with nothing updated, so that the caller
/// can stop with the weights intact.
pub fn train_step(
    net: &mut Net,
    optimizer: &mut Optimizer,
    images: &[f32],
    labels: &[u32],
    s: &StepSettings,
) -> Result<Loss, native::Error> {
    let logits = net.forward(images, labels.len(), Mode::Train, s.dropout_seed)?;
    let loss = softmax_cross_entropy(logits, labels, s.label_smoothing);
    if loss.value.is_finite() {
        net.backward(&loss.grad)?;
        if let Some(limit) = s.grad_clip {
            clip(net.params_mut(), limit);
        }
        optimizer.step(net.params_mut(), s.lr);
    }
    Ok(loss)
}

/// The loss of a batch, from [`softmax_cross_entropy`].
pub struct Loss {
    /// Mean over the batch.
    pub value: f64,
    /// Its gradient with respect to the logits, `[N, K]`.
    pub grad: Vec<f32>,
    /// Examples whose largest logit is their label's.
    pub correct: usize,
}

/// Cross-entropy of `logits` `[N, K]` against `labels`, with label
/// smoothing `eps` (the target puts `eps / K` on every class), as
/// PyTorch's `cross_entropy(..., label_smoothing=eps)`.
pub fn softmax_cross_entropy(logits: &[f32], labels: &[u32], eps: f64) -> Loss {
    let n = labels.len();
    let k = logits.len() / n.max(1);
    let mut grad = vec![0.0f32; logits.len()];
    let (mut total, mut correct) = (0.0f64, 0);
    for ((row, g), &label) in logits.chunks_exact(k).zip(grad.chunks_exact_mut(k)).zip(labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b));
        let sum: f64 = row.iter().map(|v| ((v - max) as f64).exp()).sum();
        let log_sum = sum.ln() + max as f64;
        let logp = |v: f32| v as f64 - log_sum;
        let nll = -logp(row[label as usize]);
        let uniform = -row.iter().map(|v| logp(*v)).sum::<f64>() / k as f64;
        total += (1.0 - eps) * nll + eps * uniform;
        for (j, (gj, v)) in g.iter_mut().zip(row).enumerate() {
            let target = eps / k as f64 + if j == label as usize { 1.0 - eps } else { 0.0 };
            *gj = ((logp(*v).exp() - target) / n as f64) as f32;
        }
        let best = row.iter().enumerate().fold(0, |b, (j, v)| if *v > row[b] { j } else { b });
        correct += usize::from(best == label as usize);
    }
    Loss { value: total / n.max(1) as f64, grad, correct }
}
