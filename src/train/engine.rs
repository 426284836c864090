//! The engines that train: one interface over the native CPU engine and
//! candle's portable path, so that `netc run`, `netc eval` and `netc bench`
//! run either, and a checkpoint written by one is read by the other.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::candle::CandleTrainer;
use super::optim::{Optimizer, StepSettings, train_step};
use crate::data::Batch;
use crate::recipe::Optimizer as OptimizerSettings;
use crate::runtime::native::Net;
use crate::runtime::{Kernels, Mode, Model};

/// Which engine trains and evaluates (`--engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// netc's own CPU engine: the fastest on a CPU.
    #[default]
    Native,
    /// candle's tensors and autograd over ops that every candle device has
    /// (docs/gpu.md): what `--device cuda` runs; on the CPU, the check of
    /// the GPU's path against the native engine.
    Candle,
}

/// What a training step reports.
#[derive(Clone, Copy, Debug)]
pub struct StepLoss {
    /// The batch's mean loss; when not finite, nothing was updated.
    pub value: f64,
    /// Images whose largest logit is their label's.
    pub correct: usize,
}

/// A model with its optimiser, on one engine.
pub trait Trainer {
    /// Where it computes. Batches come from the CPU, where they are made
    /// on a background thread; the trainer moves them (a copy per batch).
    fn device(&self) -> &Device;
    /// One training step (forward in training mode, loss, backward,
    /// clipping, update); a loss that is not finite updates nothing.
    fn step(&mut self, batch: &Batch, s: &StepSettings) -> Result<StepLoss, String>;
    /// The logits `[N, K]` of evaluation mode, row by row.
    fn logits(&mut self, images: &Tensor) -> Result<Vec<f32>, String>;
    /// Parameters and running statistics under their IR names, on the CPU.
    fn model_state(&self) -> Result<BTreeMap<String, Tensor>, String>;
    /// The optimiser's buffers as a checkpoint holds them, on the CPU.
    fn optimizer_state(&self) -> Result<BTreeMap<String, Tensor>, String>;
}

/// A trainer for `model`'s weights on `engine` and `device`, its optimiser
/// continuing from `restored` (a checkpoint's state and the steps done).
pub fn trainer(
    engine: Engine,
    device: &Device,
    model: &Model,
    settings: &OptimizerSettings,
    restored: Option<(&BTreeMap<String, Tensor>, u64)>,
) -> Result<Box<dyn Trainer>, String> {
    match engine {
        Engine::Native => {
            if !device.is_cpu() {
                return Err("the native engine runs on the CPU only; use `--engine candle` with a GPU".to_string());
            }
            let net = Net::from_model(model).map_err(|e| e.to_string())?;
            let mut optimizer = Optimizer::new(settings);
            if let Some((state, steps)) = restored {
                optimizer.restore(state, steps)?;
            }
            Ok(Box::new(NativeTrainer { net, optimizer, device: Device::Cpu }))
        }
        Engine::Candle => {
            let model = model.to(device, Kernels::Portable).map_err(|e| e.to_string())?;
            Ok(Box::new(CandleTrainer::new(model, settings, restored)?))
        }
    }
}

/// The native engine and its optimiser on flat buffers.
struct NativeTrainer {
    net: Net,
    optimizer: Optimizer,
    device: Device,
}

impl Trainer for NativeTrainer {
    fn device(&self) -> &Device {
        &self.device
    }

    fn step(&mut self, batch: &Batch, s: &StepSettings) -> Result<StepLoss, String> {
        let (images, labels) = host_batch(batch)?;
        let loss = train_step(&mut self.net, &mut self.optimizer, &images, &labels, s).map_err(|e| e.to_string())?;
        Ok(StepLoss { value: loss.value, correct: loss.correct })
    }

    fn logits(&mut self, images: &Tensor) -> Result<Vec<f32>, String> {
        let n = images.dim(0).map_err(|e| e.to_string())?;
        let images: Vec<f32> = images.flatten_all().and_then(|t| t.to_vec1()).map_err(|e| e.to_string())?;
        Ok(self.net.forward(&images, n, Mode::Eval, 0).map_err(|e| e.to_string())?.to_vec())
    }

    fn model_state(&self) -> Result<BTreeMap<String, Tensor>, String> {
        Ok(self.net.state())
    }

    fn optimizer_state(&self) -> Result<BTreeMap<String, Tensor>, String> {
        Ok(self.optimizer.state())
    }
}

fn host_batch(batch: &Batch) -> Result<(Vec<f32>, Vec<u32>), String> {
    let images = batch.images.flatten_all().and_then(|t| t.to_vec1()).map_err(|e| e.to_string())?;
    let labels = batch.labels.to_vec1().map_err(|e| e.to_string())?;
    Ok((images, labels))
}
