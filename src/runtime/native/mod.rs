//! The native CPU engine: a Graph IR run forward and backward by netc's own
//! kernels, without an autograd tape.
//!
//! candle's CPU path pays for generality on every step: an allocation per
//! op, NCHW products that the `gemm` crate runs at half speed, and a
//! backward pass that discovers the graph again. The IR already is the
//! graph, so [`Net`] plans it once: a buffer per node sized for the batch,
//! NHWC activations (a pixel's channels contiguous, which makes every
//! convolution a product writing its output rows directly, and 1x1
//! convolutions a product without im2col), batch norm fused with the ReLU
//! that follows it, and hand-written backward kernels that write (or add
//! into) gradient buffers reused from step to step.
//!
//! Parameters stay in the IR's layout (`[Cout, Cin, k, k]` for a
//! convolution) so that checkpoints, the optimiser and candle's [`Model`]
//! see the same tensors; images come in and logits go out as `[N, ...]`
//! arrays in PyTorch's order.
//!
//! [`Model`]: super::Model

pub mod conv;
mod linalg;
mod norm;
mod par;
mod pointwise;
mod siblings;
pub mod window;
mod winograd;

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use self::conv::{Algorithm, ConvGeom};
use self::pointwise::{Arith, Hwc};
use self::siblings::Siblings;
use self::window::{Nhwc, PoolWindow, Tap};
use super::{Mode, Model};
use crate::graph::{Graph, NodeId, Op, UpsampleMode};
use crate::rng::{Rng, TAG_DROPOUT, mix};

/// A trainable parameter: its IR name and shape, its values, and the
/// gradient of the last backward pass.
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub value: Vec<f32>,
    pub grad: Vec<f32>,
    /// Whether its node leads to the output: a parameter on a branch that
    /// does not has no gradient (PyTorch's `None`; `grad` stays zero), and
    /// the optimiser leaves it alone.
    pub has_grad: bool,
}

/// How one IR node runs, with the state it keeps between passes.
enum Exec {
    Input,
    /// Computes nothing: its output is its source's (a ReLU fused into the
    /// batch norm before it, a flatten of `[C, 1, 1]`, dropout with p = 0).
    Alias,
    Conv {
        geom: ConvGeom,
        algorithm: Algorithm,
        weight: usize,
        bias: Option<usize>,
        /// The weight in the form the algorithm reads.
        wt: Vec<f32>,
    },
    BatchNorm {
        eps: f64,
        momentum: f64,
        /// A ReLU follows, fused: the stored output is after it.
        relu: bool,
        weight: usize,
        bias: usize,
        running_mean: Vec<f32>,
        running_var: Vec<f32>,
        /// The batch statistics of the last training forward pass.
        mean: Vec<f64>,
        var: Vec<f64>,
    },
    Relu,
    Sigmoid,
    Affine {
        scale: f32,
        shift: f32,
    },
    MaxPool {
        window: PoolWindow,
        /// Where each output's maximum was in the last training pass.
        taps: Vec<Tap>,
    },
    AvgPool {
        window: PoolWindow,
    },
    GlobalAvgPool,
    Resize {
        mode: UpsampleMode,
    },
    Dropout {
        p: f64,
        /// `0` or `1 / (1 - p)` per element, drawn in the last training pass.
        mask: Vec<f32>,
    },
    /// From NHWC to PyTorch's flatten order, NCHW.
    Flatten,
    Linear {
        weight: usize,
        bias: Option<usize>,
    },
    Concat,
    Arith(Arith),
}

/// One graph, planned for the engine: its parameters, running statistics
/// and the buffers of a forward and backward pass.
pub struct Net {
    graph: Graph,
    exec: Vec<Exec>,
    /// The node whose buffer holds each node's output: itself, or for an
    /// [`Exec::Alias`], the node it passes through.
    source: Vec<NodeId>,
    /// Each node's inputs, as the nodes whose buffers hold them, and for
    /// each the position of its first occurrence (a node may read one
    /// input twice: `concat(x, x)`, `x * x`).
    inputs: Vec<Vec<NodeId>>,
    first_use: Vec<Vec<usize>>,
    shapes: Vec<Hwc>,
    params: Vec<Param>,
    /// Per-thread partial gradients of the convolution (or sibling group)
    /// whose backward pass runs, shared by all of them (one runs at a time)
    /// and kept between steps: one set each would hold every weight twice
    /// more.
    conv_partials: Vec<Vec<f32>>,
    /// Groups of 1x1 convolutions that read the same input, which run as
    /// one, and each node's group.
    siblings: Vec<Siblings>,
    sibling_group: Vec<Option<usize>>,
    /// Whether the convolutions' prepared weights are behind the
    /// parameters (set by [`Net::params_mut`] and [`Net::load`]).
    prepared_weights_stale: bool,
    /// Examples the buffers hold.
    capacity: usize,
    /// Examples in the last forward pass.
    batch: usize,
    mode: Mode,
    /// Each node's output (NHWC), empty for aliases.
    acts: Vec<Vec<f32>>,
    /// During a backward pass, the gradient of each node's output that its
    /// readers have written so far.
    grads: Vec<Option<Vec<f32>>>,
    /// Gradient buffers of finished nodes, for the next ones.
    spare: Vec<Vec<f32>>,
    /// The output in NCHW order, when it has more than one pixel.
    output: Vec<f32>,
    /// Seconds spent per (op kind, pass), when profiling.
    profile: Option<BTreeMap<(&'static str, Pass), f64>>,
}

/// The passes a profile separates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pass {
    Forward,
    Backward,
}

