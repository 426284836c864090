//! The graph as a trainable model.

use std::collections::{BTreeMap, HashMap};

use candle_core::{D, DType, Device, Result, Tensor, Var};

use super::{ops, portable};
use crate::graph::{Graph, Init, Op, UpsampleMode};
use crate::rng::{Rng, TAG_DROPOUT, TAG_INIT, mix};

/// Training mode uses batch statistics and dropout; evaluation uses the
/// running statistics and no dropout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

pub struct Output {
    pub logits: Tensor,
    /// The activations at the requested probes, by probe name.
    pub probes: BTreeMap<String, Tensor>,
}

/// A parameter or buffer whose shape does not fit, or that is missing or
/// unexpected, when loading weights.
#[derive(Debug, Clone, PartialEq)]
pub enum Mismatch {
    Missing {
        name: String,
        shape: Vec<usize>,
    },
    Unexpected {
        name: String,
        shape: Vec<usize>,
    },
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// Present with the right shape, but not convertible to the model's.
    Unreadable {
        name: String,
        error: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Missing { name, shape } => write!(f, "missing `{name}` {shape:?}"),
            Mismatch::Unexpected { name, shape } => write!(f, "unexpected `{name}` {shape:?} (not in the spec)"),
            Mismatch::Shape { name, expected, found } => {
                write!(f, "`{name}` is {found:?} in the weights but {expected:?} in the spec")
            }
            Mismatch::Unreadable { name, error } => write!(f, "`{name}` cannot be read: {error}"),
        }
    }
}

/// Which implementation of the ops a [`Model`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// netc's own CPU kernels (`ops/`): the fastest on the CPU, and only there.
    Cpu,
    /// Compositions of candle's built-in ops (`portable.rs`): any device,
    /// the GPU's path, and `--engine candle`'s on the CPU.
    Portable,
}

impl Kernels {
    fn conv2d(
        self,
        x: &Tensor,
        w: &Tensor,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Tensor> {
        match self {
            Kernels::Cpu => ops::conv2d(x, w, stride, padding, dilation, groups),
            Kernels::Portable => portable::conv2d(x, w, stride, padding, dilation, groups),
        }
    }

    fn max_pool2d(self, x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Tensor> {
        match self {
            Kernels::Cpu => ops::max_pool2d(x, kernel, stride, padding, ceil_mode),
            Kernels::Portable => portable::max_pool2d(x, kernel, stride, padding, ceil_mode),
        }
    }

    fn avg_pool2d(self, x: &Tensor, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> Result<Tensor> {
        match self {
            Kernels::Cpu => ops::avg_pool2d(x, kernel, stride, padding, ceil_mode),
            Kernels::Portable => portable::avg_pool2d(x, kernel, stride, padding, ceil_mode),
        }
    }

    fn upsample(self, x: &Tensor, size: [usize; 2], mode: UpsampleMode) -> Result<Tensor> {
        match (self, mode) {
            (Kernels::Cpu, UpsampleMode::Nearest) => ops::upsample_nearest2d(x, size),
            (Kernels::Cpu, UpsampleMode::Bilinear { align_corners }) => {
                ops::upsample_bilinear2d(x, size, align_corners)
            }
            (Kernels::Portable, UpsampleMode::Nearest) => portable::upsample_nearest2d(x, size),
            (Kernels::Portable, UpsampleMode::Bilinear { align_corners }) => {
                portable::upsample_bilinear2d(x, size, align_corners)
            }
        }
    }
}

pub struct Model {
    graph: Graph,
    device: Device,
    kernels: Kernels,
    /// Trainable parameters, by their IR names.
    params: BTreeMap<String, Var>,
    /// Batch-norm running statistics: `<node>.running_mean`, `<node>.running_var`.
    buffers: BTreeMap<String, Tensor>,
}

/// `cpu` or `cuda[:N]`. A CUDA device needs a build with the `cuda` feature
/// and a GPU that the CUDA driver can open (docs/gpu.md).
pub fn parse_device(name: &str) -> std::result::Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        n if n == "cuda" || n.starts_with("cuda:") => {
            let ordinal: usize =
                n.strip_prefix("cuda:").unwrap_or("0").parse().map_err(|_| format!("bad device `{n}`"))?;
            if !cfg!(feature = "cuda") {
                return Err(format!(
                    "`{n}`: this netc was built without CUDA; rebuild with --features cuda (docs/gpu.md)"
                ));
            }
            Device::new_cuda(ordinal)
                .map_err(|e| format!("`{n}`: cannot open CUDA device {ordinal}: {}", error_text(e)))
        }
        other => Err(format!("unknown device `{other}`; expected `cpu` or `cuda[:N]`")),
    }
}

/// `cpu` or `cuda:N`: the name `--device` takes.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        _ => "cpu".to_string(),
    }
}

