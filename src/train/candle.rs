//! The candle engine's training: the portable model's forward pass, the
//! loss, candle's autograd, gradient clipping and the optimisers, all as
//! tensor ops on the model's device. The optimiser's state stays there;
//! two numbers come back per step (the loss and the count of correct
//! images), because the run stops on a loss that is not finite.
//!
//! The update rules, loss and clipping are those of `optim.rs` (PyTorch's),
//! with the same constants in f32, and the state has the same names, so a
//! checkpoint of either engine resumes on the other.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{D, DType, Device, Result, Tensor, Var};

use super::engine::{StepLoss, Trainer};
use super::optim::StepSettings;
use crate::data::Batch;
use crate::recipe::{Optimizer as OptimizerSettings, OptimizerKind};
use crate::runtime::{Mode, Model, error_text};

pub struct CandleTrainer {
    model: Model,
    optimizer: DeviceOptimizer,
}

impl CandleTrainer {
    /// Trains `model` (on its device) with `settings`, continuing from a
    /// checkpoint's optimiser state and step count when `restored`.
    pub fn new(
        model: Model,
        settings: &OptimizerSettings,
        restored: Option<(&BTreeMap<String, Tensor>, u64)>,
    ) -> std::result::Result<Self, String> {
        let mut optimizer = DeviceOptimizer { settings: settings.clone(), state: BTreeMap::new(), steps: 0 };
        if let Some((state, steps)) = restored {
            optimizer.restore(state, steps, &model)?;
        }
        Ok(CandleTrainer { model, optimizer })
    }

    fn try_step(&mut self, batch: &Batch, s: &StepSettings) -> Result<StepLoss> {
        let device = self.model.device();
        let (images, labels) = (batch.images.to_device(device)?, batch.labels.to_device(device)?);
        let logits = self.model.forward(&images, Mode::Train, &[], s.dropout_seed)?.logits;
        let loss = cross_entropy(&logits, &labels, s.label_smoothing)?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let correct = logits.argmax(D::Minus1)?.eq(&labels)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()?;
        if value.is_finite() {
            let grads = loss.backward()?;
            let scale = match s.grad_clip {
                Some(limit) => clip_scale(self.model.params(), &grads, limit)?,
                None => None,
            };
            self.optimizer.step(self.model.params(), &grads, scale.as_ref(), s.lr)?;
        }
        Ok(StepLoss { value, correct: correct as usize })
    }
}

impl Trainer for CandleTrainer {
    fn device(&self) -> &Device {
        self.model.device()
    }

    fn step(&mut self, batch: &Batch, s: &StepSettings) -> std::result::Result<StepLoss, String> {
        self.try_step(batch, s).map_err(error_text)
    }

    fn logits(&mut self, images: &Tensor) -> std::result::Result<Vec<f32>, String> {
        let images = images.to_device(self.model.device()).map_err(error_text)?;
        let logits = self.model.forward(&images, Mode::Eval, &[], 0).map_err(error_text)?.logits;
        logits.flatten_all().and_then(|t| t.to_vec1()).map_err(error_text)
    }

    fn model_state(&self) -> std::result::Result<BTreeMap<String, Tensor>, String> {
        on_cpu(self.model.state())
    }

    fn optimizer_state(&self) -> std::result::Result<BTreeMap<String, Tensor>, String> {
        // The native optimiser's buffers are flat; a checkpoint holds them so.
        on_cpu(
            self.optimizer
                .state
                .iter()
                .map(|(k, t)| (k.clone(), t.flatten_all().expect("a tensor flattens")))
                .collect(),
        )
    }
}

fn on_cpu(state: BTreeMap<String, Tensor>) -> std::result::Result<BTreeMap<String, Tensor>, String> {
    state.into_iter().map(|(k, t)| t.to_device(&Device::Cpu).map(|t| (k, t)).map_err(error_text)).collect()
}

/// The mean cross-entropy of `logits` `[N, K]` against `labels` (u32),
/// with label smoothing `eps` (the target puts `eps / K` on every class),
/// as PyTorch's `cross_entropy(..., label_smoothing=eps)` and
/// `optim::softmax_cross_entropy`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, eps: f64) -> Result<Tensor> {
    // The shift by the row's maximum only keeps `exp` finite; it is no
    // part of the function, so no gradient goes through it.
    let shifted = logits.broadcast_sub(&logits.max_keepdim(D::Minus1)?.detach())?;
    let log_p = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?;
    let nll = log_p.gather(&labels.unsqueeze(1)?, 1)?.neg()?.mean_all()?;
    if eps == 0.0 {
        return Ok(nll);
    }
    let uniform = log_p.mean(D::Minus1)?.neg()?.mean_all()?;
    nll.affine(1.0 - eps, 0.0)? + uniform.affine(eps, 0.0)?
}

