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
    /// Leave out images of a folder or archive that cannot be read or
    /// decoded (or have the wrong size), and say how many, instead of
    /// stopping at the first (`--skip-bad-images`).
    pub skip_bad_images: bool,
}

impl Default for Data {
    fn default() -> Self {
        Data { dataset: DataSource::Synthetic, train_images: None, test_images: None, skip_bad_images: false }
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

/// A recipe value out of its range, or two that do not fit together.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The TOML table the key is in: `train`, `data`, `probe`,
    /// `profile.quick`.
    pub table: String,
    /// The key, as written in that table (`lr`, `grad_clip`, ...).
    pub key: &'static str,
    pub message: String,
}

impl Recipe {
    /// Every value out of range and every pair that does not fit, with the
    /// table and key to point at. The same rules hold for what the command
    /// line sets (`train::resolve`), which names the option instead.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let t = &self.train;
        let mut say = |table: &str, key: &'static str, message: String| {
            out.push(Problem { table: table.to_string(), key, message })
        };
        if t.epochs == 0 {
            say("train", "epochs", "`epochs` must be at least 1".into());
        }
        if t.batch_size == 0 {
            say("train", "batch_size", "`batch_size` must be at least 1".into());
        }
        for (key, message) in optimizer_problems(&t.optimizer) {
            say("train", key, message);
        }
        if let Some(m) = warmup_problem(t.warmup_epochs, t.epochs) {
            say("train", "warmup_epochs", m);
        }
        if !(0.0..1.0).contains(&t.label_smoothing) {
            say(
                "train",
                "label_smoothing",
                format!("`label_smoothing` must be at least 0 and below 1; it is {}", t.label_smoothing),
            );
        }
        if let Some(clip) = t.grad_clip
            && !(clip > 0.0 && clip.is_finite())
        {
            say("train", "grad_clip", format!("`grad_clip` (the largest gradient norm) must be above 0; it is {clip}"));
        }
        if let Schedule::Step { milestones, gamma } = &t.schedule {
            if !(*gamma > 0.0 && gamma.is_finite()) {
                say("train", "gamma", format!("the step schedule's `gamma` must be above 0; it is {gamma}"));
            }
            if milestones.windows(2).any(|w| w[0] >= w[1]) || milestones.first() == Some(&0) {
                say(
                    "train",
                    "milestones",
                    format!("`milestones` must be epochs from 1 up, in increasing order; they are {milestones:?}"),
                );
            }
        }
        for (key, n) in [("train_images", self.data.train_images), ("test_images", self.data.test_images)] {
            if n == Some(0) {
                say("data", key, format!("`{key}` must be at least 1 (leave it out to use every image)"));
            }
        }
        if self.probe.count == 0 {
            say("probe", "count", "`count` (images to draw) must be at least 1".into());
        }
        for (name, p) in &self.profile {
            let table = format!("profile.{name}");
            if p.epochs == Some(0) {
                say(&table, "epochs", "`epochs` must be at least 1".into());
            }
            if p.batch_size == Some(0) {
                say(&table, "batch_size", "`batch_size` must be at least 1".into());
            }
            if let Some(o) = &p.optimizer {
                for (key, message) in optimizer_problems(o) {
                    say(&table, key, message);
                }
            }
            if let Some(lr) = p.lr
                && !(lr > 0.0 && lr.is_finite())
            {
                say(&table, "lr", format!("the learning rate `lr` must be above 0; it is {lr}"));
            }
            if let Some(epochs) = p.epochs
                && epochs > 0
                && let Some(m) = warmup_problem(t.warmup_epochs, epochs)
            {
                say(&table, "epochs", m);
            }
            for (key, n) in [("train_images", p.train_images), ("test_images", p.test_images)] {
                if n == Some(0) {
                    say(&table, key, format!("`{key}` must be at least 1 (leave it out to use every image)"));
                }
            }
        }
        out
    }
}

/// Warm-up must end before the last epoch, so that the schedule runs.
pub fn warmup_problem(warmup: u32, epochs: u32) -> Option<String> {
    (warmup > 0 && warmup >= epochs).then(|| {
        format!("`warmup_epochs = {warmup}` must be fewer than the epochs ({epochs}), or the schedule never starts")
    })
}

fn optimizer_problems(o: &Optimizer) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !(o.lr > 0.0 && o.lr.is_finite()) {
        out.push(("lr", format!("the learning rate `lr` must be above 0; it is {}", o.lr)));
    }
    if !(0.0..1.0).contains(&o.momentum) {
        out.push(("momentum", format!("`momentum` must be at least 0 and below 1; it is {}", o.momentum)));
    }
    if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
        out.push(("weight_decay", format!("`weight_decay` must be 0 or more; it is {}", o.weight_decay)));
    }
    if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
        out.push(("betas", format!("AdamW's `betas` must be at least 0 and below 1; they are {:?}", o.betas)));
    }
    if !(o.eps > 0.0 && o.eps.is_finite()) {
        out.push(("eps", format!("AdamW's `eps` must be above 0; it is {}", o.eps)));
    }
    out
}