/// The engine's failures: a graph or weights it cannot run.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl Net {
    /// The engine for `model`'s graph, with its parameters and running
    /// statistics.
    pub fn from_model(model: &Model) -> Result<Net, Error> {
        let mut net = Net::new(model.graph())?;
        net.load(&model.state())?;
        Ok(net)
    }

    /// The engine for `graph`, with zero parameters until [`Net::load`].
    pub fn new(graph: &Graph) -> Result<Net, Error> {
        let n = graph.nodes.len();
        let mut consumers = vec![0usize; n];
        for node in &graph.nodes {
            for &i in &node.inputs {
                consumers[i] += 1;
            }
        }
        let mut reaches_output = vec![false; n];
        reaches_output[graph.output] = true;
        for id in (0..n).rev() {
            if reaches_output[id] {
                for &i in &graph.nodes[id].inputs {
                    reaches_output[i] = true;
                }
            }
        }
        let mut params = Vec::new();
        let mut param_ids = BTreeMap::new();
        for (id, node) in graph.nodes.iter().enumerate() {
            for p in &node.params {
                let len = p.shape.iter().product();
                param_ids.insert(p.name.clone(), params.len());
                params.push(Param {
                    name: p.name.clone(),
                    shape: p.shape.clone(),
                    value: vec![0.0; len],
                    grad: vec![0.0; len],
                    has_grad: reaches_output[id],
                });
            }
        }
        let shapes: Vec<Hwc> = graph
            .nodes
            .iter()
            .map(|node| match node.shape.len() {
                1 | 3 => Ok(Hwc::of(&node.shape)),
                _ => Err(Error(format!(
                    "node `{}` has shape {:?}; the engine runs [C, H, W] and [F]",
                    node.name, node.shape
                ))),
            })
            .collect::<Result<_, _>>()?;
        let mut exec = Vec::with_capacity(n);
        let mut source: Vec<NodeId> = (0..n).collect();
        for (id, node) in graph.nodes.iter().enumerate() {
            let param = |role: &str| param_ids.get(&format!("{}.{role}", node.name)).copied();
            let need = |role: &str| param(role).ok_or_else(|| Error(format!("node `{}` has no {role}", node.name)));
            let input = |i: usize| source[node.inputs[i]];
            let e = match &node.op {
                Op::Input => Exec::Input,
                Op::Conv { out_channels, kernel, stride, padding, dilation, groups, bias } => {
                    let (si, so) = (shapes[node.inputs[0]], shapes[id]);
                    let geom = ConvGeom {
                        n: 0,
                        h: si.h,
                        w: si.w,
                        cin: si.c,
                        oh: so.h,
                        ow: so.w,
                        cout: *out_channels,
                        k: *kernel,
                        stride: *stride,
                        padding: *padding,
                        dilation: *dilation,
                        groups: *groups,
                    };
                    Exec::Conv {
                        algorithm: Algorithm::choose(&geom),
                        geom,
                        weight: need("weight")?,
                        bias: if *bias { Some(need("bias")?) } else { None },
                        wt: Vec::new(),
                    }
                }
                Op::BatchNorm { eps, momentum } => {
                    let c = shapes[id].c;
                    Exec::BatchNorm {
                        eps: *eps,
                        momentum: *momentum,
                        relu: false,
                        weight: need("weight")?,
                        bias: need("bias")?,
                        running_mean: vec![0.0; c],
                        running_var: vec![1.0; c],
                        mean: vec![0.0; c],
                        var: vec![1.0; c],
                    }
                }
                Op::Relu => {
                    // Only a ReLU that is its batch norm's one reader, with no
                    // alias between them, may overwrite the batch norm's output.
                    let from = node.inputs[0];
                    let fusable = consumers[from] == 1 && source[from] == from && from != graph.output;
                    match &mut exec[from] {
                        Exec::BatchNorm { relu, .. } if fusable => {
                            *relu = true;
                            source[id] = from;
                            Exec::Alias
                        }
                        _ => Exec::Relu,
                    }
                }
                Op::Sigmoid => Exec::Sigmoid,
                Op::Affine { scale, shift } => Exec::Affine { scale: *scale as f32, shift: *shift as f32 },
                Op::MaxPool { kernel, .. } if *kernel > window::MAX_POOL_KERNEL => {
                    return Err(Error(format!(
                        "max pooling `{}` has a {kernel}x{kernel} window; the native engine pools at most {m}x{m} \
                         (`--engine candle` has no limit)",
                        node.name,
                        m = window::MAX_POOL_KERNEL
                    )));
                }
                Op::MaxPool { kernel, stride, padding, ceil_mode } => Exec::MaxPool {
                    window: PoolWindow { kernel: *kernel, stride: *stride, padding: *padding, ceil_mode: *ceil_mode },
                    taps: Vec::new(),
                },
                Op::AvgPool { kernel, stride, padding, ceil_mode } => Exec::AvgPool {
                    window: PoolWindow { kernel: *kernel, stride: *stride, padding: *padding, ceil_mode: *ceil_mode },
                },
                Op::GlobalAvgPool => Exec::GlobalAvgPool,
                Op::Upsample { mode, .. } => Exec::Resize { mode: *mode },
                Op::Dropout { p } if *p == 0.0 => {
                    source[id] = input(0);
                    Exec::Alias
                }
                Op::Dropout { p } => Exec::Dropout { p: *p, mask: Vec::new() },
                Op::Flatten if shapes[node.inputs[0]].pixels() == 1 => {
                    source[id] = input(0);
                    Exec::Alias
                }
                Op::Flatten => Exec::Flatten,
                Op::Linear { bias, .. } => {
                    Exec::Linear { weight: need("weight")?, bias: if *bias { Some(need("bias")?) } else { None } }
                }
                Op::Concat => Exec::Concat,
                Op::Add => Exec::Arith(Arith::Add),
                Op::Mul => Exec::Arith(Arith::Mul),
            };
            exec.push(e);
        }
        let inputs: Vec<Vec<NodeId>> =
            graph.nodes.iter().map(|node| node.inputs.iter().map(|i| source[*i]).collect()).collect();
        let first_use = inputs
            .iter()
            .map(|ins| ins.iter().map(|s| ins.iter().position(|t| t == s).expect("present")).collect())
            .collect();
        let siblings = group_siblings(&exec, &inputs);
        let mut sibling_group = vec![None; n];
        for (i, group) in siblings.iter().enumerate() {
            for &m in &group.members {
                sibling_group[m] = Some(i);
            }
        }
        Ok(Net {
            conv_partials: Vec::new(),
            siblings,
            sibling_group,
            graph: graph.clone(),
            inputs,
            first_use,
            prepared_weights_stale: true,
            grads: (0..n).map(|_| None).collect(),
            acts: (0..n).map(|_| Vec::new()).collect(),
            exec,
            source,
            shapes,
            params,
            capacity: 0,
            batch: 0,
            mode: Mode::Eval,
            spare: Vec::new(),
            output: Vec::new(),
            profile: None,
        })
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn params_mut(&mut self) -> &mut [Param] {
        self.prepared_weights_stale = true;
        &mut self.params
    }

    /// Parameters and running statistics under the names of
    /// [`Model::state`], for checkpoints.
    pub fn state(&self) -> BTreeMap<String, Tensor> {
        let tensor = |v: &[f32], shape: &[usize]| {
            Tensor::from_slice(v, shape, &Device::Cpu).expect("a buffer holds its shape's elements")
        };
        let mut out: BTreeMap<String, Tensor> =
            self.params.iter().map(|p| (p.name.clone(), tensor(&p.value, &p.shape))).collect();
        for (node, e) in self.graph.nodes.iter().zip(&self.exec) {
            if let Exec::BatchNorm { running_mean, running_var, .. } = e {
                out.insert(format!("{}.running_mean", node.name), tensor(running_mean, &[running_mean.len()]));
                out.insert(format!("{}.running_var", node.name), tensor(running_var, &[running_var.len()]));
            }
        }
        out
    }

    /// Loads what [`Net::state`] returns. Every name must be present with
    /// its shape ([`Model::load_state`] says which are not).
    pub fn load(&mut self, state: &BTreeMap<String, Tensor>) -> Result<(), Error> {
        let read = |name: &str, len: usize| -> Result<Vec<f32>, Error> {
            let t = state.get(name).ok_or_else(|| Error(format!("no `{name}` in the weights")))?;
            let v: Vec<f32> = t
                .to_dtype(candle_core::DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .map_err(|e| Error(format!("`{name}`: {e}")))?;
            if v.len() != len {
                return Err(Error(format!("`{name}` has {} values, the graph needs {len}", v.len())));
            }
            Ok(v)
        };
        for p in &mut self.params {
            p.value = read(&p.name, p.value.len())?;
        }
        self.prepared_weights_stale = true;
        for (node, e) in self.graph.nodes.iter().zip(&mut self.exec) {
            if let Exec::BatchNorm { running_mean, running_var, .. } = e {
                *running_mean = read(&format!("{}.running_mean", node.name), running_mean.len())?;
                *running_var = read(&format!("{}.running_var", node.name), running_var.len())?;
            }
        }
        Ok(())
    }

    /// Runs the graph on `n` images (NCHW, as the data loader gives them)
    /// and returns the output (the logits, `[n, classes]`; a feature map
    /// comes in NCHW order). Training mode uses batch
    /// statistics, updates the running ones, draws dropout masks from
    /// `dropout_seed`, and keeps what [`Net::backward`] needs.
    pub fn forward(&mut self, images: &[f32], n: usize, mode: Mode, dropout_seed: u64) -> Result<&[f32], Error> {
        let input = self.shapes[0];
        if images.len() != n * input.len() || n == 0 {
            return Err(Error(format!(
                "the engine got {} values for {n} images of {} values each",
                images.len(),
                input.len()
            )));
        }
        if mode == Mode::Train {
            for (node, s) in self.graph.nodes.iter().zip(&self.shapes) {
                if matches!(node.op, Op::BatchNorm { .. }) && n * s.pixels() < 2 {
                    return Err(Error(format!(
                        "batch norm `{}` sees one value per channel in this batch; use a larger batch",
                        node.name
                    )));
                }
            }
        }
        self.reserve(n);
        self.batch = n;
        self.mode = mode;
        let mut dropout = Rng::new(mix(&[dropout_seed, TAG_DROPOUT]));
        let prepare = std::mem::replace(&mut self.prepared_weights_stale, false);
        for id in 0..self.graph.nodes.len() {
            let start = self.profile.is_some().then(std::time::Instant::now);
            self.forward_node(id, images, &mut dropout, prepare);
            self.record(id, Pass::Forward, start);
        }
        let (out, s) = (self.source[self.graph.output], self.shapes[self.graph.output]);
        let y = &self.acts[out][..n * s.len()];
        if s.pixels() == 1 {
            return Ok(y);
        }
        self.output.resize(y.len(), 0.0);
        pointwise::nhwc_to_nchw(y, s, n, &mut self.output);
        Ok(&self.output)
    }

    /// Sizes every buffer for `n` examples.
    fn reserve(&mut self, n: usize) {
        if n <= self.capacity {
            return;
        }
        for id in 0..self.exec.len() {
            if self.source[id] == id {
                self.acts[id] = vec![0.0; n * self.shapes[id].len()];
            }
            match &mut self.exec[id] {
                Exec::MaxPool { taps, .. } => *taps = vec![0; n * self.shapes[id].len()],
                Exec::Dropout { mask, .. } => *mask = vec![0.0; n * self.shapes[id].len()],
                _ => {}
            }
        }
        self.spare.clear();
        self.capacity = n;
    }

    /// Runs node `id`; `prepare`: its weights changed since the last pass.
    fn forward_node(&mut self, id: NodeId, images: &[f32], dropout: &mut Rng, prepare: bool) {
        if self.source[id] != id {
            return;
        }
        if let Some(group) = self.sibling_group[id] {
            // The first sibling runs the group; the others' outputs are done.
            if self.siblings[group].members[0] == id {
                self.forward_siblings(group, prepare);
            }
            return;
        }
        let (n, mode) = (self.batch, self.mode);
        let s = self.shapes[id];
        let (ins, shapes) = (&self.inputs[id], &self.shapes);
        // An alias has its source's shape, so an input's shape is its buffer's.
        let in_shape = |i: usize| shapes[ins[i]];
        let (before, rest) = self.acts.split_at_mut(id);
        let y = &mut rest[0][..n * s.len()];
        let x = |i: usize| &before[ins[i]][..n * in_shape(i).len()];
        let params = &self.params;
        match &mut self.exec[id] {
            Exec::Input => pointwise::nchw_to_nhwc(images, s, n, y),
            Exec::Alias => unreachable!("aliases have no buffer"),
            Exec::Conv { geom, algorithm, weight, bias, wt, .. } => {
                geom.n = n;
                if prepare {
                    conv::prepare_weights(geom, *algorithm, &params[*weight].value, wt);
                }
                conv::forward(geom, *algorithm, x(0), wt, bias.map(|b| params[b].value.as_slice()), y);
            }
            Exec::BatchNorm { eps, momentum, relu, weight, bias, running_mean, running_var, mean, var } => {
                let (w, b) = (&params[*weight].value, &params[*bias].value);
                if mode == Mode::Train {
                    (*mean, *var) = norm::batch_stats(x(0), s.c);
                    let count = (n * s.pixels()) as f64;
                    let unbiased = count / (count - 1.0).max(1.0);
                    for ch in 0..s.c {
                        let m = *momentum;
                        running_mean[ch] = ((1.0 - m) * running_mean[ch] as f64 + m * mean[ch]) as f32;
                        running_var[ch] = ((1.0 - m) * running_var[ch] as f64 + m * var[ch] * unbiased) as f32;
                    }
                    let (scale, shift) = norm::affine_of(mean, var, w, b, *eps);
                    norm::scale_shift(x(0), s.c, &scale, &shift, *relu, y);
                } else {
                    let m: Vec<f64> = running_mean.iter().map(|v| *v as f64).collect();
                    let v: Vec<f64> = running_var.iter().map(|v| *v as f64).collect();
                    let (scale, shift) = norm::affine_of(&m, &v, w, b, *eps);
                    norm::scale_shift(x(0), s.c, &scale, &shift, *relu, y);
                }
            }
            Exec::Relu => pointwise::map(x(0), y, |v| v.max(0.0)),
            Exec::Sigmoid => pointwise::map(x(0), y, |v| 1.0 / (1.0 + (-v).exp())),
            Exec::Affine { scale, shift } => {
                let (a, b) = (*scale, *shift);
                pointwise::map(x(0), y, move |v| v * a + b)
            }
            Exec::MaxPool { window, taps } => {
                let (xs, ys) = (nhwc(in_shape(0), n), nhwc(s, n));
                match mode {
                    Mode::Train => window::max_pool_forward(x(0), xs, *window, y, ys, &mut taps[..y.len()]),
                    Mode::Eval => window::max_pool_infer(x(0), xs, *window, y, ys),
                }
            }
            Exec::AvgPool { window } => window::avg_pool_forward(x(0), nhwc(in_shape(0), n), *window, y, nhwc(s, n)),
            Exec::GlobalAvgPool => pointwise::global_avg_pool(x(0), in_shape(0), n, y),
            Exec::Resize { mode } => {
                let (xs, ys) = (nhwc(in_shape(0), n), nhwc(s, n));
                match mode {
                    UpsampleMode::Nearest => window::resize_nearest_forward(x(0), xs, y, ys),
                    UpsampleMode::Bilinear { align_corners } => {
                        window::resize_bilinear_forward(x(0), xs, *align_corners, y, ys)
                    }
                }
            }
            Exec::Dropout { p, mask } => {
                if mode == Mode::Train {
                    // Drawn in NCHW order, as candle's Model draws them, so
                    // that both engines drop the same elements.
                    let keep = 1.0 - *p;
                    for b in 0..n {
                        for ch in 0..s.c {
                            for px in 0..s.pixels() {
                                let kept = dropout.uniform() < keep;
                                mask[(b * s.pixels() + px) * s.c + ch] = if kept { (1.0 / keep) as f32 } else { 0.0 };
                            }
                        }
                    }
                    for ((o, v), m) in y.iter_mut().zip(x(0)).zip(mask.iter()) {
                        *o = v * m;
                    }
                } else {
                    y.copy_from_slice(x(0));
                }
            }
            Exec::Flatten => pointwise::nhwc_to_nchw(x(0), in_shape(0), n, y),
            Exec::Linear { weight, bias } => {
                let (f, k) = (in_shape(0).len(), s.c);
                let flat = flat_input(x(0), in_shape(0), n);
                if let Some(b) = bias {
                    for row in y.chunks_exact_mut(k) {
                        row.copy_from_slice(&params[*b].value);
                    }
                }
                use linalg::{Strides, matmul};
                let w = Strides::transposed(0, f);
                matmul(
                    (n, k, f),
                    y,
                    Strides::rows(0, k),
                    bias.is_some(),
                    &flat,
                    Strides::rows(0, f),
                    &params[*weight].value,
                    w,
                );
            }
            Exec::Concat => {
                let inputs: Vec<&[f32]> = (0..ins.len()).map(x).collect();
                let parts: Vec<usize> = (0..ins.len()).map(|i| in_shape(i).c).collect();
                pointwise::concat(&inputs, &parts, y);
            }
            Exec::Arith(op) => pointwise::arith(*op, x(0), in_shape(0), x(1), in_shape(1), n, y, s),
        }
    }

    /// Back-propagates `dlogits` (the loss's gradient with respect to the
    /// output of the last training forward pass, in its order) and writes
    /// the gradient of every parameter that has one into [`Param::grad`].
    pub fn backward(&mut self, dlogits: &[f32]) -> Result<(), Error> {
        let n = self.batch;
        let out = self.source[self.graph.output];
        if self.mode != Mode::Train || dlogits.len() != n * self.shapes[out].len() {
            return Err(Error("backward needs the gradient of the last training forward pass".to_string()));
        }
        let s = self.shapes[self.graph.output];
        let mut g = take_buffer(&mut self.spare, dlogits.len());
        if s.pixels() == 1 {
            g.copy_from_slice(dlogits);
        } else {
            pointwise::nchw_into_nhwc(dlogits, s, n, &mut g, false);
        }
        self.grads[out] = Some(g);
        for id in (1..self.graph.nodes.len()).rev() {
            if self.source[id] != id {
                continue;
            }
            if let Some(group) = self.sibling_group[id] {
                // A later sibling's gradient waits in `grads` for the first.
                if self.siblings[group].members[0] == id {
                    let start = self.profile.is_some().then(std::time::Instant::now);
                    self.backward_siblings(group);
                    self.record(id, Pass::Backward, start);
                }
                continue;
            }
            let Some(dy) = self.grads[id].take() else { continue };
            let start = self.profile.is_some().then(std::time::Instant::now);
            self.backward_node(id, &dy);
            self.record(id, Pass::Backward, start);
            self.spare.push(dy);
        }
        for g in self.grads.iter_mut() {
            if let Some(g) = g.take() {
                self.spare.push(g);
            }
        }
        Ok(())
    }

    /// Starts (or stops) adding up the time each kind of op takes.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(BTreeMap::new);
    }

    /// Seconds per op kind and pass since profiling started, slowest first.
    pub fn profile(&self) -> Vec<(&'static str, Pass, f64)> {
        let mut rows: Vec<_> = self.profile.iter().flatten().map(|((k, p), s)| (*k, *p, *s)).collect();
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        rows
    }

    fn record(&mut self, id: NodeId, pass: Pass, start: Option<std::time::Instant>) {
        if let (Some(profile), Some(start)) = (&mut self.profile, start) {
            let kind = match &self.exec[id] {
                Exec::BatchNorm { relu: true, .. } => "bn+relu",
                Exec::Conv { geom, .. } if geom.k == 1 => "conv 1x1",
                Exec::Conv { algorithm: Algorithm::Winograd, .. } => "conv winograd",
                _ => self.graph.nodes[id].op.kind(),
            };
            *profile.entry((kind, pass)).or_default() += start.elapsed().as_secs_f64();
        }
    }

    /// The forward pass of sibling group `group` (see [`Siblings`]);
    /// `prepare`: their weights changed since the last pass.
    fn forward_siblings(&mut self, group: usize, prepare: bool) {
        let members = &self.siblings[group].members;
        let src = self.inputs[members[0]][0];
        let (n, s) = (self.batch, self.shapes[src]);
        if prepare {
            let ids: Vec<(usize, Option<usize>)> = members.iter().map(|m| conv_params(&self.exec[*m])).collect();
            let params = &self.params;
            let values = ids.iter().map(|(w, b)| (params[*w].value.as_slice(), b.map(|b| params[b].value.as_slice())));
            self.siblings[group].load_weights(values);
        }
        let members = self.siblings[group].members.clone();
        let mut outs: Vec<Vec<f32>> = members.iter().map(|m| std::mem::take(&mut self.acts[*m])).collect();
        {
            let mut ys: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            self.siblings[group].forward(&self.acts[src][..n * s.len()], n * s.pixels(), &mut ys);
        }
        for (m, o) in members.iter().zip(outs) {
            self.acts[*m] = o;
        }
    }

    /// The backward pass of sibling group `group` (see [`Siblings`]).
    fn backward_siblings(&mut self, group: usize) {
        let members = self.siblings[group].members.clone();
        let dys: Vec<Option<Vec<f32>>> = members.iter().map(|m| self.grads[*m].take()).collect();
        if dys.iter().all(Option::is_none) {
            return;
        }
        let src = self.inputs[members[0]][0];
        let (n, s) = (self.batch, self.shapes[src]);
        let mut dx = (src != 0).then(|| match self.grads[src].take() {
            Some(data) => GradBuf { data, fresh: false },
            None => GradBuf { data: take_buffer(&mut self.spare, n * s.len()), fresh: true },
        });
        let params: Vec<(usize, Option<usize>)> = members.iter().map(|m| conv_params(&self.exec[*m])).collect();
        let siblings = &self.siblings[group];
        let dy_views: Vec<Option<&[f32]>> = dys.iter().map(|d| d.as_deref()).collect();
        let x = &self.acts[src][..n * s.len()];
        let dx_buf = dx.as_mut().map(GradBuf::writing);
        let grads = siblings.backward(x, n * s.pixels(), &dy_views, dx_buf, &mut self.conv_partials);
        for (i, (w, b)) in params.iter().enumerate() {
            self.params[*w].grad.copy_from_slice(siblings.weight_grad(grads, i));
            if let Some(b) = b {
                self.params[*b].grad.copy_from_slice(siblings.bias_grad(grads, i));
            }
        }
        if let Some(dx) = dx {
            self.grads[src] = Some(dx.data);
        }
        self.spare.extend(dys.into_iter().flatten());
    }

    fn backward_node(&mut self, id: NodeId, dy: &[f32]) {
        let n = self.batch;
        let s = self.shapes[id];
        let (ins, slot, shapes) = (&self.inputs[id], &self.first_use[id], &self.shapes);
        let in_shape = |i: usize| shapes[ins[i]];
        // The input gradients, taken out of `grads` while they are written:
        // one per distinct input (`slot[i]` is input i's), none for the
        // input images.
        let mut dxs: Vec<Option<GradBuf>> = Vec::with_capacity(ins.len());
        for (i, &src) in ins.iter().enumerate() {
            if src == 0 || slot[i] != i {
                dxs.push(None);
                continue;
            }
            let len = n * self.shapes[src].len();
            dxs.push(Some(match self.grads[src].take() {
                Some(data) => GradBuf { data, fresh: false },
                None => GradBuf { data: take_buffer(&mut self.spare, len), fresh: true },
            }));
        }
        let acts = &self.acts;
        let x = |i: usize| &acts[ins[i]][..n * in_shape(i).len()];
        let y = &acts[id][..n * s.len()];
        let params = &mut self.params;
        let dx0 = dxs[0].as_mut();
        match &mut self.exec[id] {
            Exec::Input | Exec::Alias => unreachable!("no backward pass through the input or an alias"),
            Exec::Conv { geom, algorithm, weight, bias, wt } => {
                let partials = &mut self.conv_partials;
                let mut dbias = bias.map(|_| vec![0.0; geom.cout]);
                let dx = dx0.map(GradBuf::writing);
                let dw = &mut params[*weight].grad;
                conv::backward(geom, *algorithm, x(0), wt, dy, dx, dw, dbias.as_deref_mut(), partials);
                if let (Some(b), Some(db)) = (bias, dbias) {
                    params[*b].grad.copy_from_slice(&db);
                }
            }
            Exec::BatchNorm { eps, relu, weight, bias, mean, var, .. } => {
                let mut dw = vec![0.0; s.c];
                let mut db = vec![0.0; s.c];
                let (w, b) = (&params[*weight].value, &params[*bias].value);
                // The forward pass's scale and shift, for the fused ReLU's mask.
                let affine = relu.then(|| norm::affine_of(mean, var, w, b, *eps));
                let relu = affine.as_ref().map(|(scale, shift)| (scale.as_slice(), shift.as_slice()));
                let dx = dx0.map(GradBuf::writing);
                norm::backward(x(0), relu, dy, s.c, mean, var, w, *eps, dx, &mut dw, &mut db);
                params[*weight].grad.copy_from_slice(&dw);
                params[*bias].grad.copy_from_slice(&db);
            }
            Exec::Relu => {
                if let Some((dx, add)) = dx0.map(GradBuf::writing) {
                    pointwise::map2_into(y, dy, dx, add, |v, g| if v > 0.0 { g } else { 0.0 });
                }
            }
            Exec::Sigmoid => {
                if let Some((dx, add)) = dx0.map(GradBuf::writing) {
                    pointwise::map2_into(y, dy, dx, add, |v, g| g * v * (1.0 - v));
                }
            }
            Exec::Affine { scale, .. } => {
                if let Some((dx, add)) = dx0.map(GradBuf::writing) {
                    let a = *scale;
                    pointwise::map2_into(y, dy, dx, add, move |_, g| g * a);
                }
            }
            Exec::MaxPool { window, taps } => {
                if let Some((dx, add)) = dx0.map(GradBuf::writing) {
                    let taps = &taps[..dy.len()];
                    window::max_pool_backward(dy, nhwc(s, n), taps, *window, dx, nhwc(in_shape(0), n), add);
                }
            }
            Exec::AvgPool { window } => {
                if let Some(dx) = dx0.map(GradBuf::adding) {
                    window::avg_pool_backward(dy, nhwc(s, n), *window, dx, nhwc(in_shape(0), n));
                }
            }
            Exec::GlobalAvgPool => {
                if let Some((dx, add)) = dx0.map(GradBuf::writing) {
                    pointwise::global_avg_pool_backward(dy, in_shape(0), n, dx, add);
                }
            }
            Exec::Resize { mode } => {
                if let Some(dx) = dx0.map(GradBuf::adding) {
                    let (xs, ys) = (nhwc(in_shape(0), n), nhwc(s, n));
                    match mode {
                        UpsampleMode::Nearest => window::resize_nearest_backward(dy, ys, dx, xs),
                        UpsampleMode::Bilinear { align_corners } => {
                            window::resize_bilinear_backward(dy, ys, *align_corners, dx, xs)
                        }
                    }
                }
            }
            Exec::Dropout { mask, .. } => {
                if let Some((dx, add)) = dx0.map(GradBuf::writing) {
                    pointwise::map2_into(&mask[..dy.len()], dy, dx, add, |m, g| m * g);
                }
            }
            Exec::Flatten => {
                if let Some((dx, add)) = dx0.map(GradBuf::writing) {
                    pointwise::nchw_into_nhwc(dy, in_shape(0), n, dx, add);
                }
            }
            Exec::Linear { weight, bias } => {
                use linalg::{Strides, matmul};
                let (f, k) = (in_shape(0).len(), s.c);
                let flat = flat_input(x(0), in_shape(0), n);
                let w = &mut params[*weight];
                // dW[k, f] = dy^T · x
                matmul(
                    (k, f, n),
                    &mut w.grad,
                    Strides::rows(0, f),
                    false,
                    dy,
                    Strides::transposed(0, k),
                    &flat,
                    Strides::rows(0, f),
                );
                if let Some(dx) = dx0.map(GradBuf::adding) {
                    let mut dflat = vec![0.0; n * f];
                    matmul(
                        (n, f, k),
                        &mut dflat,
                        Strides::rows(0, f),
                        false,
                        dy,
                        Strides::rows(0, k),
                        &w.value,
                        Strides::rows(0, f),
                    );
                    if in_shape(0).pixels() == 1 {
                        dx.iter_mut().zip(&dflat).for_each(|(d, v)| *d += v);
                    } else {
                        pointwise::nchw_into_nhwc(&dflat, in_shape(0), n, dx, true);
                    }
                }
                if let Some(b) = bias {
                    let db = &mut params[*b].grad;
                    db.fill(0.0);
                    for row in dy.chunks_exact(k) {
                        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                    }
                }
            }
            Exec::Concat => {
                let mut offset = 0;
                for i in 0..ins.len() {
                    if let Some((dx, add)) = dxs[slot[i]].as_mut().map(GradBuf::writing) {
                        pointwise::channel_slice_into(dy, s.c, offset, dx, in_shape(i).c, add);
                    }
                    offset += in_shape(i).c;
                }
            }
            Exec::Arith(op) => {
                let op = *op;
                for i in 0..2 {
                    let other = 1 - i;
                    let Some(buf) = dxs[slot[i]].as_mut() else { continue };
                    // A broadcast input gathers several outputs' gradients.
                    let (dx, add) = if in_shape(i) == s { buf.writing() } else { (buf.adding(), true) };
                    pointwise::arith_backward(op, dy, s, x(other), in_shape(other), n, dx, in_shape(i), add);
                }
            }
        }
        for (&src, g) in self.inputs[id].iter().zip(dxs) {
            match g {
                // Nothing was written: no gradient flows this way.
                Some(g) if g.fresh => self.spare.push(g.data),
                Some(g) => self.grads[src] = Some(g.data),
                None => {}
            }
        }
    }
}