/// A candle error as one message, without the backtrace candle appends
/// when `RUST_BACKTRACE` is set: a missing GPU or a device out of memory
/// needs none.
pub fn error_text(e: candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => inner.to_string(),
        e => e.to_string(),
    }
}

impl Model {
    /// A model with freshly initialised parameters, drawn from `seed` (the
    /// same numbers on every device). It runs netc's CPU kernels on the CPU
    /// and the portable ones elsewhere; see [`Model::with_kernels`]. On the
    /// CPU, parameters that cannot fit in memory are an error, not an abort.
    pub fn new(graph: &Graph, device: &Device, seed: u64) -> Result<Model> {
        if device.is_cpu() {
            crate::memory::check_params_fit(graph, 1).map_err(candle_core::Error::Msg)?;
        }
        let mut params = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        let mut rng = Rng::new(mix(&[seed, TAG_INIT]));
        for node in &graph.nodes {
            for p in &node.params {
                let n: usize = p.shape.iter().product();
                let values: Vec<f32> = match p.init {
                    Init::KaimingNormal { fan_in } => {
                        let std = (2.0 / fan_in as f64).sqrt();
                        (0..n).map(|_| (rng.normal() * std) as f32).collect()
                    }
                    Init::UniformFanIn { fan_in } => {
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        (0..n).map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32).collect()
                    }
                    Init::Ones => vec![1.0; n],
                    Init::Zeros => vec![0.0; n],
                };
                let t = Tensor::from_vec(values, p.shape.as_slice(), device)?;
                params.insert(p.name.clone(), Var::from_tensor(&t)?);
            }
            if let Op::BatchNorm { .. } = node.op {
                let c = node.shape[0];
                buffers.insert(format!("{}.running_mean", node.name), Tensor::zeros(c, DType::F32, device)?);
                buffers.insert(format!("{}.running_var", node.name), Tensor::ones(c, DType::F32, device)?);
            }
        }
        let kernels = if device.is_cpu() { Kernels::Cpu } else { Kernels::Portable };
        Ok(Model { graph: graph.clone(), device: device.clone(), kernels, params, buffers })
    }

    /// The model with the same parameters and buffers on `device`, running
    /// `kernels`. The CPU kernels run on the CPU only.
    pub fn to(&self, device: &Device, kernels: Kernels) -> Result<Model> {
        if kernels == Kernels::Cpu && !device.is_cpu() {
            candle_core::bail!("netc's CPU kernels run on the CPU only; use the portable ones on {device:?}");
        }
        // A tensor moved to its own device shares its storage: copy it
        // there, so that the two models' variables stay apart.
        let copy = |t: &Tensor| if t.device().same_device(device) { t.copy() } else { t.to_device(device) };
        let params = self
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), Var::from_tensor(&copy(v.as_tensor())?)?)))
            .collect::<Result<_>>()?;
        let buffers = self.buffers.iter().map(|(k, t)| Ok((k.clone(), copy(t)?))).collect::<Result<_>>()?;
        Ok(Model { graph: self.graph.clone(), device: device.clone(), kernels, params, buffers })
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The trainable parameters, by name, in a stable order.
    pub fn params(&self) -> &BTreeMap<String, Var> {
        &self.params
    }

    /// Parameters and buffers: what a checkpoint holds of the model.
    pub fn state(&self) -> BTreeMap<String, Tensor> {
        let mut out: BTreeMap<String, Tensor> =
            self.params.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        out.extend(self.buffers.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// Loads parameters and buffers. Every name of the model must be present
    /// with its shape; names outside the model are refused too, except those
    /// under `ignore_prefixes` (optimizer state in a checkpoint).
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        ignore_prefixes: &[&str],
    ) -> std::result::Result<(), Vec<Mismatch>> {
        let mut mismatches = Vec::new();
        let expected = self.state();
        for (name, t) in &expected {
            match tensors.get(name) {
                None => mismatches.push(Mismatch::Missing { name: name.clone(), shape: t.dims().to_vec() }),
                Some(found) if found.dims() != t.dims() => mismatches.push(Mismatch::Shape {
                    name: name.clone(),
                    expected: t.dims().to_vec(),
                    found: found.dims().to_vec(),
                }),
                Some(_) => {}
            }
        }
        let mut extra: Vec<&String> = tensors
            .keys()
            .filter(|k| !expected.contains_key(*k) && !ignore_prefixes.iter().any(|p| k.starts_with(p)))
            .collect();
        extra.sort();
        for name in extra {
            mismatches.push(Mismatch::Unexpected { name: name.clone(), shape: tensors[name].dims().to_vec() });
        }
        if !mismatches.is_empty() {
            return Err(mismatches);
        }
        let convert = |t: &Tensor| t.to_dtype(DType::F32).and_then(|t| t.to_device(&self.device));
        for (name, var) in &self.params {
            let t = convert(&tensors[name]).map_err(|e| vec![load_error(name, e)])?;
            var.set(&t).map_err(|e| vec![load_error(name, e)])?;
        }
        for (name, buf) in self.buffers.iter_mut() {
            *buf = convert(&tensors[name]).map_err(|e| vec![load_error(name, e)])?;
        }
        Ok(())
    }

    /// Runs the graph on a batch `x` of shape `[N, C, H, W]`. In training
    /// mode, batch norm updates its running statistics and dropout draws its
    /// masks from `dropout_seed`.
    pub fn forward(&mut self, x: &Tensor, mode: Mode, probes: &[&str], dropout_seed: u64) -> Result<Output> {
        Ok(self.run(x, mode, probes, dropout_seed, false)?.0)
    }

    /// Evaluation-mode forward that also returns, per probe, a zero-valued
    /// `Var` added to its activation: candle keeps gradients only for
    /// variables, so the gradient with respect to the tap is the gradient at
    /// the probe (Grad-CAM needs it).
    pub fn forward_tapped(&mut self, x: &Tensor, probes: &[&str]) -> Result<(Output, BTreeMap<String, Var>)> {
        self.run(x, Mode::Eval, probes, 0, true)
    }

    fn run(
        &mut self,
        x: &Tensor,
        mode: Mode,
        probes: &[&str],
        dropout_seed: u64,
        tap: bool,
    ) -> Result<(Output, BTreeMap<String, Var>)> {
        let mut taps = BTreeMap::new();
        let mut values: Vec<Tensor> = Vec::with_capacity(self.graph.nodes.len());
        let mut dropout_rng = Rng::new(mix(&[dropout_seed, TAG_DROPOUT]));
        for node in &self.graph.nodes {
            let input = |i: usize| &values[node.inputs[i]];
            let param = |role: &str| -> Result<&Tensor> {
                let name = format!("{}.{role}", node.name);
                self.params
                    .get(&name)
                    .map(Var::as_tensor)
                    .ok_or_else(|| candle_core::Error::Msg(format!("no parameter `{name}`")))
            };
            let y = match &node.op {
                Op::Input => x.clone(),
                Op::Conv { stride, padding, dilation, groups, bias, .. } => {
                    let y = self.kernels.conv2d(input(0), param("weight")?, *stride, *padding, *dilation, *groups)?;
                    if *bias { y.broadcast_add(&param("bias")?.reshape((1, (), 1, 1))?)? } else { y }
                }
                Op::BatchNorm { eps, momentum } => {
                    let (weight, bias) = (param("weight")?.clone(), param("bias")?.clone());
                    let fused = self.kernels == Kernels::Cpu;
                    let x = input(0);
                    batch_norm(&mut self.buffers, &node.name, x, &weight, &bias, *eps, *momentum, mode, fused)?
                }
                Op::Relu => input(0).relu()?,
                Op::Sigmoid => candle_nn::ops::sigmoid(input(0))?,
                Op::MaxPool { kernel, stride, padding, ceil_mode } => {
                    self.kernels.max_pool2d(input(0), *kernel, *stride, *padding, *ceil_mode)?
                }
                Op::AvgPool { kernel, stride, padding, ceil_mode } => {
                    self.kernels.avg_pool2d(input(0), *kernel, *stride, *padding, *ceil_mode)?
                }
                Op::GlobalAvgPool => input(0).mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?,
                Op::Upsample { size, mode } => self.kernels.upsample(input(0), *size, *mode)?,
                Op::Dropout { p } if mode == Mode::Train && *p > 0.0 => {
                    let x = input(0);
                    let keep = 1.0 - p;
                    let mask: Vec<f32> = (0..x.elem_count())
                        .map(|_| if dropout_rng.uniform() < keep { (1.0 / keep) as f32 } else { 0.0 })
                        .collect();
                    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)?
                }
                Op::Dropout { .. } => input(0).clone(),
                Op::Flatten => input(0).flatten_from(1)?,
                Op::Linear { bias, .. } => {
                    let y = input(0).flatten_from(1)?.matmul(&param("weight")?.t()?)?;
                    if *bias { y.broadcast_add(param("bias")?)? } else { y }
                }
                Op::Concat => {
                    let parts: Vec<&Tensor> = node.inputs.iter().map(|i| &values[*i]).collect();
                    Tensor::cat(&parts, 1)?
                }
                Op::Add => input(0).broadcast_add(input(1))?,
                Op::Mul => input(0).broadcast_mul(input(1))?,
                Op::Affine { scale, shift } => input(0).affine(*scale, *shift)?,
            };
            let id = values.len();
            let tapped = self.graph.probes.iter().filter(|p| p.node == id && probes.contains(&p.name.as_str()));
            let y = match tapped.map(|p| p.name.clone()).next() {
                Some(name) if tap => {
                    let zero = Var::zeros(y.shape(), y.dtype(), y.device())?;
                    let y = (y + zero.as_tensor())?;
                    taps.insert(name, zero);
                    y
                }
                _ => y,
            };
            values.push(y);
        }
        let wanted = self.graph.probes.iter().filter(|p| probes.contains(&p.name.as_str()));
        let probes = wanted.map(|p| (p.name.clone(), values[p.node].clone())).collect();
        Ok((Output { logits: values.swap_remove(self.graph.output), probes }, taps))
    }
}

