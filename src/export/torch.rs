//! `netc export --format torch`: a compiled graph as one self-contained
//! PyTorch file. It holds an `nn.Module` whose `state_dict()` keys are
//! netc's checkpoint tensor names (plus PyTorch's `num_batches_tracked`,
//! which the loader and the trainer leave out), a loader for netc's
//! safetensors checkpoints, and a `main()` that trains the net with the
//! spec's recipe (baked in as defaults), under `torchrun` with
//! DistributedDataParallel, writing checkpoints `netc eval` can load.
//!
//! Every op maps as the ONNX export maps it (`export::Builder::node`):
//! PyTorch's own ceil-mode pools and `count_include_pad=True` are netc's
//! semantics, so no padding tricks are needed here.

use std::fmt::Write as _;

use crate::graph::{Graph, Op, UpsampleMode};
use crate::recipe::{Augment, OptimizerKind, Schedule, Train};
use crate::runtime::Model;

/// Python keywords and `nn.Module` attributes a node name segment must not
/// be written as an attribute (`self.train` is a method).
const RESERVED: &[&str] = &[
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "training",
    "train",
    "eval",
    "forward",
    "to",
    "cuda",
    "cpu",
    "float",
    "double",
    "half",
    "type",
    "apply",
    "modules",
    "children",
    "parameters",
    "buffers",
    "state_dict",
    "load_state_dict",
    "zero_grad",
    "add_module",
    "register_buffer",
    "register_parameter",
    "get_submodule",
    "named_modules",
    "named_parameters",
    "named_buffers",
    "requires_grad_",
    "share_memory",
    "extra_repr",
    "dump_patches",
    "call_super_init",
    "forward_probes",
    "bfloat16",
    "ipu",
    "xpu",
    "mtia",
    "compile",
];

fn safe_segment(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !s.starts_with('_') && !RESERVED.contains(&s)
}

/// How `forward` reaches the module of node `name`.
fn module_ref(name: &str) -> String {
    if name.split('.').all(safe_segment) {
        format!("self.{name}")
    } else {
        format!("self.get_submodule({})", py_str(name))
    }
}

/// A Python string literal.
fn py_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn py_float(f: f64) -> String {
    if f.is_finite() {
        let s = format!("{f:?}");
        if s.contains('.') || s.contains('e') { s } else { format!("{s}.0") }
    } else {
        "float('nan')".to_string()
    }
}