/// An input's gradient while a node's backward pass writes it. A `fresh`
/// buffer holds neither a contribution nor zeros yet, so the first kernel
/// that can may overwrite it instead of adding to zeros (a batch norm's
/// input gradient, for one, has no other contribution).
struct GradBuf {
    data: Vec<f32>,
    fresh: bool,
}

impl GradBuf {
    /// For kernels that only add: zeroed first when fresh.
    fn adding(&mut self) -> &mut [f32] {
        if self.fresh {
            self.data.fill(0.0);
            self.fresh = false;
        }
        &mut self.data
    }

    /// For kernels that add or overwrite: the buffer, and whether to add.
    fn writing(&mut self) -> (&mut [f32], bool) {
        let accumulate = !self.fresh;
        self.fresh = false;
        (&mut self.data, accumulate)
    }
}

/// A convolution's weight and bias parameters (indices into the net's).
fn conv_params(e: &Exec) -> (usize, Option<usize>) {
    match e {
        Exec::Conv { weight, bias, .. } => (*weight, *bias),
        _ => unreachable!("only convolutions are grouped as siblings"),
    }
}

/// The groups of two or more 1x1 convolutions (stride 1, no padding, one
/// group) that read the same node's output.
fn group_siblings(exec: &[Exec], inputs: &[Vec<NodeId>]) -> Vec<Siblings> {
    let mut by_input: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    for (id, e) in exec.iter().enumerate() {
        if let Exec::Conv { geom, .. } = e
            && geom.pointwise()
            && geom.groups == 1
        {
            by_input.entry(inputs[id][0]).or_default().push(id);
        }
    }
    by_input
        .into_values()
        .filter(|members| members.len() > 1)
        .map(|members| {
            let geom = |id: NodeId| match &exec[id] {
                Exec::Conv { geom, .. } => *geom,
                _ => unreachable!("grouped as a convolution"),
            };
            let couts = members.iter().map(|m| geom(*m).cout).collect();
            Siblings::new(members.clone(), geom(members[0]).cin, couts)
        })
        .collect()
}

/// A gradient buffer of `len` values left from earlier use (or zeros):
/// the smallest spare one that fits, or a new one.
fn take_buffer(spare: &mut Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let fits = spare.iter().enumerate().filter(|(_, b)| b.capacity() >= len);
    let found = fits.min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i);
    let mut b = found.map(|i| spare.swap_remove(i)).unwrap_or_default();
    b.resize(len, 0.0);
    b.truncate(len);
    b
}

fn nhwc(s: Hwc, n: usize) -> Nhwc {
    Nhwc { n, h: s.h, w: s.w, c: s.c }
}

/// A linear layer's input in PyTorch's flatten order: the NHWC rows
/// themselves when there is one pixel.
fn flat_input<'a>(x: &'a [f32], s: Hwc, n: usize) -> std::borrow::Cow<'a, [f32]> {
    if s.pixels() == 1 {
        return std::borrow::Cow::Borrowed(x);
    }
    let mut flat = vec![0.0; n * s.len()];
    pointwise::nhwc_to_nchw(x, s, n, &mut flat);
    std::borrow::Cow::Owned(flat)
}
