//! Optimisers with PyTorch's update rules, and the learning-rate schedule.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor, Var};

use crate::recipe::{OptimizerKind, Schedule, Train};

/// SGD (momentum, Nesterov, L2 weight decay) or AdamW (decoupled decay).
/// Its state is a set of named tensors, saved in checkpoints under
/// `netc/optim/<param>.<slot>`, so a resumed run continues exactly.
pub struct Optimizer {
    settings: crate::recipe::Optimizer,
    /// `<param>.momentum` for SGD; `<param>.m`, `<param>.v` for AdamW.
    state: BTreeMap<String, Tensor>,
    /// Updates done, for AdamW's bias correction.
    pub steps: u64,
}

impl Optimizer {
    pub fn new(settings: &crate::recipe::Optimizer) -> Self {
        Optimizer { settings: settings.clone(), state: BTreeMap::new(), steps: 0 }
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, params: &BTreeMap<String, Var>, grads: &BTreeMap<String, Tensor>, lr: f64) -> Result<()> {
        self.steps += 1;
        let o = &self.settings;
        for (name, var) in params {
            let Some(g) = grads.get(name) else { continue };
            // Detached: the update must not record autograd history, or the
            // stored momentum would keep every earlier step's graph alive.
            let (p, g) = (var.as_tensor().detach(), g.detach());
            let (p, g) = (&p, &g);
            let update = match o.kind {
                OptimizerKind::Sgd => {
                    let g = if o.weight_decay != 0.0 { (g + p.affine(o.weight_decay, 0.0)?)? } else { g.clone() };
                    if o.momentum == 0.0 {
                        g
                    } else {
                        let key = format!("{name}.momentum");
                        let buf = match self.state.get(&key) {
                            Some(b) => (b.affine(o.momentum, 0.0)? + &g)?,
                            None => g.clone(),
                        };
                        let update = if o.nesterov { (&g + buf.affine(o.momentum, 0.0)?)? } else { buf.clone() };
                        self.state.insert(key, buf);
                        update
                    }
                }
                OptimizerKind::Adamw => {
                    let [b1, b2] = o.betas;
                    let (mk, vk) = (format!("{name}.m"), format!("{name}.v"));
                    let m = match self.state.get(&mk) {
                        Some(m) => (m.affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?,
                        None => g.affine(1.0 - b1, 0.0)?,
                    };
                    let v = match self.state.get(&vk) {
                        Some(v) => (v.affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?,
                        None => g.sqr()?.affine(1.0 - b2, 0.0)?,
                    };
                    let t = self.steps as i32;
                    let m_hat = m.affine(1.0 / (1.0 - b1.powi(t)), 0.0)?;
                    let v_hat = v.affine(1.0 / (1.0 - b2.powi(t)), 0.0)?;
                    self.state.insert(mk, m);
                    self.state.insert(vk, v);
                    let adam = (m_hat / (v_hat.sqrt()? + o.eps)?)?;
                    (adam + p.affine(o.weight_decay, 0.0)?)?
                }
            };
            var.set(&(p - update.affine(lr, 0.0)?)?.detach())?;
        }
        Ok(())
    }

    /// The state, by name, for a checkpoint (without the `optim.` prefix).
    pub fn state(&self) -> &BTreeMap<String, Tensor> {
        &self.state
    }

    pub fn restore(&mut self, state: BTreeMap<String, Tensor>, steps: u64) {
        self.state = state;
        self.steps = steps;
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

/// Cross-entropy of `logits` [N, K] against `labels` [N], with label
/// smoothing `eps` (the target puts `eps / K` on every class).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, eps: f64) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, 1)?;
    let nll = logp.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?.mean_all()?;
    if eps == 0.0 {
        return Ok(nll);
    }
    let uniform = logp.mean(1)?.neg()?.mean_all()?;
    nll.affine(1.0 - eps, 0.0)? + uniform.affine(eps, 0.0)?
}
