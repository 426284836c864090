//! Axis ticks: round values in 1-2-5 steps, and their labels.

/// Round tick values covering `lo..=hi`: evenly spaced by 1, 2 or 5 times a power of ten, the
/// first at or below `lo` and the last at or above `hi`, at most `max_ticks` of them (a budget
/// under 3 counts as 3: a range around zero needs -step, 0 and step).
///
/// The axis drawn from these spans exactly first..=last. A range with no width (`lo == hi`, as
/// from a constant series or a single point) is widened around its value first; non-finite or
/// reversed bounds are tolerated (swapped, or replaced by 0..1), so the result is never empty.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    let max_ticks = max_ticks.max(3);
    let (lo, hi) = widen(lo, hi);
    let span = hi - lo;
    if !span.is_finite() {
        // Bounds near f64::MAX: no room for rounding, just mark the ends.
        return vec![lo, hi];
    }
    let raw = span / (max_ticks - 1) as f64;
    let mut exp = raw.log10().floor() as i32;
    let mut mantissa_index = 0;
    // Every third try multiplies the step by ten, so this ends long before the cap.
    for _ in 0..3000 {
        let step = MANTISSAS[mantissa_index] * pow10(exp);
        if step >= raw * (1.0 - 1e-9) {
            let first = (lo / step + 1e-9).floor();
            let last = (hi / step - 1e-9).ceil();
            let count = (last - first) as usize + 1;
            if count <= max_ticks {
                return (0..count).map(|i| clean((first + i as f64) * step, step)).collect();
            }
        }
        mantissa_index += 1;
        if mantissa_index == MANTISSAS.len() {
            mantissa_index = 0;
            exp += 1;
        }
    }
    vec![lo, hi]
}

/// Labels for `ticks` (as from [`nice_ticks`]), all with the same number of decimals: "0.02",
/// "1.5", "250". Very large or very small magnitudes use exponent form ("2.5e-5", "1.2e6").
pub fn tick_labels(ticks: &[f64]) -> Vec<String> {
    let step = ticks.windows(2).map(|w| (w[1] - w[0]).abs()).fold(f64::INFINITY, f64::min);
    let biggest = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    if !step.is_finite() || step == 0.0 {
        return ticks.iter().map(|&t| trim(format!("{t:.6}"))).collect();
    }
    let step_exp = floor_log10(step);
    if biggest >= 1e6 || biggest < 1e-3 && biggest > 0.0 {
        let top_exp = floor_log10(biggest);
        let digits = (top_exp - step_exp).clamp(0, 15) as usize;
        return ticks.iter().map(|&t| exp_form(t, digits)).collect();
    }
    // Decimals needed to tell ticks apart: 0.25-steps need two, 0.5-steps one.
    let mut decimals = (-step_exp).max(0) as usize;
    while decimals < 15 && ticks.iter().any(|&t| differs_when_rounded(t, decimals)) {
        decimals += 1;
    }
    ticks.iter().map(|&t| format!("{:.*}", decimals, if t == 0.0 { 0.0 } else { t })).collect()
}

const MANTISSAS: [f64; 3] = [1.0, 2.0, 5.0];

/// The power of ten at or below `v`, forgiving rounding error: 0.09999999999999998 counts as 0.1.
fn floor_log10(v: f64) -> i32 {
    (v.log10() + 1e-9).floor() as i32
}

fn pow10(exp: i32) -> f64 {
    10f64.powi(exp)
}

/// Orders the bounds and gives a zero-width range some width.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (lo.min(hi), lo.max(hi)),
        (true, false) => (lo, lo),
        (false, true) => (hi, hi),
        (false, false) => (0.0, 1.0),
    };
    let magnitude = lo.abs().max(hi.abs());
    if hi - lo > magnitude * 1e-12 {
        return (lo, hi);
    }
    let mid = lo / 2.0 + hi / 2.0;
    if mid == 0.0 {
        (-1.0, 1.0)
    } else {
        let half = mid.abs() * 0.1;
        (mid - half, mid + half)
    }
}

/// Snaps a computed tick to the nearest multiple of `step` as printed, and turns -0 into 0.
fn clean(t: f64, step: f64) -> f64 {
    if t.abs() < step * 1e-9 {
        return 0.0;
    }
    let decimals = (1 - floor_log10(step)).clamp(0, 17) as usize;
    format!("{t:.decimals$}").parse().unwrap_or(t)
}

fn differs_when_rounded(t: f64, decimals: usize) -> bool {
    let rounded: f64 = format!("{t:.decimals$}").parse().unwrap_or(t);
    (rounded - t).abs() > t.abs().max(1e-300) * 1e-9
}

fn exp_form(t: f64, digits: usize) -> String {
    if t == 0.0 {
        return "0".into();
    }
    let s = format!("{t:.digits$e}");
    // "2.50e-5": drop trailing zeros of the mantissa but keep every label's own precision sane.
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{}", trim(m.to_string()), e),
        None => s,
    }
}

fn trim(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}
