//! The Graph IR: the contract between the compiler and everything after it.
//!
//! A [`Graph`] is a list of nodes in topological order. Every node has a
//! unique hierarchical name, a fully resolved op, its inputs, its output
//! shape, its parameters, its multiply-adds and its receptive field. Nothing
//! here refers to spec text: summaries, the runtime and the probes read only
//! this.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// The `net`'s name.
    pub name: String,
    /// The net parameters after defaults and `--set` overrides.
    pub args: BTreeMap<String, f64>,
    /// Topologically ordered: a node's inputs come before it. Node 0 is the input.
    pub nodes: Vec<Node>,
    pub output: NodeId,
    pub probes: Vec<Probe>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Hierarchical and unique, e.g. `a3.b2.conv`.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// Per-example output shape: `[C, H, W]` for feature maps, `[F]` after
    /// `flatten` or `linear`.
    pub shape: Vec<usize>,
    pub params: Vec<ParamSpec>,
    pub macs: u64,
    pub receptive_field: ReceptiveField,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// `<node name>.<role>`, e.g. `a3.b2.conv.weight`; checkpoints use it.
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl ParamSpec {
    /// The number of values, saturating: a spec can describe a tensor too
    /// large to count in 64 bits, which must not wrap or panic.
    pub fn numel(&self) -> u64 {
        self.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64))
    }
}

impl Node {
    /// The number of parameter values, saturating like [`ParamSpec::numel`].
    pub fn param_count(&self) -> u64 {
        self.params.iter().fold(0, |sum, p| sum.saturating_add(p.numel()))
    }
}

/// Parameters and multiply-adds of `nodes`, summed saturating (each node's
/// multiply-adds already saturate in the compiler).
pub fn totals<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> (u64, u64) {
    nodes
        .into_iter()
        .fold((0, 0), |(params, macs), n| (params.saturating_add(n.param_count()), macs.saturating_add(n.macs)))
}

/// How a parameter starts before training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Kaiming-normal for a weight with this many inputs per output (fan-in).
    KaimingNormal {
        fan_in: usize,
    },
    /// Uniform in `±1/sqrt(fan_in)`, PyTorch's default for biases.
    UniformFanIn {
        fan_in: usize,
    },
    Ones,
    Zeros,
}

/// The region of the input that one output position can see, along one
/// spatial axis (kernels are square, so H and W agree).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceptiveField {
    /// Width in input pixels.
    pub size: f64,
    /// Distance in input pixels between neighbouring output positions.
    pub jump: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Hierarchical: a probe inside block instance `a3` is `a3.<name>`.
    pub name: String,
    pub node: NodeId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpsampleMode {
    Nearest,
    Bilinear { align_corners: bool },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    Input,
    Conv {
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
        bias: bool,
    },
    BatchNorm {
        eps: f64,
        momentum: f64,
    },
    Relu,
    Sigmoid,
    MaxPool {
        kernel: usize,
        stride: usize,
        padding: usize,
        ceil_mode: bool,
    },
    /// Padding counts towards the divisor, as PyTorch's default.
    AvgPool {
        kernel: usize,
        stride: usize,
        padding: usize,
        ceil_mode: bool,
    },
    /// Mean over H and W: `[C, H, W]` -> `[C, 1, 1]`.
    GlobalAvgPool,
    Upsample {
        size: [usize; 2],
        mode: UpsampleMode,
    },
    Dropout {
        p: f64,
    },
    Flatten,
    /// Flattens its input first, so it follows `gap` directly.
    Linear {
        out_features: usize,
        bias: bool,
    },
    /// Along channels.
    Concat,
    /// Elementwise, broadcasting size-1 dimensions (a 1-channel mask).
    Add,
    Mul,
    /// `scale * x + shift`, from arithmetic with numbers: `1 + mask`.
    Affine {
        scale: f64,
        shift: f64,
    },
}

impl Op {
    /// A short name for tables: `conv`, `max_pool`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv { .. } => "conv",
            Op::BatchNorm { .. } => "bn",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::MaxPool { .. } => "maxpool",
            Op::AvgPool { .. } => "avgpool",
            Op::GlobalAvgPool => "gap",
            Op::Upsample { .. } => "upsample",
            Op::Dropout { .. } => "dropout",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
            Op::Concat => "concat",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Affine { .. } => "affine",
        }
    }
}

/// Output length of a sliding window (conv or pool) along one axis of
/// length `size`, with PyTorch's rules; `span` is the kernel's extent
/// (`dilation * (kernel - 1) + 1`). `None` when the window does not fit the
/// padded input. Compiler and runtime both size windows with this.
pub fn window_output(size: usize, span: usize, stride: usize, padding: usize, ceil_mode: bool) -> Option<usize> {
    let padded = size + 2 * padding;
    let steps = padded.checked_sub(span)?;
    let mut out = if ceil_mode { steps.div_ceil(stride) + 1 } else { steps / stride + 1 };
    // In ceil mode the last window must start inside the input or its left
    // padding.
    if ceil_mode && (out - 1) * stride >= size + padding {
        out -= 1;
    }
    Some(out)
}

impl Graph {
    /// Saturating ([`totals`]).
    pub fn total_params(&self) -> u64 {
        totals(&self.nodes).0
    }

    /// Saturating ([`totals`]).
    pub fn total_macs(&self) -> u64 {
        totals(&self.nodes).1
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.nodes[0].shape
    }

    /// The `[C, H, W]` input of an image net, or an error naming the net.
    pub fn image_shape(&self) -> Result<[usize; 3], String> {
        self.input_shape()
            .try_into()
            .map_err(|_| format!("net `{}` takes {:?}, not an image [C, H, W]", self.name, self.input_shape()))
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
