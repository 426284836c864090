//! Statistics over seeds for `netc compare`: a group's mean, standard
//! deviation and range, and the difference of two groups' means with a 95%
//! confidence interval by Welch's t (docs/decisions.md, 36).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean, sample standard deviation (n - 1), minimum and maximum of values
/// (one per seed).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    /// 0 for a single value.
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

/// The spread of `values`; None when there are none (or any is not finite).
pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = match n {
        1 => 0.0,
        _ => values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64,
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Spread { n, mean, std: var.sqrt(), min, max })
}

/// The difference of two groups' means, `a - b`, with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Difference {
    pub diff: f64,
    /// The 95% interval; None when either group has fewer than 2 values.
    pub interval: Option<(f64, f64)>,
    /// Welch–Satterthwaite degrees of freedom (None as `interval`, or when
    /// both groups have no spread).
    pub df: Option<f64>,
    pub verdict: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// The interval lies above 0.
    Greater,
    /// The interval lies below 0.
    Less,
    /// The interval holds 0.
    NoDifference,
    /// Fewer than 2 seeds in a group: no interval.
    TooFew,
}

impl Verdict {
    /// In plain words, with the groups' names.
    pub fn words(self, a: &str, b: &str) -> String {
        match self {
            Verdict::Greater => format!("{a} > {b}"),
            Verdict::Less => format!("{a} < {b}"),
            Verdict::NoDifference => "no difference shown".to_string(),
            Verdict::TooFew => "too few seeds (need 2 per group)".to_string(),
        }
    }
}

/// Welch's t interval for the difference of means at 95%:
/// `diff ± t(0.975, df) * sqrt(sa²/na + sb²/nb)`, with Welch–Satterthwaite's
/// `df = (va + vb)² / (va²/(na-1) + vb²/(nb-1))`, `va = sa²/na`. Two groups
/// without any spread give the interval `[diff, diff]`.
pub fn welch(a: &Spread, b: &Spread) -> Difference {
    let diff = a.mean - b.mean;
    if a.n < 2 || b.n < 2 {
        return Difference { diff, interval: None, df: None, verdict: Verdict::TooFew };
    }
    let va = a.std * a.std / a.n as f64;
    let vb = b.std * b.std / b.n as f64;
    let se = (va + vb).sqrt();
    let (half, df) = if se > 0.0 {
        let df = (va + vb).powi(2) / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
        let t = StudentsT::new(0.0, 1.0, df).map(|d| d.inverse_cdf(0.975)).unwrap_or(f64::NAN);
        (t * se, Some(df))
    } else {
        (0.0, None)
    };
    let (lo, hi) = (diff - half, diff + half);
    let verdict = if !(lo.is_finite() && hi.is_finite()) {
        Verdict::NoDifference
    } else if lo > 0.0 {
        Verdict::Greater
    } else if hi < 0.0 {
        Verdict::Less
    } else {
        Verdict::NoDifference
    };
    Difference { diff, interval: Some((lo, hi)), df, verdict }
}
