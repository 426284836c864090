//! Evaluation: loss, accuracy, per-class accuracy and the confusion matrix.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

use super::engine::{Engine, Trainer, trainer};
use super::optim::softmax_cross_entropy;
use crate::checkpoint::load_model;
use crate::data::{self, Dataset, Normalize, Split};
use crate::memory;

#[derive(Clone, Debug)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub classes: Vec<String>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>().max(1) as f64)
            .collect()
    }

    /// Accuracy, per-class accuracy and the confusion matrix, for a terminal.
    pub fn table(&self) -> String {
        let n: u64 = self.confusion.iter().flatten().sum();
        let mut out = format!("accuracy {:.2}% on {n} images, loss {:.4}\n\n", self.accuracy * 100.0, self.loss);
        // Each row starts with "<index> <class>": the column is as wide as the widest.
        let names: Vec<String> = self.classes.iter().enumerate().map(|(i, c)| format!("{i} {c}")).collect();
        let width = names.iter().map(|c| c.chars().count()).max().unwrap_or(5).max(7);
        let _ = write!(out, "{:>width$}  {:>8}", "class", "accuracy");
        for i in 0..self.classes.len() {
            let _ = write!(out, " {i:>5}");
        }
        out.push('\n');
        for (i, (name, acc)) in names.iter().zip(self.per_class_accuracy()).enumerate() {
            let _ = write!(out, "{name:>width$}  {:>7.2}%", acc * 100.0);
            for count in &self.confusion[i] {
                let _ = write!(out, " {count:>5}");
            }
            out.push('\n');
        }
        out + "(rows: true class, columns: predicted class)\n"
    }

    /// The confusion matrix with per-class accuracy, as CSV.
    pub fn csv(&self) -> String {
        let mut out = String::from("class,accuracy");
        for c in &self.classes {
            let _ = write!(out, ",pred_{c}");
        }
        out.push('\n');
        for ((class, acc), row) in self.classes.iter().zip(self.per_class_accuracy()).zip(&self.confusion) {
            let _ = write!(out, "{class},{acc:.6}");
            for v in row {
                let _ = write!(out, ",{v}");
            }
            out.push('\n');
        }
        out
    }
}

/// Evaluates `net` on all of `data`, in evaluation mode.
pub fn evaluate(
    net: &mut dyn Trainer,
    data: Arc<Dataset>,
    batch_size: usize,
    norm: Normalize,
) -> Result<Evaluation, String> {
    let k = data.classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let (mut loss_sum, mut seen) = (0.0, 0usize);
    for batch in data::batches(data.clone(), batch_size, false, &[], norm, 0, 0, Device::Cpu) {
        let batch = batch.map_err(|e| e.to_string())?;
        let labels: Vec<u32> = batch.labels.to_vec1().map_err(|e| e.to_string())?;
        let logits = net.logits(&batch.images)?;
        let n = labels.len();
        loss_sum += softmax_cross_entropy(&logits, &labels, 0.0).value * n as f64;
        seen += n;
        for (row, t) in logits.chunks_exact(k).zip(labels) {
            let predicted = row.iter().enumerate().fold(0, |b, (j, v)| if *v > row[b] { j } else { b });
            confusion[t as usize][predicted] += 1;
        }
    }
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    Ok(Evaluation {
        loss: loss_sum / seen.max(1) as f64,
        accuracy: correct as f64 / seen.max(1) as f64,
        classes: data.classes.clone(),
        confusion,
    })
}

/// `netc eval`: the compiled spec with the weights of a checkpoint, on the
/// test split of `source`, by `engine` on `device`. Returns the
/// evaluation; a checkpoint that does not fit the spec is an error listing
/// every mismatch.
pub fn evaluate_command(
    graph: &crate::graph::Graph,
    weights: &Path,
    data: &crate::recipe::Data,
    batch_size: usize,
    engine: Engine,
    device: &Device,
) -> Result<Evaluation, String> {
    if batch_size == 0 {
        return Err("`--batch-size 0`: a batch holds at least 1 image".to_string());
    }
    let (model, norm) = load_model(graph, weights, &Device::Cpu)?;
    let mut net = trainer(engine, device, &model, &Default::default(), None)?;
    let shape = graph.image_shape()?;
    let data = data::load_recipe_data(data, Split::Test, shape, data.test_images, super::run::TEST_SEED)
        .map_err(|e| e.to_string())?;
    super::run::report_skipped(&data, "test");
    if data.is_empty() {
        return Err(format!("{} has no test images to evaluate on", data.source));
    }
    super::run::check_classes(graph, &data)?;
    memory::check_batch_fits(graph, batch_size.min(data.len()), device, "`--batch-size`")?;
    evaluate(net.as_mut(), Arc::new(data), batch_size, norm)
}
