//! `netc bench`: the speed of a spec's training and inference steps on
//! random data, in the units a PyTorch comparison needs (images/s, GFLOP/s,
//! peak memory).
//!
//! A training step is what `netc run` does per batch: forward in training
//! mode, the loss, backward, and an SGD update (momentum 0.9, weight decay
//! 5e-4, as `../shared/bench/torch_googlenet.py`). An inference step is a
//! forward pass in evaluation mode. Each is timed after warm-up steps, and
//! the median step is reported.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::data::Batch;
use crate::graph::Graph;
use crate::memory;
use crate::recipe::Optimizer as OptimizerSettings;
use crate::rng::{Rng, mix};
use crate::runtime::native::Net;
use crate::runtime::{Mode, Model, device_name};
pub use crate::train::Engine;
use crate::train::{Optimizer, StepSettings, plural, train_step, trainer};

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub batch: usize,
    /// Timed steps of each kind.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Time each kind of op, in the timed training steps.
    pub breakdown: bool,
    pub engine: Engine,
    /// The CPU, or a GPU for the candle engine.
    pub device: Device,
    /// First check one training step of the candle engine against the
    /// native engine on the CPU.
    pub verify: bool,
}

/// `--verify`: one training step of the candle engine on the bench's
/// device against the native engine on the CPU, from the same weights on
/// the same batch (SGD with momentum; the batch's random images).
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    pub loss: f64,
    pub native_loss: f64,
    /// |loss - native_loss| / native_loss.
    pub loss_error: f64,
    /// The relative L2 error of the step's update of all parameters
    /// together, against the native engine's.
    pub update_error: f64,
    /// Within [`VERIFY_BOUNDS`].
    pub passed: bool,
}

/// The bounds `--verify` holds the loss and the update to. Rounding moves a
/// ReLU or a max-pool's maximum now and then, and each such flip moves the
/// gradient upstream of it: on the CPU, the candle engine's update of the
/// small paper nets is within 8.2% of the native one's (tests/engines.rs),
/// where a wrong kernel gives errors of order one.
pub const VERIFY_BOUNDS: [f64; 2] = [1e-3, 0.15];

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub network: String,
    pub engine: Engine,
    /// `cpu` or `cuda:N`.
    pub device: String,
    pub params: u64,
    /// Forward multiply-adds per image, from the IR.
    pub macs_per_image: u64,
    pub batch: usize,
    pub threads: usize,
    pub train_step_seconds: Vec<f64>,
    pub infer_step_seconds: Vec<f64>,
    pub train_images_per_second: f64,
    pub infer_images_per_second: f64,
    /// Training counts 3 passes' worth of multiply-adds (forward, and
    /// backward for inputs and for weights), 2 FLOPs each.
    pub train_gflops: f64,
    pub infer_gflops: f64,
    /// The process's peak resident memory, in MiB.
    pub peak_memory_mib: f64,
    /// On a GPU: the most device memory in use after any step, in MiB
    /// (the whole device's, as the driver reports it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_device_memory_mib: Option<f64>,
    /// With `--breakdown`: seconds per timed training step by op kind and
    /// pass (`forward`/`backward`), slowest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<(String, String, f64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verification>,
}

