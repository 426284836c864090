//! `netc export`: a compiled graph as an ONNX model (opset 17), in
//! inference mode. A room on top of the Graph IR: it reads a [`Graph`] and
//! the model's tensors, never spec text.
//!
//! The model takes `input`, the normalised image batch `[N, C, H, W]` with
//! a dynamic `N`, and gives `logits` and every probe (under its IR name).
//! Initializers and nodes carry the IR's names. Where ONNX runtimes
//! disagree on an attribute, the export avoids it: ceil-mode pools become
//! explicit end padding (and, for an average pool, a constant that fixes
//! the divisor of the windows that hang over the end, as PyTorch counts
//! them), and resizing takes its output size from the input's shape, so
//! the batch stays dynamic.

pub mod proto;
pub mod torch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use prost::Message;

use crate::data::Normalize;
use crate::graph::{Graph, Node, Op, UpsampleMode};
use crate::runtime::Model;
use proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, attribute_type,
};

/// The ONNX operator set the export targets.
pub const OPSET: i64 = 17;
/// The ONNX IR version that goes with opset 17.
pub const IR_VERSION: i64 = 8;
/// The name of the model's input.
pub const INPUT: &str = "input";
/// The name of the net's output.
pub const LOGITS: &str = "logits";
/// The symbolic batch dimension.
pub const BATCH: &str = "N";

/// What `netc export` needs: a compiled graph, where its weights come
/// from, and the file to write.
pub struct ExportRequest<'a> {
    pub graph: &'a Graph,
    /// A checkpoint; without one, the initial weights drawn from `seed`.
    pub weights: Option<&'a Path>,
    /// The recipe's seed, which `netc run` initialises with.
    pub seed: u64,
    pub out: &'a Path,
}

/// `netc export`: writes the ONNX file atomically and says what it wrote.
pub fn export_command(r: &ExportRequest) -> Result<String, String> {
    let (model, normalize) = match r.weights {
        Some(path) => {
            let (model, normalize) = crate::checkpoint::load_model(r.graph, path, &Device::Cpu)?;
            (model, Some(normalize))
        }
        None => (Model::new(r.graph, &Device::Cpu, r.seed).map_err(|e| e.to_string())?, None),
    };
    let bytes = to_onnx(r.graph, &model.state(), normalize.as_ref())?;
    write_atomically(r.out, &bytes)?;
    let weights = match r.weights {
        Some(p) => format!("the weights of `{}`", p.display()),
        None => format!("its initial weights (seed {})", r.seed),
    };
    Ok(format!(
        "exported net `{}` with {weights} to {} (ONNX opset {OPSET}, {} bytes; outputs: {})\n",
        r.graph.name,
        r.out.display(),
        bytes.len(),
        outputs(r.graph).join(", ")
    ))
}

/// The names of the model's outputs: `logits`, then the probes.
pub fn outputs(graph: &Graph) -> Vec<String> {
    let mut names = vec![LOGITS.to_string()];
    for p in &graph.probes {
        if !names.contains(&p.name) {
            names.push(p.name.clone());
        }
    }
    names
}

/// The ONNX model of `graph` with the tensors of `state` (parameters and
/// batch-norm running statistics under their IR names), encoded.
pub fn to_onnx(
    graph: &Graph,
    state: &BTreeMap<String, Tensor>,
    normalize: Option<&Normalize>,
) -> Result<Vec<u8>, String> {
    Ok(model_proto(graph, state, normalize)?.encode_to_vec())
}

/// The ONNX model of `graph`, as a message.
pub fn model_proto(
    graph: &Graph,
    state: &BTreeMap<String, Tensor>,
    normalize: Option<&Normalize>,
) -> Result<ModelProto, String> {
    let mut b = Builder::new(graph, state);
    for id in 1..graph.nodes.len() {
        b.node(id)?;
    }
    let onnx_graph = b.finish()?;
    let mut metadata = vec![
        entry("netc_version", env!("CARGO_PKG_VERSION")),
        entry("net", &graph.name),
        entry("net_args", &serde_json::to_string(&graph.args).map_err(|e| e.to_string())?),
        entry("input_layout", "NCHW, normalised: (pixel / 255 - mean) / std per channel"),
    ];
    if let Some(n) = normalize {
        metadata.push(entry("normalize_mean", &format!("{:?}", n.mean)));
        metadata.push(entry("normalize_std", &format!("{:?}", n.std)));
    }
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "netc".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        domain: String::new(),
        model_version: 1,
        doc_string: format!("net `{}`, exported by netc", graph.name),
        graph: Some(onnx_graph),
        metadata_props: metadata,
    })
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: key.to_string(), value: value.to_string() }
}

