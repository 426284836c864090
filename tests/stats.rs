//! The statistics of `netc compare` (spread over seeds, Welch's interval)
//! and the deletion score, on hand-computed values.

use netc::probe::score::{class_probability, curve_area, deletion_images, hottest_first};
use netc::probe::stats::{Spread, Verdict, spread, welch};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn spread_is_mean_sample_std_min_and_max() {
    // [2, 4, 4, 4, 5, 5, 7, 9]: mean 40/8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32;
    // sample variance 32/7, std sqrt(32/7) = 2.138090.
    let s = spread(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
    assert_eq!((s.n, s.mean, s.min, s.max), (8, 5.0, 2.0, 9.0));
    assert!(close(s.std, (32.0f64 / 7.0).sqrt(), 1e-12), "{s:?}");
    let one = spread(&[0.7]).unwrap();
    assert_eq!((one.n, one.std), (1, 0.0), "a single value has no spread");
    assert_eq!(spread(&[]), None);
    assert_eq!(spread(&[1.0, f64::NAN]), None, "a value that is not a number is not averaged");
}

/// Interval = diff ± t(0.975, df) * sqrt(sa²/na + sb²/nb); t quantiles from a printed
/// table of Student's t (two-sided 95%): df 4 -> 2.776445, df 6 -> 2.446912.
#[test]
fn welch_interval_matches_hand_computed_values() {
    // A = [1, 2, 3], B = [3, 4, 5]: means 2 and 4, both variances 1, n 3.
    // va = vb = 1/3, se = sqrt(2/3) = 0.816497; df = (2/3)² / (2 * (1/3)² / 2) = 4.
    // diff -2, half-width 2.776445 * 0.816497 = 2.266958: [-4.266958, 0.266958], holds 0.
    let a = spread(&[1.0, 2.0, 3.0]).unwrap();
    let b = spread(&[3.0, 4.0, 5.0]).unwrap();
    let d = welch(&a, &b);
    assert_eq!(d.diff, -2.0);
    assert!(close(d.df.unwrap(), 4.0, 1e-9), "{d:?}");
    let (lo, hi) = d.interval.unwrap();
    assert!(close(lo, -4.266958, 1e-5) && close(hi, 0.266958, 1e-5), "{d:?}");
    assert_eq!(d.verdict, Verdict::NoDifference);
    assert_eq!(d.verdict.words("A", "B"), "no difference shown");

    // A = [10, 11, 12, 13], B = [1, 2, 3, 4]: means 11.5 and 2.5, variances 5/3, n 4.
    // va = vb = 5/12, se = sqrt(5/6) = 0.912871; df = (5/6)² / (2 * (5/12)² / 3) = 6.
    // diff 9, half-width 2.446912 * 0.912871 = 2.233715: [6.766285, 11.233715], above 0.
    let a = spread(&[10.0, 11.0, 12.0, 13.0]).unwrap();
    let b = spread(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let d = welch(&a, &b);
    assert!(close(d.df.unwrap(), 6.0, 1e-9), "{d:?}");
    let (lo, hi) = d.interval.unwrap();
    assert!(close(lo, 6.766285, 1e-5) && close(hi, 11.233715, 1e-5), "{d:?}");
    assert_eq!(d.verdict, Verdict::Greater);
    assert_eq!(d.verdict.words("early", "later"), "early > later");
    assert_eq!(welch(&b, &a).verdict, Verdict::Less, "the other way round");

    // Unequal variances and sizes: A = [1, 3] (s² 2, n 2), B = [2, 3, 4] (s² 1, n 3).
    // va = 1, vb = 1/3; df = (4/3)² / (1²/1 + (1/3)²/2) = (16/9) / (19/18) = 32/19 = 1.684211.
    let d = welch(&spread(&[1.0, 3.0]).unwrap(), &spread(&[2.0, 3.0, 4.0]).unwrap());
    assert!(close(d.df.unwrap(), 32.0 / 19.0, 1e-12), "{d:?}");
    assert_eq!(d.diff, -1.0);
}

#[test]
fn welch_needs_two_seeds_a_side_and_handles_no_spread() {
    let one = spread(&[0.5]).unwrap();
    let three = spread(&[0.4, 0.5, 0.6]).unwrap();
    let d = welch(&one, &three);
    assert_eq!((d.interval, d.verdict), (None, Verdict::TooFew));
    assert!(d.verdict.words("a", "b").contains("too few seeds"));
    // Identical runs: no spread, the interval is the difference itself.
    let same = Spread { n: 3, mean: 0.7, std: 0.0, min: 0.7, max: 0.7 };
    let lower = Spread { mean: 0.6, min: 0.6, max: 0.6, ..same };
    let d = welch(&same, &lower);
    assert_eq!(d.verdict, Verdict::Greater);
    assert!(close(d.interval.unwrap().0, 0.1, 1e-12));
    assert_eq!(welch(&same, &same).verdict, Verdict::NoDifference);
}

#[test]
fn deletion_removes_the_hottest_pixels_first() {
    // A 2x2 heatmap: pixel 2 hottest, then 0, then 3 and 1 (tie broken by position).
    let heat = [0.5, 0.1, 0.9, 0.1];
    assert_eq!(hottest_first(&heat), vec![2, 0, 1, 3]);
    assert_eq!(hottest_first(&[f32::NAN, 0.0, -1.0]), vec![1, 2, 0], "NaN counts as no heat");
    // Two channels of a 2x2 image; 4 steps remove 0, 1, 2, 3, 4 pixels.
    let image = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
    let steps = deletion_images(&image, [2, 2, 2], &hottest_first(&heat), 4, 0.0);
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[0], image.to_vec(), "nothing removed at step 0");
    assert_eq!(steps[1], vec![1.0, 2.0, 0.0, 4.0, 10.0, 20.0, 0.0, 40.0], "pixel 2 in both channels");
    assert_eq!(steps[2], vec![0.0, 2.0, 0.0, 4.0, 0.0, 20.0, 0.0, 40.0]);
    assert_eq!(steps[4], vec![0.0; 8], "everything removed at the end");
}

#[test]
fn curve_area_is_the_trapezoid_rule_on_zero_to_one() {
    // (1, 0.5, 0): two trapezoids of width 1/2: (1+0.5)/2/2 + (0.5+0)/2/2 = 0.375 + 0.125 = 0.5.
    assert!(close(curve_area(&[1.0, 0.5, 0.0]), 0.5, 1e-12));
    // A probability that collapses at the first step scores lower than one that stays.
    assert!(curve_area(&[0.9, 0.1, 0.1, 0.1]) < curve_area(&[0.9, 0.9, 0.8, 0.1]));
    assert_eq!(curve_area(&[0.3]), 0.3);
    assert_eq!(curve_area(&[]), 0.0);
}

#[test]
fn class_probability_is_a_stable_softmax() {
    // logits (0, ln 3): probabilities 1/4 and 3/4.
    let logits = [0.0, 3.0f32.ln()];
    assert!(close(class_probability(&logits, 1), 0.75, 1e-6));
    assert!(close(class_probability(&logits, 0), 0.25, 1e-6));
    // Large logits do not overflow.
    assert!(close(class_probability(&[1000.0, 1000.0], 0), 0.5, 1e-9));
    assert_eq!(class_probability(&logits, 7), 0.0, "a class past the logits has no probability");
}