/// Batch norm over every axis but channels; in training mode it updates the
/// running statistics in `buffers`, as PyTorch does (unbiased variance).
/// `fused`: training-mode statistics and output in one CPU kernel.
#[allow(clippy::too_many_arguments)]
fn batch_norm(
    buffers: &mut BTreeMap<String, Tensor>,
    name: &str,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    momentum: f64,
    mode: Mode,
    fused: bool,
) -> Result<Tensor> {
    let (mean_key, var_key) = (format!("{name}.running_mean"), format!("{name}.running_var"));
    // Statistics over every axis but channels: [N, C] or [N, C, H, W].
    let stat_shape: Vec<usize> = x.dims().iter().enumerate().map(|(i, d)| if i == 1 { *d } else { 1 }).collect();
    let count = (x.elem_count() / x.dims()[1]) as f64;
    if mode == Mode::Train && count < 2.0 {
        candle_core::bail!(
            "batch norm `{name}` sees one value per channel in this batch; use a larger batch (a last batch of one image does this after `flatten`)"
        );
    }
    let update = |buffers: &mut BTreeMap<String, Tensor>, mean: Tensor, var: Tensor| -> Result<()> {
        // The running variance is unbiased, as PyTorch's.
        let unbiased = var.affine(count / (count - 1.0).max(1.0), 0.0)?;
        let running_mean = buffers[&mean_key].affine(1.0 - momentum, 0.0)?.add(&mean.affine(momentum, 0.0)?)?;
        let running_var = buffers[&var_key].affine(1.0 - momentum, 0.0)?.add(&unbiased.affine(momentum, 0.0)?)?;
        buffers.insert(mean_key.clone(), running_mean);
        buffers.insert(var_key.clone(), running_var);
        Ok(())
    };
    // The centred input, kept: training mode needs it for the variance too.
    let (centred, var) = match mode {
        Mode::Train if fused && x.rank() == 4 => {
            let (y, mean, var) = ops::batch_norm_train(x, weight, bias, eps)?;
            let c = mean.len();
            let as_tensor = |v: Vec<f64>| Tensor::from_vec(v, c, x.device())?.to_dtype(DType::F32);
            update(buffers, as_tensor(mean)?, as_tensor(var)?)?;
            return Ok(y);
        }
        Mode::Train => {
            let reduce = |t: &Tensor| -> Result<Tensor> {
                let mut t = t.mean_keepdim(0)?;
                for axis in 2..t.rank() {
                    t = t.mean_keepdim(axis)?;
                }
                Ok(t)
            };
            let mean = reduce(x)?;
            let centred = x.broadcast_sub(&mean)?;
            let var = reduce(&centred.sqr()?)?;
            update(buffers, mean.flatten_all()?.detach(), var.flatten_all()?.detach())?;
            (centred, var)
        }
        Mode::Eval => {
            let mean = buffers[&mean_key].reshape(stat_shape.as_slice())?;
            (x.broadcast_sub(&mean)?, buffers[&var_key].reshape(stat_shape.as_slice())?)
        }
    };
    let scale = weight.reshape(stat_shape.as_slice())?.broadcast_div(&(var + eps)?.sqrt()?)?;
    centred.broadcast_mul(&scale)?.broadcast_add(&bias.reshape(stat_shape.as_slice())?)
}

fn load_error(name: &str, e: candle_core::Error) -> Mismatch {
    Mismatch::Unreadable { name: name.to_string(), error: e.to_string() }
}