struct Builder<'a> {
    graph: &'a Graph,
    state: &'a BTreeMap<String, Tensor>,
    /// The ONNX value that holds each IR node's output.
    values: Vec<String>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl<'a> Builder<'a> {
    fn new(graph: &'a Graph, state: &'a BTreeMap<String, Tensor>) -> Self {
        let values = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(id, n)| match id {
                0 => INPUT.to_string(),
                id if id == graph.output => LOGITS.to_string(),
                // Another node called `input` or `logits` keeps its name
                // for the ONNX node, and its value gets a suffix.
                _ if n.name == INPUT || n.name == LOGITS => format!("{}.value", n.name),
                _ => n.name.clone(),
            })
            .collect();
        Builder { graph, state, values, nodes: Vec::new(), initializers: Vec::new() }
    }

    fn push(
        &mut self,
        op_type: &str,
        name: String,
        inputs: Vec<String>,
        output: String,
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output],
            name,
            op_type: op_type.to_string(),
            attribute,
            doc_string: String::new(),
            domain: String::new(),
        });
    }

    /// The model tensor `name`, as an initializer of the shape the graph
    /// gives it; returns its name.
    fn param(&mut self, node: &Node, name: String, shape: &[usize]) -> Result<String, String> {
        let t = self
            .state
            .get(&name)
            .ok_or_else(|| format!("node `{}`: the weights have no tensor `{name}`", node.name))?;
        if t.dims() != shape {
            return Err(format!(
                "node `{}`: tensor `{name}` is {:?} in the weights but {shape:?} in the graph",
                node.name,
                t.dims()
            ));
        }
        let values = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("node `{}`: tensor `{name}` cannot be read: {e}", node.name))?;
        self.constant(name.clone(), shape, &values);
        Ok(name)
    }

    fn constant(&mut self, name: String, shape: &[usize], values: &[f32]) -> String {
        self.initializers.push(TensorProto {
            dims: shape.iter().map(|d| *d as i64).collect(),
            data_type: proto::FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            name: name.clone(),
            ..Default::default()
        });
        name
    }

    fn constant_i64(&mut self, name: String, values: &[i64]) -> String {
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: proto::INT64,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            name: name.clone(),
            ..Default::default()
        });
        name
    }

    /// The `[H, W]` of node `id`'s first input, or an error naming the node.
    fn input_hw(&self, id: usize) -> Result<[usize; 2], String> {
        let node = &self.graph.nodes[id];
        let input = node.inputs.first().map(|i| &self.graph.nodes[*i].shape);
        match input.map(Vec::as_slice) {
            Some(&[_, h, w]) => Ok([h, w]),
            other => Err(format!(
                "node `{}` ({}) needs a feature map [C, H, W] as its input, not {:?}; it has no ONNX form",
                node.name,
                node.op.kind(),
                other.unwrap_or(&[])
            )),
        }
    }

    /// The output `[H, W]` of node `id`.
    fn output_hw(&self, id: usize) -> Result<[usize; 2], String> {
        let node = &self.graph.nodes[id];
        match node.shape.as_slice() {
            &[_, h, w] => Ok([h, w]),
            other => Err(format!(
                "node `{}` ({}) makes {other:?}, not a feature map [C, H, W]; it has no ONNX form",
                node.name,
                node.op.kind()
            )),
        }
    }

    /// Pads `[top, left, bottom, right]` that make a floor-mode window of
    /// `kernel` and `stride` give the node's output size: the symmetric
    /// padding, and at the end whatever a ceil-mode window hangs over.
    fn window_pads(&self, id: usize, kernel: usize, stride: usize, padding: usize) -> Result<Vec<i64>, String> {
        let (input, output) = (self.input_hw(id)?, self.output_hw(id)?);
        let extra = |axis: usize| {
            let needed = output[axis].saturating_sub(1) * stride + kernel;
            needed.saturating_sub(input[axis] + 2 * padding) as i64
        };
        let p = padding as i64;
        Ok(vec![p, p, p + extra(0), p + extra(1)])
    }

    fn node(&mut self, id: usize) -> Result<(), String> {
        let node = &self.graph.nodes[id];
        let name = node.name.clone();
        let out = self.values[id].clone();
        let inputs: Vec<String> = node.inputs.iter().map(|i| self.values[*i].clone()).collect();
        let x = inputs.first().cloned().ok_or_else(|| format!("node `{name}` ({}) has no input", node.op.kind()))?;
        match &node.op {
            Op::Input => {
                return Err(format!("node `{name}` is a second input; an exported net has one input, node 0"));
            }
            Op::Conv { out_channels, kernel, stride, padding, dilation, groups, bias } => {
                let cin = self.graph.nodes[node.inputs[0]].shape.first().copied().unwrap_or(0);
                let groups_ok = *groups > 0 && cin % groups == 0;
                if !groups_ok {
                    return Err(format!("node `{name}` (conv): {cin} input channels in {groups} groups"));
                }
                let weight =
                    self.param(node, format!("{name}.weight"), &[*out_channels, cin / groups, *kernel, *kernel])?;
                let mut ins = vec![x, weight];
                if *bias {
                    ins.push(self.param(node, format!("{name}.bias"), &[*out_channels])?);
                }
                let (k, s, p, d) = (*kernel as i64, *stride as i64, *padding as i64, *dilation as i64);
                let attrs = vec![
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[s, s]),
                    ints("pads", &[p, p, p, p]),
                    ints("dilations", &[d, d]),
                    int("group", *groups as i64),
                ];
                self.push("Conv", name, ins, out, attrs);
            }
            Op::BatchNorm { eps, .. } => {
                let c = node.shape.first().copied().unwrap_or(0);
                let mut ins = vec![x];
                for role in ["weight", "bias", "running_mean", "running_var"] {
                    ins.push(self.param(node, format!("{name}.{role}"), &[c])?);
                }
                self.push("BatchNormalization", name, ins, out, vec![float("epsilon", *eps as f32)]);
            }
            Op::Relu => self.push("Relu", name, vec![x], out, vec![]),
            Op::Sigmoid => self.push("Sigmoid", name, vec![x], out, vec![]),
            Op::MaxPool { kernel, stride, padding, .. } => {
                // Padding never wins a maximum, so ceil mode is end padding.
                let pads = self.window_pads(id, *kernel, *stride, *padding)?;
                let (k, s) = (*kernel as i64, *stride as i64);
                let attrs = vec![ints("kernel_shape", &[k, k]), ints("strides", &[s, s]), ints("pads", &pads)];
                self.push("MaxPool", name, vec![x], out, attrs);
            }
            Op::AvgPool { kernel, stride, padding, .. } => {
                let pads = self.window_pads(id, *kernel, *stride, *padding)?;
                let (k, s) = (*kernel as i64, *stride as i64);
                let attrs = vec![
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[s, s]),
                    ints("pads", &pads),
                    int("count_include_pad", 1),
                ];
                // With the end padding every window divides by k*k; PyTorch
                // (and netc) divide a window that hangs over the padded
                // input by the part of it inside.
                let fix = self.divisor_fix(id, *kernel, *stride, *padding)?;
                match fix {
                    None => self.push("AveragePool", name, vec![x], out, attrs),
                    Some(values) => {
                        let [h, w] = self.output_hw(id)?;
                        let pooled = format!("{name}.pooled");
                        self.push("AveragePool", name.clone(), vec![x], pooled.clone(), attrs);
                        let fix = self.constant(format!("{name}.divisor_fix"), &[1, 1, h, w], &values);
                        self.push("Mul", format!("{name}.fix"), vec![pooled, fix], out, vec![]);
                    }
                }
            }
            Op::GlobalAvgPool => self.push("GlobalAveragePool", name, vec![x], out, vec![]),
            Op::Upsample { size, mode } => {
                self.input_hw(id)?;
                // Resize needs all four output sizes: N and C from the
                // input's shape (N is dynamic), H and W from the graph.
                let shape = format!("{name}.shape");
                self.push("Shape", format!("{name}.shape"), vec![x.clone()], shape.clone(), vec![]);
                let starts = self.constant_i64(format!("{name}.nc_start"), &[0]);
                let ends = self.constant_i64(format!("{name}.nc_end"), &[2]);
                let nc = format!("{name}.nc");
                self.push("Slice", nc.clone(), vec![shape, starts, ends], nc.clone(), vec![]);
                let hw = self.constant_i64(format!("{name}.hw"), &[size[0] as i64, size[1] as i64]);
                let sizes = format!("{name}.sizes");
                self.push("Concat", sizes.clone(), vec![nc, hw], sizes.clone(), vec![int("axis", 0)]);
                let attrs = match mode {
                    // PyTorch's `nearest`: src = floor(dst * in / out).
                    UpsampleMode::Nearest => vec![
                        string("mode", "nearest"),
                        string("coordinate_transformation_mode", "asymmetric"),
                        string("nearest_mode", "floor"),
                    ],
                    // PyTorch's `bilinear` without align_corners is
                    // `half_pixel` with the source clamped at 0, which ONNX's
                    // linear mode does at the edges; `pytorch_half_pixel`
                    // differs from PyTorch at an output size of 1
                    // (docs/decisions.md, 30).
                    UpsampleMode::Bilinear { align_corners } => vec![
                        string("mode", "linear"),
                        string(
                            "coordinate_transformation_mode",
                            if *align_corners { "align_corners" } else { "half_pixel" },
                        ),
                    ],
                };
                let ins = vec![x, String::new(), String::new(), sizes];
                self.push("Resize", name, ins, out, attrs);
            }
            Op::Dropout { .. } => self.push("Identity", name, vec![x], out, vec![]),
            Op::Flatten => self.push("Flatten", name, vec![x], out, vec![int("axis", 1)]),
            Op::Linear { out_features, bias } => {
                let fan_in: usize = self.graph.nodes[node.inputs[0]].shape.iter().product();
                let flat = if self.graph.nodes[node.inputs[0]].shape.len() == 1 {
                    x
                } else {
                    let flat = format!("{name}.flat");
                    self.push("Flatten", format!("{name}.flatten"), vec![x], flat.clone(), vec![int("axis", 1)]);
                    flat
                };
                let mut ins = vec![flat, self.param(node, format!("{name}.weight"), &[*out_features, fan_in])?];
                if *bias {
                    ins.push(self.param(node, format!("{name}.bias"), &[*out_features])?);
                }
                self.push("Gemm", name, ins, out, vec![int("transB", 1)]);
            }
            Op::Concat => self.push("Concat", name, inputs, out, vec![int("axis", 1)]),
            Op::Add | Op::Mul => {
                if inputs.len() != 2 {
                    return Err(format!("node `{name}` ({}) has {} inputs, not 2", node.op.kind(), inputs.len()));
                }
                let op = if node.op == Op::Add { "Add" } else { "Mul" };
                self.push(op, name, inputs, out, vec![]);
            }
            Op::Affine { scale, shift } => {
                let mut value = x;
                if *scale != 1.0 {
                    let k = self.constant(format!("{name}.scale"), &[], &[*scale as f32]);
                    let scaled = if *shift != 0.0 { format!("{name}.scaled") } else { out.clone() };
                    self.push("Mul", format!("{name}.mul"), vec![value, k], scaled.clone(), vec![]);
                    value = scaled;
                }
                if *shift != 0.0 {
                    let k = self.constant(format!("{name}.shift"), &[], &[*shift as f32]);
                    self.push("Add", format!("{name}.add"), vec![value, k], out.clone(), vec![]);
                } else if *scale == 1.0 {
                    self.push("Identity", name, vec![value], out, vec![]);
                }
            }
        }
        Ok(())
    }

    /// For an average pool whose windows hang over the padded input (ceil
    /// mode), the factor `k*k / counted` per output position, `[H, W]`.
    fn divisor_fix(&self, id: usize, kernel: usize, stride: usize, padding: usize) -> Result<Option<Vec<f32>>, String> {
        let (input, output) = (self.input_hw(id)?, self.output_hw(id)?);
        let counted = |axis: usize| -> Vec<usize> {
            (0..output[axis])
                .map(|o| {
                    let start = o * stride;
                    let end = (start + kernel).min(input[axis] + 2 * padding);
                    end.saturating_sub(start).max(1)
                })
                .collect()
        };
        let (rows, cols) = (counted(0), counted(1));
        if rows.iter().chain(&cols).all(|c| *c == kernel) {
            return Ok(None);
        }
        let full = (kernel * kernel) as f32;
        let values = rows.iter().flat_map(|r| cols.iter().map(move |c| full / (r * c) as f32)).collect();
        Ok(Some(values))
    }

    fn finish(mut self) -> Result<GraphProto, String> {
        let graph = self.graph;
        let mut outputs = vec![value_info(LOGITS, &graph.nodes[graph.output].shape)];
        for p in &graph.probes {
            if outputs.iter().any(|o| o.name == p.name) {
                if self.values[p.node] == p.name {
                    continue;
                }
                return Err(format!("probe `{}` has the name of another output", p.name));
            }
            if self.values[p.node] != p.name {
                let source = self.values[p.node].clone();
                self.push("Identity", format!("probe.{}", p.name), vec![source], p.name.clone(), vec![]);
            }
            outputs.push(value_info(&p.name, &graph.nodes[p.node].shape));
        }
        // Every value is made once: a probe or helper whose name another
        // value already has would make the model ambiguous.
        let mut made = BTreeSet::from([INPUT.to_string()]);
        let produced = self.nodes.iter().flat_map(|n| &n.output).chain(self.initializers.iter().map(|t| &t.name));
        for v in produced {
            if !made.insert(v.clone()) {
                return Err(format!(
                    "the name `{v}` would name two values in the ONNX graph; rename the node or probe"
                ));
            }
        }
        Ok(GraphProto {
            node: self.nodes,
            name: graph.name.clone(),
            initializer: self.initializers,
            doc_string: String::new(),
            input: vec![value_info(INPUT, graph.input_shape())],
            output: outputs,
            value_info: Vec::new(),
        })
    }
}

