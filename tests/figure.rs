//! Figures: tick selection, the colour map, the font, and plots that survive odd input.

use image::{Rgb, RgbImage};
use netc::figure::{Panel, Series, draw_text, jet, nice_ticks, plot, save_png, series_colour, text_width, tick_labels};

fn assert_ticks(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

fn series(label: &str, points: &[(f64, f64)]) -> Series {
    Series { label: label.into(), points: points.to_vec() }
}

fn panel(title: &str, series: Vec<Series>) -> Panel {
    Panel { title: title.into(), x_label: "epoch".into(), y_label: "value".into(), series }
}

/// Loss falling and accuracy rising over ten epochs, for train and test.
fn training_panels() -> Vec<Panel> {
    let epochs = 1..=10;
    let curve = |f: &dyn Fn(f64) -> f64| epochs.clone().map(|e| (e as f64, f(e as f64))).collect::<Vec<_>>();
    let loss = Panel {
        title: "Loss".into(),
        x_label: "epoch".into(),
        y_label: "cross-entropy".into(),
        series: vec![
            Series { label: "train".into(), points: curve(&|e| 0.25 + 2.05 * (-0.38 * (e - 1.0)).exp()) },
            Series { label: "test".into(), points: curve(&|e| 0.42 + 1.9 * (-0.33 * (e - 1.0)).exp() + 0.004 * e * e) },
        ],
    };
    let accuracy = Panel {
        title: "Accuracy".into(),
        x_label: "epoch".into(),
        y_label: "accuracy".into(),
        series: vec![
            Series { label: "train".into(), points: curve(&|e| 0.97 - 0.82 * (-0.42 * (e - 1.0)).exp()) },
            Series { label: "test".into(), points: curve(&|e| 0.9 - 0.76 * (-0.4 * (e - 1.0)).exp()) },
        ],
    };
    vec![loss, accuracy]
}

fn count_colour(img: &RgbImage, x0: u32, x1: u32, colour: [u8; 3]) -> usize {
    let mut n = 0;
    for y in 0..img.height() {
        for x in x0..x1.min(img.width()) {
            if img.get_pixel(x, y).0 == colour {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn ticks_for_the_unit_range_step_by_a_fifth() {
    assert_ticks(&nice_ticks(0.0, 1.0, 6), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    assert_ticks(&nice_ticks(0.0, 1.0, 8), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    assert_ticks(&nice_ticks(0.0, 1.0, 11), &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
    assert_eq!(tick_labels(&nice_ticks(0.0, 1.0, 6)), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
}

#[test]
fn ticks_for_a_small_range_round_outwards() {
    let ticks = nice_ticks(0.013, 0.087, 6);
    assert_ticks(&ticks, &[0.0, 0.02, 0.04, 0.06, 0.08, 0.1]);
    assert_eq!(tick_labels(&ticks), ["0.00", "0.02", "0.04", "0.06", "0.08", "0.10"]);
}

#[test]
fn ticks_use_one_two_five_steps_and_respect_the_budget() {
    assert_ticks(&nice_ticks(0.3, 2.3, 7), &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    assert_ticks(&nice_ticks(1.0, 10.0, 6), &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    assert_ticks(&nice_ticks(-3.0, 7.0, 6), &[-5.0, 0.0, 5.0, 10.0]); // a step of 2 would need 7 ticks
    assert_eq!(tick_labels(&nice_ticks(120.0, 980.0, 6)), ["0", "200", "400", "600", "800", "1000"]);
    for (lo, hi) in [(0.0, 1.0), (0.1, 1.05), (-7.3, 1e4), (1e-7, 3e-7), (99.0, 101.0), (-1e9, 1e9), (5.0, -5.0)] {
        for budget in 3..12 {
            let ticks = nice_ticks(lo, hi, budget);
            assert!(ticks.len() >= 2 && ticks.len() <= budget, "{lo}..{hi} in {budget}: {ticks:?}");
            assert!(ticks[0] <= lo.min(hi) && *ticks.last().unwrap() >= lo.max(hi), "{lo}..{hi}: {ticks:?}");
            let step = ticks[1] - ticks[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!([1.0, 2.0, 5.0, 10.0].iter().any(|m| (mantissa - m).abs() < 1e-6), "{lo}..{hi}: step {step}");
            let labels = tick_labels(&ticks);
            let mut unique = labels.clone();
            unique.dedup();
            assert_eq!(unique.len(), labels.len(), "labels repeat: {labels:?}");
        }
    }
}

#[test]
fn ticks_for_a_constant_series_surround_the_value() {
    for c in [0.0, 3.0, -0.5, 1e-9, 2.5e12] {
        let ticks = nice_ticks(c, c, 6);
        assert!(ticks.len() >= 2 && ticks.iter().all(|t| t.is_finite()), "{c}: {ticks:?}");
        assert!(ticks[0] < c && c < *ticks.last().unwrap(), "{c}: {ticks:?}");
    }
    assert_ticks(&nice_ticks(0.0, 0.0, 6), &[-1.0, -0.5, 0.0, 0.5, 1.0]);
    // Nothing finite at all still gives an axis.
    assert_ticks(&nice_ticks(f64::NAN, f64::INFINITY, 6), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
}

#[test]
fn tick_labels_use_exponents_for_extreme_magnitudes() {
    assert_eq!(tick_labels(&nice_ticks(0.0, 4e-5, 5)), ["0", "1e-5", "2e-5", "3e-5", "4e-5"]);
    assert_eq!(tick_labels(&[0.0, 5e6, 1e7]), ["0", "5e6", "1e7"]);
    assert_eq!(tick_labels(&[-0.25, 0.0, 0.25]), ["-0.25", "0.00", "0.25"]);
    // Steps computed as 0.09999999999999998 still get one decimal.
    assert_eq!(tick_labels(&nice_ticks(2.7, 3.3, 7)), ["2.7", "2.8", "2.9", "3.0", "3.1", "3.2", "3.3"]);
}

#[test]
fn jet_runs_from_dark_blue_through_green_to_dark_red() {
    assert_eq!(jet(0.0), [0, 0, 128]);
    assert_eq!(jet(0.5), [128, 255, 128]);
    assert_eq!(jet(1.0), [128, 0, 0]);
    assert_eq!(jet(-3.0), jet(0.0));
    assert_eq!(jet(7.0), jet(1.0));
    assert_eq!(jet(f32::NAN), [0, 0, 0]);
    // Blue rises before red does, and the middle is the greenest.
    assert!(jet(0.25)[2] == 255 && jet(0.25)[0] == 0);
    assert!(jet(0.75)[0] == 255 && jet(0.75)[2] == 0);
}

#[test]
fn text_is_measured_and_drawn_in_its_box() {
    assert_eq!(text_width("", 2), 0);
    assert_eq!(text_width("A", 1), 5);
    assert_eq!(text_width("AB", 1), 11);
    assert_eq!(text_width("AB", 2), 22);
    let mut img = RgbImage::from_pixel(40, 20, Rgb([255, 255, 255]));
    draw_text(&mut img, 2, 2, "Hg~\u{e9}", 1, Rgb([0, 0, 0]));
    let inked: Vec<(u32, u32)> = img.enumerate_pixels().filter(|p| p.2.0 == [0, 0, 0]).map(|p| (p.0, p.1)).collect();
    assert!(!inked.is_empty());
    assert!(inked.iter().all(|&(x, y)| (2..2 + text_width("Hg~?", 1)).contains(&x) && (2..2 + 9).contains(&y)));
    // Off the edge is clipped, not a panic.
    draw_text(&mut img, -7, 15, "clipped text", 2, Rgb([0, 0, 0]));
}

#[test]
fn every_printable_glyph_is_distinct_and_space_is_blank() {
    let glyphs = &netc::figure::font::FONT;
    assert!(glyphs[0].iter().all(|&row| row == 0));
    for (i, a) in glyphs.iter().enumerate() {
        assert!(a.iter().all(|&row| row < 32), "glyph {} is wider than 5", (i as u8 + 32) as char);
        if i > 0 {
            assert!(a.iter().any(|&row| row != 0), "glyph {} is blank", (i as u8 + 32) as char);
        }
        for (j, b) in glyphs.iter().enumerate().skip(i + 1) {
            assert_ne!(a, b, "{} and {} look the same", (i as u8 + 32) as char, (j as u8 + 32) as char);
        }
    }
}

#[test]
fn odd_input_plots_without_panicking_at_the_right_size() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let cases: Vec<Vec<Panel>> = vec![
        vec![],
        vec![Panel::default()],
        vec![panel("empty series", vec![series("nothing", &[])])],
        vec![panel("one point", vec![series("a", &[(3.0, 0.5)])])],
        vec![panel("constant", vec![series("flat", &[(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)])])],
        vec![panel("all zero", vec![series("zero", &[(0.0, 0.0), (0.0, 0.0)])])],
        vec![panel(
            "non-finite",
            vec![series("mixed", &[(0.0, nan), (1.0, 1.0), (inf, 2.0), (2.0, -inf), (3.0, 0.5)])],
        )],
        vec![panel("only non-finite", vec![series("bad", &[(nan, nan), (inf, -inf)])])],
        vec![panel("huge", vec![series("big", &[(-1e300, 1e300), (1e300, -1e300), (f64::MAX, f64::MIN)])])],
        vec![panel("tiny steps", vec![series("t", &[(1.0, 1.0), (1.0 + 1e-15, 1.0 + 1e-15)])])],
        vec![panel(
            &"a very long title that cannot possibly fit ".repeat(5),
            (0..30).map(|i| series(&format!("series number {i} with a long name"), &[(i as f64, 1.0)])).collect(),
        )],
        vec![panel(
            "many points",
            vec![series("noise", &(0..20_000).map(|i| (i as f64, ((i * 7919) % 101) as f64)).collect::<Vec<_>>())],
        )],
        training_panels(),
    ];
    for panels in &cases {
        for (w, h) in [(640, 480), (300, 200), (120, 90), (17, 11), (1, 1), (0, 0)] {
            let img = plot(panels, w, h);
            assert_eq!((img.width(), img.height()), (w * panels.len().max(1) as u32, h), "{w}x{h}");
        }
    }
}

#[test]
fn series_colours_land_inside_their_own_panel() {
    let panels = training_panels();
    let (w, h) = (500, 360);
    let img = plot(&panels, w, h);
    let (train, test) = (series_colour(0), series_colour(1));
    assert_ne!(train, test);
    // Both colours appear in each panel's half, and only there is their area so large.
    for p in 0..2 {
        let (x0, x1) = (p * w, (p + 1) * w);
        assert!(count_colour(&img, x0, x1, train) > 200, "train colour missing in panel {p}");
        assert!(count_colour(&img, x0, x1, test) > 200, "test colour missing in panel {p}");
    }
    // The line really is inside the plot area: the outer margins stay white.
    for y in 0..h {
        for x in [0, 1, 2, w - 1, w, 2 * w - 1] {
            assert_eq!(img.get_pixel(x, y).0, [255, 255, 255], "({x}, {y})");
        }
    }
    // A single series shows its colour near where its point should be: the plot's middle.
    let one = plot(&[panel("one point", vec![series("a", &[(3.0, 0.5)])])], 400, 300);
    let blue: Vec<(u32, u32)> = one.enumerate_pixels().filter(|p| p.2.0 == train).map(|p| (p.0, p.1)).collect();
    assert!(!blue.is_empty());
    let plotted: Vec<_> = blue.iter().filter(|&&(x, y)| (150..330).contains(&x) && (100..200).contains(&y)).collect();
    assert!(!plotted.is_empty(), "the point is not near the middle: {blue:?}");
}

#[test]
fn png_round_trips_through_image_open() {
    let img = plot(&training_panels(), 320, 240);
    let dir = std::env::temp_dir().join(format!("netc-figure-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("curves.png");
    save_png(&img, &path).unwrap();
    save_png(&img, &path).unwrap(); // overwriting is fine too
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back, img);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["curves.png"], "the temporary file is gone");
    assert!(save_png(&img, &dir.join("missing-dir").join("x.png")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Renders the sample a person looks at: `figure_sample.png` in the temp directory.
#[test]
fn sample_training_curves_render() {
    let img = plot(&training_panels(), 640, 480);
    assert_eq!((img.width(), img.height()), (1280, 480));
    let path = std::env::temp_dir().join("figure_sample.png");
    save_png(&img, &path).unwrap();
    let small = plot(&training_panels(), 360, 260);
    save_png(&small, &std::env::temp_dir().join("figure_sample_small.png")).unwrap();
    // Odd input, for a person to check it still reads well.
    let nan = f64::NAN;
    let odd = [
        panel("one point", vec![series("only", &[(3.0, 0.5)])]),
        panel("constant", vec![series("flat", &[(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]), series("", &[])]),
        panel(
            "gaps (NaN skipped)",
            vec![series("sparse", &[(0.0, 1.0), (1.0, nan), (2.0, 0.4), (3.0, nan), (4.0, 0.1)])],
        ),
        Panel { title: "empty".into(), ..Panel::default() },
    ];
    save_png(&plot(&odd, 400, 300), &std::env::temp_dir().join("figure_odd.png")).unwrap();
    let crowded = [
        panel(
            "a long title that has to be cut short because it is far too wide",
            (0..12).map(|i| series(&format!("run {i} lr=0.{i}"), &[(0.0, i as f64), (1.0, 12.0 - i as f64)])).collect(),
        ),
        panel(
            "20,000 noisy steps",
            vec![series(
                "noise",
                &(0..20_000).map(|i| (i as f64, 1e-4 * ((i * 7919) % 101) as f64)).collect::<Vec<_>>(),
            )],
        ),
    ];
    save_png(&plot(&crowded, 560, 400), &std::env::temp_dir().join("figure_crowded.png")).unwrap();
}

/// Renders every glyph, for a person to check the font: `figure_glyphs.png` in the temp directory.
#[test]
fn glyph_sheet_renders() {
    let lines = [
        " !\"#$%&'()*+,-./0123456789:;<=>?",
        "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_",
        "`abcdefghijklmnopqrstuvwxyz{|}~",
        "The quick brown fox jumps over",
        "the lazy dog; loss=0.0213 (7/10)",
    ];
    let scale = 4;
    let width = lines.iter().map(|l| text_width(l, scale)).max().unwrap() + 20;
    let mut img = RgbImage::from_pixel(width, 20 + 11 * scale * lines.len() as u32, Rgb([255, 255, 255]));
    for (i, line) in lines.iter().enumerate() {
        draw_text(&mut img, 10, 10 + (11 * scale * i as u32) as i32, line, scale, Rgb([0, 0, 0]));
    }
    save_png(&img, &std::env::temp_dir().join("figure_glyphs.png")).unwrap();
}
