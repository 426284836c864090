//! `netc import`: a PyTorch `state_dict` saved as safetensors becomes a
//! netc checkpoint for a compiled net. A room on top of the Graph IR and
//! [`crate::checkpoint`]: it reads a [`Graph`] (for the names and shapes
//! of the model's tensors) and writes what `checkpoint::load_model` reads.
//!
//! Which PyTorch tensor feeds which netc tensor is an explicit mapping, a
//! small TOML file (format in [`Mapping`]). It is checked in full before
//! anything is written: every netc tensor gets exactly one source, every
//! source tensor is used once or ignored by name, and every shape is equal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::checkpoint::{self, Progress};
use crate::data::Normalize;
use crate::graph::Graph;
use crate::runtime::Model;

/// ImageNet's normalisation, torchvision's default for 224x224 inputs.
pub const IMAGENET: Normalize = Normalize { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/// How many problems of one kind an error lists before "... and N more".
pub const SHOWN: usize = 5;

/// A mapping file:
///
/// ```toml
/// # PyTorch tensors with no netc counterpart: exact names, or `*.suffix`.
/// ignore = ["*.num_batches_tracked"]
/// # netc tensors whose (2-D) source is transposed first; netc's `linear`
/// # weight is [out, in] like PyTorch's, so this is rarely needed.
/// transpose = []
/// # Optional: the normalisation the weights were trained with.
/// normalize = { mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225] }
///
/// # Rules from netc names to PyTorch names, tried in order; the first that
/// # matches a netc name gives its source. A `netc` ending in "." rewrites
/// # that prefix; otherwise it is an exact rename. A name no rule matches
/// # keeps its own name.
/// [[rule]]
/// netc = "a3.b1."
/// torch = "inception3a.branch1."
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub transpose: Vec<String>,
    pub normalize: Option<NormalizeSpec>,
    #[serde(default)]
    pub rule: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeSpec {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub netc: String,
    pub torch: String,
}

impl Mapping {
    pub fn parse(text: &str) -> Result<Mapping, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The PyTorch name the netc tensor `name` comes from.
    pub fn source(&self, name: &str) -> String {
        for r in &self.rule {
            if r.netc.ends_with('.') {
                if let Some(rest) = name.strip_prefix(r.netc.as_str()) {
                    return format!("{}{rest}", r.torch);
                }
            } else if r.netc == name {
                return r.torch.clone();
            }
        }
        name.to_string()
    }

    /// Whether the PyTorch tensor `name` is ignored.
    pub fn ignored(&self, name: &str) -> bool {
        self.ignore.iter().any(|p| match p.strip_prefix('*') {
            Some(suffix) => name.ends_with(suffix),
            None => p == name,
        })
    }
}

/// The first [`SHOWN`] items, one per line, and how many more there are.
fn listed(title: &str, items: &[String]) -> String {
    let mut s = format!("{title} ({}):\n", items.len());
    for i in items.iter().take(SHOWN) {
        s += &format!("  {i}\n");
    }
    if items.len() > SHOWN {
        s += &format!("  ... and {} more\n", items.len() - SHOWN);
    }
    s
}

/// The netc model's tensors taken from `torch` by `mapping`, under their
/// IR names, or an error that lists every kind of problem found.
pub fn map_tensors(
    graph: &Graph,
    torch: &BTreeMap<String, Tensor>,
    mapping: &Mapping,
) -> Result<BTreeMap<String, Tensor>, String> {
    let model = Model::new(graph, &Device::Cpu, 0).map_err(|e| e.to_string())?;
    let expected = model.state();
    let mut missing = Vec::new();
    let mut shapes = Vec::new();
    let mut twice = Vec::new();
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (name, t) in &expected {
        let src = mapping.source(name);
        if let Some(first) = used.insert(src.clone(), name.clone()) {
            twice.push(format!("`{src}` feeds both `{first}` and `{name}`"));
        }
        let Some(found) = torch.get(&src) else {
            missing.push(format!("`{name}` {:?}: its source `{src}` is not in the state_dict", t.dims()));
            continue;
        };
        let found = if mapping.transpose.iter().any(|n| n == name) {
            if found.rank() != 2 {
                shapes.push(format!("`{name}`: `transpose` needs a 2-D source, `{src}` is {:?}", found.dims()));
                continue;
            }
            found.t().and_then(|t| t.contiguous()).map_err(|e| e.to_string())?
        } else {
            found.clone()
        };
        if found.dims() != t.dims() {
            shapes.push(format!("`{name}` is {:?}, its source `{src}` is {:?}", t.dims(), found.dims()));
            continue;
        }
        out.insert(name.clone(), found.to_dtype(DType::F32).map_err(|e| e.to_string())?);
    }
    let leftover: Vec<String> = torch
        .iter()
        .filter(|(k, _)| !used.contains_key(*k) && !mapping.ignored(k))
        .map(|(k, t)| format!("`{k}` {:?}", t.dims()))
        .collect();
    let unknown: Vec<String> = mapping
        .transpose
        .iter()
        .filter(|n| !expected.contains_key(*n))
        .map(|n| format!("`{n}` (under `transpose`) is not a tensor of net `{}`", graph.name))
        .collect();
    let mut report = String::new();
    for (title, items) in [
        ("netc tensors without a source", &missing),
        ("shapes that differ", &shapes),
        ("PyTorch tensors used twice", &twice),
        ("PyTorch tensors left over, neither mapped nor under `ignore`", &leftover),
        ("unknown names in the mapping", &unknown),
    ] {
        if !items.is_empty() {
            report += &listed(title, items);
        }
    }
    if report.is_empty() { Ok(out) } else { Err(report) }
}

/// What `netc import` needs.
pub struct ImportRequest<'a> {
    pub graph: &'a Graph,
    pub state_dict: &'a Path,
    pub mapping: &'a Path,
    /// `--mean` and `--std`, which win over the mapping's.
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub out: &'a Path,
}

