//! Whether something fits in memory, asked before it is allocated: a
//! batch, a net or a data set too large for the machine is refused with
//! the figures, rather than the allocator aborting netc halfway through.
//! The figures are lower bounds or close estimates (the native engine's
//! measured peak is within a few percent of [`training_bytes`]), so what
//! is refused would not have fit, but for a few percent at the margin.

use candle_core::Device;

use crate::graph::Graph;

/// The memory a training step of `batch` images takes on the native
/// engine: every node's output for the whole batch (the engine gives
/// gradients buffers that are no longer needed, so this is within a few
/// percent of its measured peak at widths 0.25 and 1.0 of the CIFAR
/// GoogLeNet), and each parameter four times (value, gradient, momentum,
/// and the layout a product reads).
pub fn training_bytes(graph: &Graph, batch: usize) -> u128 {
    let values: u128 = graph.nodes.iter().map(|n| n.shape.iter().map(|&d| d as u128).product::<u128>()).sum();
    4 * (values * batch as u128 + 4 * u128::from(graph.total_params()))
}

/// The memory the system can still give this process (`MemAvailable` in
/// /proc/meminfo), in bytes; `None` where that is not known.
pub fn available_bytes() -> Option<u128> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An error when `needed` bytes, for `what`, cannot fit in the memory this
/// machine has available; `advice` says what to change.
pub fn check_fits(needed: u128, what: &str, advice: &str) -> Result<(), String> {
    match available_bytes() {
        Some(available) if needed > available => Err(format!(
            "{what} need about {}, and this machine has {} available; {advice}",
            gib(needed),
            gib(available)
        )),
        _ => Ok(()),
    }
}

/// An error when the parameters of `graph` alone (`copies` of them: 1 to
/// hold them, 4 to train) cannot fit in memory.
pub fn check_params_fit(graph: &Graph, copies: u128) -> Result<(), String> {
    check_fits(
        4 * copies * u128::from(graph.total_params()),
        &format!(
            "`{}`'s {} parameters{}",
            graph.name,
            crate::summary::group(graph.total_params()),
            if copies > 1 { ", trained," } else { "" }
        ),
        "a smaller net (fewer channels: `--set width=...` where the spec has one) would fit",
    )
}

/// An error when a step of `batch` images on `device` cannot fit in memory:
/// on the CPU the batch and the trained parameters, elsewhere (where the
/// device's own memory holds the batch) the parameters, which start on the
/// CPU. `option` names the command line option that sets the batch.
pub fn check_batch_fits(graph: &Graph, batch: usize, device: &Device, option: &str) -> Result<(), String> {
    check_params_fit(graph, 4)?;
    let Some(available) = available_bytes() else { return Ok(()) };
    let needed = training_bytes(graph, if device.is_cpu() { batch } else { 0 });
    if needed <= available {
        return Ok(());
    }
    let params = training_bytes(graph, 0);
    let per_image = training_bytes(graph, 1) - params;
    let advice = match available.saturating_sub(params) / per_image.max(1) {
        0 => format!(
            "one image alone needs about {}: the net's feature maps are too large (its input is {:?})",
            gib(per_image),
            graph.input_shape()
        ),
        fits => format!("use a smaller batch ({option}; about {fits} images fit)"),
    };
    let what = match batch {
        1 => format!("single images through `{}`", graph.name),
        _ => format!("batches of {batch} images through `{}`", graph.name),
    };
    Err(format!("{what} need about {}, and this machine has {} available; {advice}", gib(needed), gib(available)))
}

/// Bytes as GiB, for messages.
pub fn gib(bytes: u128) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u128 << 30) as f64)
}