fn py_tuple(s: &[usize]) -> String {
    match s {
        [one] => format!("({one},)"),
        _ => format!("({})", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// A Python class name from the net's name.
pub fn class_name(net: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in net.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = false;
        } else {
            upper = true;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "Net");
    }
    out
}

/// The Python source of `graph` and its training recipe. The checkpoint's
/// model tensor names and shapes are written into the file
/// (`CHECKPOINT_TENSORS`), so the loader can say what is missing.
pub fn to_python(graph: &Graph, train: &Train) -> Result<String, String> {
    let model = Model::new(graph, &candle_core::Device::Cpu, train.seed).map_err(|e| e.to_string())?;
    let tensors: Vec<(String, Vec<usize>)> =
        model.state().iter().map(|(k, t)| (k.clone(), t.dims().to_vec())).collect();
    let class = class_name(&graph.name);
    let mut init = String::new();
    let mut fwd = String::new();
    // Modules are created parents first: a node that is a prefix of
    // another (`a3` and `a3.conv`) must exist before its child is put in.
    let mut modules: Vec<(String, String)> = Vec::new();
    let var = |id: usize| if id == 0 { "x".to_string() } else { format!("v{id}") };
    for id in 1..graph.nodes.len() {
        let node = &graph.nodes[id];
        let name = &node.name;
        let ins: Vec<String> = node.inputs.iter().map(|i| var(*i)).collect();
        let x = ins.first().cloned().ok_or_else(|| format!("node `{name}` ({}) has no input", node.op.kind()))?;
        let in_shape = &graph.nodes[node.inputs[0]].shape;
        let expr = match &node.op {
            Op::Input => {
                return Err(format!("node `{name}` is a second input; an exported net has one input, node 0"));
            }
            Op::Conv { out_channels, kernel, stride, padding, dilation, groups, bias } => {
                let cin = in_shape.first().copied().unwrap_or(0);
                if *groups == 0 || cin % groups != 0 {
                    return Err(format!("node `{name}` (conv): {cin} input channels in {groups} groups"));
                }
                modules.push((
                    name.clone(),
                    format!(
                        "nn.Conv2d({cin}, {out_channels}, {kernel}, stride={stride}, padding={padding}, \
                         dilation={dilation}, groups={groups}, bias={})",
                        py_bool(*bias)
                    ),
                ));
                format!("{}({x})", module_ref(name))
            }
            Op::BatchNorm { eps, momentum } => {
                let c = node.shape.first().copied().unwrap_or(0);
                let kind = if node.shape.len() == 3 { "BatchNorm2d" } else { "BatchNorm1d" };
                modules.push((
                    name.clone(),
                    format!("nn.{kind}({c}, eps={}, momentum={})", py_float(*eps), py_float(*momentum)),
                ));
                format!("{}({x})", module_ref(name))
            }
            Op::Relu => format!("torch.relu({x})"),
            Op::Sigmoid => format!("torch.sigmoid({x})"),
            Op::MaxPool { kernel, stride, padding, ceil_mode } => format!(
                "F.max_pool2d({x}, {kernel}, stride={stride}, padding={padding}, ceil_mode={})",
                py_bool(*ceil_mode)
            ),
            // netc divides a window by the part of it inside the padded
            // input, as PyTorch does with count_include_pad=True.
            Op::AvgPool { kernel, stride, padding, ceil_mode } => format!(
                "F.avg_pool2d({x}, {kernel}, stride={stride}, padding={padding}, ceil_mode={}, count_include_pad=True)",
                py_bool(*ceil_mode)
            ),
            Op::GlobalAvgPool => format!("F.adaptive_avg_pool2d({x}, 1)"),
            Op::Upsample { size, mode } => match mode {
                UpsampleMode::Nearest => {
                    format!("F.interpolate({x}, size=({}, {}), mode=\"nearest\")", size[0], size[1])
                }
                UpsampleMode::Bilinear { align_corners } => format!(
                    "F.interpolate({x}, size=({}, {}), mode=\"bilinear\", align_corners={})",
                    size[0],
                    size[1],
                    py_bool(*align_corners)
                ),
            },
            Op::Dropout { p } => format!("F.dropout({x}, p={}, training=self.training)", py_float(*p)),
            Op::Flatten => format!("torch.flatten({x}, 1)"),
            Op::Linear { out_features, bias } => {
                let fan_in: usize = in_shape.iter().product();
                modules.push((name.clone(), format!("nn.Linear({fan_in}, {out_features}, bias={})", py_bool(*bias))));
                if in_shape.len() == 1 {
                    format!("{}({x})", module_ref(name))
                } else {
                    format!("{}(torch.flatten({x}, 1))", module_ref(name))
                }
            }
            Op::Concat => format!("torch.cat([{}], 1)", ins.join(", ")),
            Op::Add | Op::Mul => {
                if ins.len() != 2 {
                    return Err(format!("node `{name}` ({}) has {} inputs, not 2", node.op.kind(), ins.len()));
                }
                let op = if node.op == Op::Add { "+" } else { "*" };
                format!("{} {op} {}", ins[0], ins[1])
            }
            Op::Affine { scale, shift } => format!("{x} * {} + {}", py_float(*scale), py_float(*shift)),
        };
        let _ = writeln!(fwd, "        {} = {expr}  # {name} ({}) {:?}", var(id), node.op.kind(), node.shape);
    }
    // Parents first: fewer dots first, then graph order.
    modules.sort_by_key(|(n, _)| n.matches('.').count());
    for (name, ctor) in &modules {
        let _ = writeln!(init, "        _put(self, {}, {ctor})", py_str(name));
    }
    if modules.is_empty() {
        init.push_str("        pass\n");
    }
    let probes: Vec<String> = graph.probes.iter().map(|p| format!("{}: {}", py_str(&p.name), var(p.node))).collect();
    let tensor_list: Vec<String> =
        tensors.iter().map(|(n, s)| format!("    ({}, {}),", py_str(n), py_tuple(s))).collect();
    let [c, h, w] = graph.image_shape()?;
    let classes = graph.nodes[graph.output].shape.iter().product::<usize>();
    let o = &train.optimizer;
    let (milestones, gamma) = match &train.schedule {
        Schedule::Step { milestones, gamma } => (format!("{milestones:?}"), py_float(*gamma)),
        _ => ("[]".to_string(), "0.1".to_string()),
    };
    let schedule = match &train.schedule {
        Schedule::Constant => "constant",
        Schedule::Cosine => "cosine",
        Schedule::Step { .. } => "step",
    };
    let crop = train.augment.iter().find_map(|a| if let Augment::Crop { pad } = a { Some(*pad) } else { None });
    let hflip = train.augment.contains(&Augment::HFlip);
    let optimizer = match o.kind {
        OptimizerKind::Sgd => "sgd",
        OptimizerKind::Adamw => "adamw",
    };
    let args_json = serde_json::to_string(&graph.args).map_err(|e| e.to_string())?;
    let replacements = [
        ("@NET@", graph.name.clone()),
        ("@NET_ARGS@", args_json),
        ("@VERSION@", env!("CARGO_PKG_VERSION").to_string()),
        ("@CLASS@", class.clone()),
        ("@INIT@", init),
        ("@FORWARD@", fwd),
        ("@LOGITS@", var(graph.output)),
        ("@PROBES@", probes.join(", ")),
        ("@TENSORS@", tensor_list.join("\n")),
        ("@C@", c.to_string()),
        ("@H@", h.to_string()),
        ("@W@", w.to_string()),
        ("@CLASSES@", classes.to_string()),
        ("@EPOCHS@", train.epochs.to_string()),
        ("@BATCH@", train.batch_size.to_string()),
        ("@OPTIMIZER@", optimizer.to_string()),
        ("@LR@", py_float(o.lr)),
        ("@MOMENTUM@", py_float(o.momentum)),
        ("@NESTEROV@", py_bool(o.nesterov).to_string()),
        ("@WD@", py_float(o.weight_decay)),
        ("@BETAS@", format!("({}, {})", py_float(o.betas[0]), py_float(o.betas[1]))),
        ("@EPS@", py_float(o.eps)),
        ("@SCHEDULE@", schedule.to_string()),
        ("@MILESTONES@", milestones),
        ("@GAMMA@", gamma),
        ("@WARMUP@", train.warmup_epochs.to_string()),
        ("@SMOOTHING@", py_float(train.label_smoothing)),
        ("@CLIP@", train.grad_clip.map(py_float).unwrap_or_else(|| "None".to_string())),
        ("@CROP@", crop.map(|p| p.to_string()).unwrap_or_else(|| "None".to_string())),
        ("@HFLIP@", py_bool(hflip).to_string()),
        ("@SEED@", train.seed.to_string()),
    ];
    let mut text = TEMPLATE.to_string();
    for (k, v) in replacements {
        text = text.replace(k, &v);
    }
    Ok(text)
}

const TEMPLATE: &str = include_str!("torch_template.py");