impl BenchReport {
    pub fn text(&self) -> String {
        format!(
            "{} ({} parameters, {:.3} G mult-adds per image), {:?} engine on {}, batch {}, {} thread{}\n\
             train: {:8.1} images/s  {:7.1} ms/step  {:6.1} GFLOP/s\n\
             infer: {:8.1} images/s  {:7.1} ms/step  {:6.1} GFLOP/s\n\
             peak memory {:.0} MiB{} (medians of {} steps)\n",
            self.network,
            crate::summary::group(self.params),
            self.macs_per_image as f64 / 1e9,
            self.engine,
            self.device,
            self.batch,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.train_images_per_second,
            1e3 * median(&self.train_step_seconds),
            self.train_gflops,
            self.infer_images_per_second,
            1e3 * median(&self.infer_step_seconds),
            self.infer_gflops,
            self.peak_memory_mib,
            self.peak_device_memory_mib.map_or(String::new(), |m| format!(", {m:.0} MiB on {}", self.device)),
            self.train_step_seconds.len(),
        ) + &self.breakdown_table()
            + &self.verify.as_ref().map_or(String::new(), |v| {
                format!(
                    "verify: one step on {} against the native engine on the CPU: loss {:.6} against {:.6} \
                     (error {:.1e}), update error {:.1e}: {} (bounds {:.0e}, {})\n",
                    self.device,
                    v.loss,
                    v.native_loss,
                    v.loss_error,
                    v.update_error,
                    if v.passed { "ok" } else { "FAILED" },
                    VERIFY_BOUNDS[0],
                    VERIFY_BOUNDS[1],
                )
            })
    }

    fn breakdown_table(&self) -> String {
        let total: f64 = self.breakdown.iter().map(|r| r.2).sum();
        let mut out = String::new();
        if !self.breakdown.is_empty() {
            out += "\nper training step, by op:\n";
        }
        for (kind, pass, seconds) in &self.breakdown {
            out += &format!("  {kind:<10} {pass:<8} {:8.1} ms  {:5.1}%\n", seconds * 1e3, 100.0 * seconds / total);
        }
        out
    }
}

/// The most `--threads` per CPU that `netc bench` accepts.
const MAX_THREADS_PER_CPU: usize = 4;

pub fn bench(graph: &Graph, opts: &BenchOptions) -> Result<BenchReport, String> {
    if opts.batch == 0 || opts.steps == 0 {
        return Err("`--batch` and `--steps` must be at least 1".to_string());
    }
    memory::check_batch_fits(graph, opts.batch, &opts.device, "`--batch`")?;
    // Threads beyond the CPUs only wait on each other: 1,000 threads on 2
    // CPUs made a step 200 times slower, and 100,000 had not finished one
    // in a minute.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if opts.threads > MAX_THREADS_PER_CPU * cpus {
        return Err(format!(
            "`--threads {}`: this machine has {cpus} CPU{}, and more than {} threads only wait on each other \
             (leave `--threads` out for one per CPU)",
            opts.threads,
            plural(cpus as u64),
            MAX_THREADS_PER_CPU * cpus
        ));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| format!("cannot start {} threads: {e}", opts.threads))?;
    let threads = pool.current_num_threads();
    let mut rng = Rng::new(mix(&[0xbe9c4]));
    let classes = graph.nodes[graph.output].shape.iter().product::<usize>().max(1);
    let per_image: usize = graph.input_shape().iter().product();
    let images: Vec<f32> = (0..opts.batch * per_image).map(|_| rng.normal() as f32).collect();
    let labels: Vec<u32> = (0..opts.batch).map(|_| rng.below(classes) as u32).collect();
    let verify = match opts.verify {
        true if opts.engine == Engine::Native => {
            return Err("`--verify` checks the candle engine against the native one: add `--engine candle` \
                        (or `--device cuda`)"
                .to_string());
        }
        true => Some(pool.install(|| verify_step(graph, &opts.device, &images, &labels))?),
        false => None,
    };
    let bar = step_bar(2 * (opts.warmup + opts.steps) as u64);
    let mut peak_device = None;
    let (train, infer, breakdown) = pool.install(|| match opts.engine {
        Engine::Native => native_steps(graph, opts, &images, &labels, &bar),
        Engine::Candle => candle_steps(graph, opts, &images, &labels, &bar, &mut peak_device),
    })?;
    bar.finish_and_clear();
    let macs = graph.total_macs();
    let (t, i) = (median(&train), median(&infer));
    let batch = opts.batch as f64;
    Ok(BenchReport {
        network: graph.name.clone(),
        engine: opts.engine,
        device: device_name(&opts.device),
        params: graph.total_params(),
        macs_per_image: macs,
        batch: opts.batch,
        threads,
        train_images_per_second: batch / t,
        infer_images_per_second: batch / i,
        train_gflops: 3.0 * 2.0 * macs as f64 * batch / t / 1e9,
        infer_gflops: 2.0 * macs as f64 * batch / i / 1e9,
        train_step_seconds: train,
        infer_step_seconds: infer,
        peak_memory_mib: peak_memory_mib(),
        peak_device_memory_mib: peak_device,
        verify,
        breakdown,
    })
}

