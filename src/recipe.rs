//! The run recipe: the TOML front matter of a spec, typed.
//!
//! Every table rejects unknown keys, so a typo is an error at its line rather
//! than a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    pub train: Train,
    pub data: Data,
    pub probe: ProbeSettings,
    /// Named variants of the recipe: `netc run spec.net --profile quick`.
    pub profile: BTreeMap<String, Profile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Train {
    pub epochs: u32,
    pub batch_size: u32,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Epochs of linear learning-rate warm-up before the schedule starts.
    pub warmup_epochs: u32,
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    pub augment: Vec<Augment>,
    pub seed: u64,
}

impl Default for Train {
    fn default() -> Self {
        Train {
            epochs: 200,
            batch_size: 128,
            optimizer: Optimizer::default(),
            schedule: Schedule::Cosine,
            warmup_epochs: 0,
            label_smoothing: 0.0,
            grad_clip: None,
            augment: Vec::new(),
            seed: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub lr: f64,
    /// SGD only.
    pub momentum: f64,
    /// SGD only.
    pub nesterov: bool,
    pub weight_decay: f64,
    /// AdamW only.
    pub betas: [f64; 2],
    /// AdamW only.
    pub eps: f64,
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer {
            kind: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            betas: [0.9, 0.999],
            eps: 1e-8,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adamw,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Cosine,
    /// Multiply the learning rate by `gamma` at each epoch in `milestones`.
    Step {
        milestones: Vec<u32>,
        gamma: f64,
    },
}

/// One augmentation, written as a string: `"crop:4"` (random crop after
/// padding by 4) or `"hflip"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Augment {
    Crop { pad: u32 },
    HFlip,
}

impl TryFrom<String> for Augment {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "hflip" => Ok(Augment::HFlip),
            Some(("crop", pad)) => pad
                .parse()
                .map(|pad| Augment::Crop { pad })
                .map_err(|_| format!("`crop:{pad}` needs a whole number of pixels")),
            _ => Err(format!("unknown augmentation `{s}`; expected `crop:N` or `hflip`")),
        }
    }
}

impl From<Augment> for String {
    fn from(a: Augment) -> String {
        match a {
            Augment::Crop { pad } => format!("crop:{pad}"),
            Augment::HFlip => "hflip".to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Data {
    pub dataset: DataSource,
    /// Use only the first N training images (all when absent).
    pub train_images: Option<usize>,
    /// Use only the first N test images (all when absent).
    pub test_images: Option<usize>,
}

impl Default for Data {
    fn default() -> Self {
        Data { dataset: DataSource::Synthetic, train_images: None, test_images: None }
    }
}

/// Where images come from: `"synthetic"`, `"cifar10:DIR"` or `"folder:PATH"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSource {
    Synthetic,
    Cifar10(String),
    Folder(String),
}

impl TryFrom<String> for DataSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "synthetic" => Ok(DataSource::Synthetic),
            Some(("cifar10", dir)) if !dir.is_empty() => Ok(DataSource::Cifar10(dir.to_string())),
            Some(("folder", path)) if !path.is_empty() => Ok(DataSource::Folder(path.to_string())),
            _ => Err(format!("unknown data source `{s}`; expected `synthetic`, `cifar10:DIR` or `folder:PATH`")),
        }
    }
}

impl From<DataSource> for String {
    fn from(d: DataSource) -> String {
        match d {
            DataSource::Synthetic => "synthetic".to_string(),
            DataSource::Cifar10(dir) => format!("cifar10:{dir}"),
            DataSource::Folder(path) => format!("folder:{path}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSettings {
    /// How a feature map becomes a heatmap.
    pub aggregate: Aggregate,
    /// `image`: each heatmap scaled on its own; `shared`: one scale for all.
    pub scale: HeatmapScale,
    /// How many images to draw.
    pub count: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings { aggregate: Aggregate::Mean, scale: HeatmapScale::Image, count: 8 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Mean,
    Max,
    L2,
    Gradcam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeatmapScale {
    Image,
    Shared,
}

/// Overrides applied on top of the recipe by `--profile NAME`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    pub epochs: Option<u32>,
    pub batch_size: Option<u32>,
    /// Replaces the whole optimizer table.
    pub optimizer: Option<Optimizer>,
    pub lr: Option<f64>,
    /// Net parameters, as `--set` would give them.
    pub set: BTreeMap<String, f64>,
    pub data: Option<DataSource>,
    pub train_images: Option<usize>,
    pub test_images: Option<usize>,
}

/// Parses front matter. On error: the message and the byte range in `text`.
pub fn parse(text: &str) -> Result<Recipe, (String, Option<std::ops::Range<usize>>)> {
    toml::from_str(text).map_err(|e| (e.message().to_string(), e.span()))
}