/// The normalisation to record: the command line's, else the mapping's,
/// else ImageNet's for a 3x224x224 input.
fn normalization(r: &ImportRequest, mapping: &Mapping) -> Result<Normalize, String> {
    let input = &r.graph.nodes[0].shape;
    let from_mapping = match &mapping.normalize {
        Some(n) => Some(Normalize { mean: n.mean, std: n.std }),
        None if input.as_slice() == [3, 224, 224] => Some(IMAGENET),
        None => None,
    };
    match (r.mean, r.std, from_mapping) {
        (Some(mean), Some(std), _) => Ok(Normalize { mean, std }),
        (Some(mean), None, Some(n)) => Ok(Normalize { mean, std: n.std }),
        (None, Some(std), Some(n)) => Ok(Normalize { mean: n.mean, std }),
        (None, None, Some(n)) => Ok(n),
        _ => Err(format!(
            "net `{}` takes {input:?} images, not ImageNet's [3, 224, 224]: give the normalisation the weights were \
             trained with, `--mean R,G,B --std R,G,B` (or `normalize` in the mapping)",
            r.graph.name
        )),
    }
}

/// `netc import`: checks the mapping in full, then writes the checkpoint
/// atomically, and says what it wrote. On any error nothing is written.
pub fn import_command(r: &ImportRequest) -> Result<String, String> {
    let text = std::fs::read_to_string(r.mapping)
        .map_err(|e| format!("cannot read mapping `{}`: {e}", r.mapping.display()))?;
    let mapping = Mapping::parse(&text).map_err(|e| format!("mapping `{}`: {e}", r.mapping.display()))?;
    let normalize = normalization(r, &mapping)?;
    if !r.state_dict.exists() {
        return Err(format!("state_dict `{}`: no such file", r.state_dict.display()));
    }
    let torch: BTreeMap<String, Tensor> = candle_core::safetensors::load(r.state_dict, &Device::Cpu)
        .map_err(|e| {
            format!(
                "state_dict `{}` is not a readable safetensors file ({e}); save it with \
                 `safetensors.torch.save_file(model.state_dict(), ...)`",
                r.state_dict.display()
            )
        })?
        .into_iter()
        .collect();
    let model = map_tensors(r.graph, &torch, &mapping).map_err(|report| {
        format!(
            "mapping `{}` does not fit state_dict `{}` to net `{}`; nothing written:\n{}",
            r.mapping.display(),
            r.state_dict.display(),
            r.graph.name,
            report.trim_end()
        )
    })?;
    let progress = Progress { best_accuracy: -1.0, ..Default::default() };
    checkpoint::save(r.out, &model, &BTreeMap::new(), &progress, &normalize)?;
    let ignored: BTreeSet<&String> = torch.keys().filter(|k| mapping.ignored(k)).collect();
    Ok(format!(
        "imported {} tensors of `{}` ({} ignored) into {} for net `{}` (normalisation mean {:?}, std {:?})\n",
        model.len(),
        r.state_dict.display(),
        ignored.len(),
        r.out.display(),
        r.graph.name,
        normalize.mean,
        normalize.std
    ))
}