/// Step times: training, inference, and the training breakdown by op.
type Timings = (Vec<f64>, Vec<f64>, Vec<(String, String, f64)>);

/// A bar over every step, warm-up included, on a terminal only (a step of a
/// wide net takes seconds).
fn step_bar(steps: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps);
    let style = indicatif::ProgressStyle::with_template("bench [{bar:30}] {pos}/{len} steps {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Runs `step(i)` for the warm-up steps and then the timed ones, and
/// returns the timed steps' seconds.
fn timed<E>(
    opts: &BenchOptions,
    bar: &indicatif::ProgressBar,
    what: &'static str,
    mut step: impl FnMut(usize) -> Result<(), E>,
) -> Result<Vec<f64>, E> {
    bar.set_message(what);
    let mut seconds = Vec::with_capacity(opts.steps);
    for i in 0..opts.warmup + opts.steps {
        let start = Instant::now();
        step(i)?;
        if i >= opts.warmup {
            seconds.push(start.elapsed().as_secs_f64());
        }
        bar.inc(1);
    }
    Ok(seconds)
}

fn native_steps(
    graph: &Graph,
    opts: &BenchOptions,
    images: &[f32],
    labels: &[u32],
    bar: &indicatif::ProgressBar,
) -> Result<Timings, String> {
    let model = Model::new(graph, &candle_core::Device::Cpu, 0).map_err(|e| e.to_string())?;
    let mut net = Net::from_model(&model).map_err(|e| e.to_string())?;
    drop(model);
    // The baseline's optimiser: SGD, momentum 0.9, weight decay 5e-4.
    let settings = OptimizerSettings { lr: 0.01, ..OptimizerSettings::default() };
    let mut optimizer = Optimizer::new(&settings);
    let train = timed(opts, bar, "training", |i| {
        if i == opts.warmup {
            net.set_profiling(opts.breakdown);
        }
        let step = StepSettings { lr: settings.lr, label_smoothing: 0.0, grad_clip: None, dropout_seed: i as u64 };
        train_step(&mut net, &mut optimizer, images, labels, &step).map(|_| ())
    })
    .map_err(|e| e.to_string())?;
    let profile = net
        .profile()
        .into_iter()
        .map(|(kind, pass, s)| (kind.to_string(), format!("{pass:?}").to_lowercase(), s / opts.steps as f64))
        .collect();
    net.set_profiling(false);
    let infer = timed(opts, bar, "inference", |_| net.forward(images, opts.batch, Mode::Eval, 0).map(|_| ()))
        .map_err(|e| e.to_string())?;
    Ok((train, infer, profile))
}

/// The same steps through the candle engine on the chosen device: what
/// `netc run --engine candle` (or `--device cuda`) does per batch.
fn candle_steps(
    graph: &Graph,
    opts: &BenchOptions,
    images: &[f32],
    labels: &[u32],
    bar: &indicatif::ProgressBar,
    peak_device: &mut Option<f64>,
) -> Result<Timings, String> {
    let err = |e: candle_core::Error| e.to_string();
    let model = Model::new(graph, &Device::Cpu, 0).map_err(err)?;
    let settings = OptimizerSettings { lr: 0.01, ..OptimizerSettings::default() };
    let mut net = trainer(Engine::Candle, &opts.device, &model, &settings, None)?;
    drop(model);
    let dims = graph.input_shape();
    let batch = Batch {
        images: Tensor::from_slice(images, (opts.batch, dims[0], dims[1], dims[2]), &opts.device).map_err(err)?,
        labels: Tensor::from_slice(labels, opts.batch, &opts.device).map_err(err)?,
        indices: (0..opts.batch).collect(),
    };
    // Each step ends by reading its loss (or logits) back, so it has
    // finished on the device when the clock stops.
    let mut track = |device: &Device| {
        if let Some(used) = device_memory_mib(device) {
            *peak_device = Some(peak_device.map_or(used, |p: f64| p.max(used)));
        }
    };
    let train = timed(opts, bar, "training", |i| {
        let step = StepSettings { lr: settings.lr, label_smoothing: 0.0, grad_clip: None, dropout_seed: i as u64 };
        net.step(&batch, &step)?;
        track(&opts.device);
        Ok::<(), String>(())
    })?;
    let infer = timed(opts, bar, "inference", |_| {
        net.logits(&batch.images)?;
        track(&opts.device);
        Ok::<(), String>(())
    })?;
    Ok((train, infer, Vec::new()))
}

/// One step of the candle engine on `device` and of the native engine on
/// the CPU, from the same initial weights, compared.
fn verify_step(graph: &Graph, device: &Device, images: &[f32], labels: &[u32]) -> Result<Verification, String> {
    let err = |e: candle_core::Error| e.to_string();
    let model = Model::new(graph, &Device::Cpu, 0).map_err(err)?;
    let settings = OptimizerSettings { lr: 0.01, ..OptimizerSettings::default() };
    let step = StepSettings { lr: settings.lr, label_smoothing: 0.0, grad_clip: None, dropout_seed: 0 };
    let dims = graph.input_shape();
    let batch_on = |device: &Device| -> Result<Batch, String> {
        let n = labels.len();
        Ok(Batch {
            images: Tensor::from_slice(images, (n, dims[0], dims[1], dims[2]), device).map_err(err)?,
            labels: Tensor::from_slice(labels, n, device).map_err(err)?,
            indices: (0..n).collect(),
        })
    };
    let mut candle = trainer(Engine::Candle, device, &model, &settings, None)?;
    let mut native = trainer(Engine::Native, &Device::Cpu, &model, &settings, None)?;
    let loss = candle.step(&batch_on(device)?, &step)?.value;
    let native_loss = native.step(&batch_on(&Device::Cpu)?, &step)?.value;
    let before = model.state();
    let update = |after: BTreeMap<String, Tensor>| -> Result<Vec<f64>, String> {
        let mut all = Vec::new();
        for p in graph.nodes.iter().flat_map(|n| &n.params) {
            let change = (&after[&p.name] - &before[&p.name]).and_then(|d| d.flatten_all()).map_err(err)?;
            all.extend(change.to_vec1::<f32>().map_err(err)?.into_iter().map(f64::from));
        }
        Ok(all)
    };
    let (ours, theirs) = (update(candle.model_state()?)?, update(native.model_state()?)?);
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let update_error =
        norm(&mut ours.iter().zip(&theirs).map(|(a, b)| a - b)) / norm(&mut theirs.iter().copied()).max(1e-30);
    let loss_error = (loss - native_loss).abs() / native_loss.abs().max(1e-30);
    let passed = loss_error <= VERIFY_BOUNDS[0] && update_error <= VERIFY_BOUNDS[1];
    Ok(Verification { loss, native_loss, loss_error, update_error, passed })
}

/// The memory in use on a GPU, in MiB, as the driver reports it (the
/// whole device's); `None` on the CPU.
#[cfg(feature = "cuda")]
fn device_memory_mib(device: &Device) -> Option<f64> {
    let cuda = device.as_cuda_device().ok()?;
    let (free, total) = cuda.cuda_stream().context().mem_get_info().ok()?;
    Some((total - free) as f64 / (1024.0 * 1024.0))
}

#[cfg(not(feature = "cuda"))]
fn device_memory_mib(_: &Device) -> Option<f64> {
    None
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The peak resident set size (`VmHWM`), which PyTorch's baseline reports
/// as `ru_maxrss`; NaN where /proc is missing.
fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