/// The factor that brings the gradients' global L2 norm down to `limit`
/// (1 when it is at most that), as a scalar tensor on the device; `None`
/// when no parameter has a gradient.
fn clip_scale(params: &BTreeMap<String, Var>, grads: &GradStore, limit: f64) -> Result<Option<Tensor>> {
    let squares = params
        .values()
        .filter_map(|var| grads.get(var.as_tensor()))
        .map(|g| g.sqr()?.sum_all())
        .collect::<Result<Vec<_>>>()?;
    if squares.is_empty() {
        return Ok(None);
    }
    let norm = Tensor::stack(&squares, 0)?.sum_all()?.sqrt()?;
    // limit / max(norm, limit)
    Ok(Some(norm.maximum(limit)?.recip()?.affine(limit, 0.0)?))
}

/// SGD (momentum, Nesterov, L2 weight decay) and AdamW (decoupled decay)
/// with `optim::Optimizer`'s rules and buffer names, on the device. What
/// it keeps is detached: a gradient carries candle's graph of the step it
/// came from, and a buffer built from it would keep every step's
/// activations alive, chained to the next step's (the first GPU runs ran
/// out of memory so).
struct DeviceOptimizer {
    settings: OptimizerSettings,
    /// `<param>.momentum` for SGD; `<param>.m`, `<param>.v` for AdamW;
    /// shaped as the parameter.
    state: BTreeMap<String, Tensor>,
    steps: u64,
}

impl DeviceOptimizer {
    fn restore(
        &mut self,
        state: &BTreeMap<String, Tensor>,
        steps: u64,
        model: &Model,
    ) -> std::result::Result<(), String> {
        for (name, t) in state {
            let param = name.rsplit_once('.').map(|(p, _)| p).unwrap_or(name);
            let shape = model
                .params()
                .get(param)
                .ok_or_else(|| format!("optimiser state `{name}` belongs to no parameter of the net"))?
                .shape()
                .clone();
            let t = t
                .to_dtype(DType::F32)
                .and_then(|t| t.reshape(&shape))
                .and_then(|t| t.to_device(model.device()))
                .map_err(|e| format!("optimiser state `{name}`: {e}"))?;
            self.state.insert(name.clone(), t);
        }
        self.steps = steps;
        Ok(())
    }

    /// One update of every parameter that has a gradient, scaled by `scale`.
    fn step(
        &mut self,
        params: &BTreeMap<String, Var>,
        grads: &GradStore,
        scale: Option<&Tensor>,
        lr: f64,
    ) -> Result<()> {
        self.steps += 1;
        let o = &self.settings;
        // The constants as the native optimiser has them, in f32.
        let f32 = |v: f64| v as f32 as f64;
        let (lr, wd, momentum) = (f32(lr), f32(o.weight_decay), f32(o.momentum));
        for (name, var) in params {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let g = match scale {
                Some(s) => g.broadcast_mul(s)?,
                None => g.clone(),
            };
            let w = var.as_tensor();
            let update = match o.kind {
                OptimizerKind::Sgd => {
                    let g = (g + w.affine(wd, 0.0)?)?;
                    if momentum == 0.0 {
                        g
                    } else {
                        let slot = format!("{name}.momentum");
                        // PyTorch starts the momentum buffer at the first gradient.
                        let buf = match self.state.get(&slot) {
                            Some(b) => (b.affine(momentum, 0.0)? + &g)?,
                            None => g.clone(),
                        };
                        let step = if o.nesterov { (&g + buf.affine(momentum, 0.0)?)? } else { buf.clone() };
                        self.state.insert(slot, buf.detach());
                        step
                    }
                }
                OptimizerKind::Adamw => {
                    let [b1, b2] = o.betas.map(|b| b as f32);
                    let t = self.steps as i32;
                    let (c1, c2) = ((1.0 - o.betas[0].powi(t)) as f32, (1.0 - o.betas[1].powi(t)) as f32);
                    let (m_slot, v_slot) = (format!("{name}.m"), format!("{name}.v"));
                    let zeros = || w.zeros_like();
                    let m = self.state.get(&m_slot).cloned().map_or_else(zeros, Ok)?;
                    let v = self.state.get(&v_slot).cloned().map_or_else(zeros, Ok)?;
                    let m = (m.affine(b1 as f64, 0.0)? + g.affine((1.0 - b1) as f64, 0.0)?)?;
                    let v = (v.affine(b2 as f64, 0.0)? + g.affine((1.0 - b2) as f64, 0.0)?.mul(&g)?)?;
                    let denom = (v.affine(1.0 / c2 as f64, 0.0)?.sqrt()? + f32(o.eps))?;
                    let adam = m.affine(1.0 / c1 as f64, 0.0)?.div(&denom)?;
                    self.state.insert(m_slot, m.detach());
                    self.state.insert(v_slot, v.detach());
                    (adam + w.affine(wd, 0.0)?)?
                }
            };
            var.set(&(w - update.affine(lr, 0.0)?)?.detach())?;
        }
        Ok(())
    }
}