/// A float tensor `[N, ...shape]` with the batch dimension named `N`.
fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let batch = Dimension { value: Some(DimensionValue::DimParam(BATCH.to_string())) };
    let dims = shape.iter().map(|d| Dimension { value: Some(DimensionValue::DimValue(*d as i64)) });
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: proto::FLOAT,
                shape: Some(TensorShapeProto { dim: std::iter::once(batch).chain(dims).collect() }),
            }),
        }),
        doc_string: String::new(),
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.to_string(), i, r#type: attribute_type::INT, ..Default::default() }
}

fn ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.to_string(), ints: ints.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.to_string(), f, r#type: attribute_type::FLOAT, ..Default::default() }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        s: s.as_bytes().to_vec(),
        r#type: attribute_type::STRING,
        ..Default::default()
    }
}

/// `netc export --format torch`: writes the PyTorch file atomically and
/// says what it wrote. It holds no weights: its `load_netc_checkpoint`
/// reads a checkpoint.
pub fn torch_command(graph: &Graph, train: &crate::recipe::Train, out: &Path) -> Result<String, String> {
    let text = torch::to_python(graph, train)?;
    write_atomically(out, text.as_bytes())?;
    Ok(format!(
        "exported net `{}` to {} (PyTorch module `{}`, {} bytes; train: `python {} --data random --out DIR`)\n",
        graph.name,
        out.display(),
        torch::class_name(&graph.name),
        text.len(),
        out.display()
    ))
}

/// Writes `bytes` to `path` through a temporary file beside it, so that a
/// failed export leaves no torn file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    let tmp = path.with_file_name(name);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write `{}`: {e}", path.display())
    })
}
