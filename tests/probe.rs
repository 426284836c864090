//! The pure heatmap functions (src/probe/{heatmap,score,grid}.rs) on hand-made inputs with
//! known answers.

use image::{Rgb, RgbImage};
use netc::figure::font::text_height;
use netc::figure::{jet, text_width};
use netc::probe::grid::{self, PAD, grid};
use netc::probe::heatmap::{aggregate, colour, normalize, overlay, range, resize, to_rgb};
use netc::probe::score::{Scores, score, summarize};
use netc::recipe::Aggregate;

/// Two channels of 2x2: channel 0 = [1, -2, 3, 0], channel 1 = [3, 2, -1, 0].
const ACT: [f32; 8] = [1.0, -2.0, 3.0, 0.0, 3.0, 2.0, -1.0, 0.0];

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn aggregate_mean_max_l2() {
    let agg = |how| aggregate(&ACT, None, [2, 2, 2], how).unwrap();
    close(&agg(Aggregate::Mean), &[2.0, 0.0, 1.0, 0.0]);
    close(&agg(Aggregate::Max), &[3.0, 2.0, 3.0, 0.0]);
    close(&agg(Aggregate::L2), &[10f32.sqrt(), 8f32.sqrt(), 10f32.sqrt(), 0.0]);
}

#[test]
fn aggregate_gradcam_weights_channels_by_mean_gradient() {
    // Channel weights: mean grad 1 for channel 0, -1 for channel 1.
    let grad = [1.0, 1.0, 1.0, 1.0, -2.0, 0.0, -2.0, 0.0];
    let map = aggregate(&ACT, Some(&grad), [2, 2, 2], Aggregate::Gradcam).unwrap();
    // 1*ch0 - 1*ch1 = [-2, -4, 4, 0], then relu.
    close(&map, &[0.0, 0.0, 4.0, 0.0]);
}

#[test]
fn aggregate_gradcam_without_gradient_is_an_error() {
    assert!(aggregate(&ACT, None, [2, 2, 2], Aggregate::Gradcam).is_err());
    // A grad is ignored for the others, and a wrong shape is an error too.
    assert!(aggregate(&ACT, Some(&[0.0]), [2, 2, 2], Aggregate::Mean).is_ok());
    assert!(aggregate(&ACT, None, [2, 2, 3], Aggregate::Mean).is_err());
}

#[test]
fn resize_same_size_is_identity() {
    let map = [0.5, -1.0, 2.0, 7.0, 3.0, 0.25];
    close(&resize(&map, [2, 3], [2, 3]), &map);
}

#[test]
fn resize_matches_pytorch_bilinear_align_corners_false() {
    // torch.nn.functional.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False)
    let out = resize(&[0.0, 1.0, 2.0, 3.0], [2, 2], [4, 4]);
    #[rustfmt::skip]
    close(&out, &[
        0.0, 0.25, 0.75, 1.0,
        0.5, 0.75, 1.25, 1.5,
        1.5, 1.75, 2.25, 2.5,
        2.0, 2.25, 2.75, 3.0,
    ]);
}

#[test]
fn normalize_of_a_constant_map_is_zeros() {
    let out = normalize(&[3.0; 4], range([&[3.0f32; 4][..]]));
    assert_eq!(out, vec![0.0; 4]);
    close(&normalize(&[0.0, 5.0, 10.0, 20.0], (0.0, 10.0)), &[0.0, 0.5, 1.0, 1.0]);
}

#[test]
fn range_ignores_nan_and_spans_maps() {
    let a = [1.0, f32::NAN, 4.0];
    let b = [f32::NAN, -2.0];
    assert_eq!(range([&a[..], &b[..]]), (-2.0, 4.0));
    assert_eq!(range([&[f32::NAN][..]]), (0.0, 0.0));
}

/// A 2x2 colour image, CHW, and a heat ramp.
const IMAGE: [u8; 12] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120];
const HEAT: [f32; 4] = [0.0, 0.3, 0.6, 1.0];

#[test]
fn overlay_at_alpha_0_is_the_image_and_at_alpha_1_is_jet() {
    let image = to_rgb(&IMAGE, [3, 2, 2]);
    assert_eq!(*image.get_pixel(1, 0), Rgb([20, 60, 100]));
    assert_eq!(overlay(&IMAGE, [3, 2, 2], &HEAT, 0.0), image);
    assert_eq!(overlay(&IMAGE, [3, 2, 2], &HEAT, 1.0), colour(&HEAT, [2, 2]));
    assert_eq!(*colour(&HEAT, [2, 2]).get_pixel(1, 1), Rgb(jet(1.0)));
    // Grey images repeat their one plane.
    assert_eq!(*to_rgb(&[9, 8, 7, 6], [1, 2, 2]).get_pixel(0, 1), Rgb([7, 7, 7]));
}

#[test]
fn score_heat_inside_outside_and_half_the_object() {
    let mask = [1, 1, 0, 0];
    let inside = score(&[1.0, 0.5, 0.0, 0.0], Some(&mask));
    assert_eq!((inside.energy_in_object, inside.pointing_hit), (Some(1.0), Some(true)));
    let outside = score(&[0.0, 0.0, 0.2, 1.0], Some(&mask));
    assert_eq!((outside.energy_in_object, outside.pointing_hit), (Some(0.0), Some(false)));
    let half = score(&[1.0, 0.0, 0.0, 1.0], Some(&mask));
    // Tied maxima: the first one (on the object) counts.
    assert_eq!((half.energy_in_object, half.pointing_hit), (Some(0.5), Some(true)));
    let unmasked = score(&[1.0, 0.0, 0.0, 0.0], None);
    assert_eq!((unmasked.energy_in_object, unmasked.pointing_hit), (None, None));
    assert_eq!(score(&[0.0; 4], Some(&mask)).energy_in_object, Some(0.0));
}

#[test]
fn concentration_of_one_hot_constant_and_empty_maps() {
    let mut one_hot = [0.0f32; 100];
    one_hot[42] = 0.7;
    assert_eq!(score(&one_hot, None).concentration, 1.0);
    assert!((score(&[0.3; 100], None).concentration - 0.1).abs() < 1e-12);
    assert_eq!(score(&[0.0; 100], None).concentration, 0.0);
}

#[test]
fn summarize_averages_over_images() {
    let scores = [
        Scores { energy_in_object: Some(1.0), pointing_hit: Some(true), concentration: 0.5 },
        Scores { energy_in_object: Some(0.0), pointing_hit: Some(false), concentration: 0.1 },
        Scores { energy_in_object: Some(0.5), pointing_hit: Some(true), concentration: 0.3 },
        Scores { energy_in_object: None, pointing_hit: None, concentration: 0.3 },
    ];
    let s = summarize(&scores);
    assert_eq!(s.images, 4);
    assert!((s.energy_in_object.unwrap() - 0.5).abs() < 1e-12);
    assert!((s.pointing_game.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert!((s.concentration - 0.3).abs() < 1e-12);
    let none = summarize(&[]);
    assert_eq!((none.energy_in_object, none.pointing_game, none.images), (None, None, 0));
}

#[test]
fn grid_size_tiles_and_titles() {
    let red = RgbImage::from_pixel(8, 8, Rgb([255, 0, 0]));
    let rows = vec![vec![red.clone(); 3], vec![red; 3]];
    let titles: Vec<String> = ["input", "conv1", "conv2"].map(String::from).to_vec();
    let labels: Vec<String> = ["cat", "ship"].map(String::from).to_vec();
    let out = grid(&rows, &titles, &labels, 2);

    // 16x16 tiles are small, so text is at scale 1.
    let label_w = text_width("ship", 1) + PAD;
    let title_h = text_height(1) + PAD;
    assert_eq!(out.width(), PAD + label_w + 3 * (16 + PAD));
    assert_eq!(out.height(), PAD + title_h + 2 * (16 + PAD));

    // Zoomed tiles fill their cells: the last pixel of the last tile is red.
    let (x, y) = (out.width() - PAD - 1, out.height() - PAD - 1);
    assert_eq!(*out.get_pixel(x, y), Rgb([255, 0, 0]));
    // Titles: dark pixels above the first row; labels: dark pixels left of the first column.
    let dark = |x0: u32, x1: u32, y0: u32, y1: u32| {
        (x0..x1).flat_map(|x| (y0..y1).map(move |y| (x, y))).any(|(x, y)| out.get_pixel(x, y).0 == [0, 0, 0])
    };
    assert!(dark(PAD + label_w, out.width(), 0, PAD + title_h));
    assert!(dark(0, PAD + label_w, PAD + title_h, out.height()));
}

/// Writes a sample figure to the temporary directory for a person to look at:
/// `cargo test --release --test probe -- --ignored`.
#[test]
#[ignore]
fn sample_grid_png() {
    let (s, n) = (32usize, 8usize); // image side, feature-map side
    // A grey scene with an orange disc (the "object") right of centre.
    let (cx, cy, r) = (20.0, 14.0, 8.0);
    let on = |x: f32, y: f32| (x - cx).powi(2) + (y - cy).powi(2) < r * r;
    let mut image = vec![0u8; 3 * s * s];
    let mut mask = vec![0u8; s * s];
    for y in 0..s {
        for x in 0..s {
            let i = y * s + x;
            let object = on(x as f32 + 0.5, y as f32 + 0.5);
            mask[i] = object as u8;
            let rgb = if object { [230, 140, 40] } else { [90 + (x * 2) as u8, 110, 120] };
            (0..3).for_each(|k| image[k * s * s + i] = rgb[k]);
        }
    }
    // Four channels of 8x8: a blob on the object, a sharper blob, noise, and an off-object spot.
    let blob = |x: f32, y: f32, cx: f32, cy: f32, w: f32| (-((x - cx).powi(2) + (y - cy).powi(2)) / w).exp();
    let mut act = vec![0.0f32; 4 * n * n];
    for y in 0..n {
        for x in 0..n {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let (ox, oy) = (cx / 4.0, cy / 4.0);
            let i = y * n + x;
            act[i] = blob(fx, fy, ox, oy, 4.0);
            act[n * n + i] = 2.0 * blob(fx, fy, ox, oy, 1.0);
            act[2 * n * n + i] = (((x * 7 + y * 13) % 5) as f32) * 0.15;
            act[3 * n * n + i] = blob(fx, fy, 1.5, 6.5, 1.0);
        }
    }
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for how in [Aggregate::Mean, Aggregate::Max, Aggregate::L2] {
        let map = aggregate(&act, None, [4, n, n], how).unwrap();
        let big = resize(&map, [n, n], [s, s]);
        let heat = normalize(&big, range([&big[..]]));
        let sc = score(&heat, Some(&mask));
        println!("{how:?}: {sc:?}");
        rows.push(vec![to_rgb(&image, [3, s, s]), colour(&heat, [s, s]), overlay(&image, [3, s, s], &heat, 0.5)]);
        labels.push(format!("{how:?} e={:.2}", sc.energy_in_object.unwrap()));
    }
    let titles = ["image", "heatmap", "overlay"].map(String::from).to_vec();
    let path = std::env::temp_dir().join("probe_grid.png");
    grid(&rows, &titles, &labels, 4).save(&path).unwrap();
    println!("wrote {}", path.display());
}

#[test]
fn a_legend_adds_a_title_and_a_colour_bar_under_each_heatmap_column() {
    let tile = RgbImage::from_pixel(32, 32, Rgb([128, 128, 128]));
    let rows = vec![vec![tile.clone(), tile.clone()]];
    let titles = vec!["image".to_string(), "mid".to_string()];
    let plain = grid::grid(&rows, &titles, &[], 1);
    let legend = grid::Legend {
        title: "probe mid: mean".to_string(),
        bars: vec![None, Some(("0".to_string(), "1".to_string()))],
    };
    let fig = grid::grid_with_legend(&rows, &titles, &[], 1, &legend);
    assert!(fig.width() >= plain.width(), "as wide as the grid, or the title");
    assert!(fig.height() > plain.height() + grid::BAR_H, "room for the title and the bar");
    // The bar runs from jet(0) to jet(1) under the second column only.
    let x0 = PAD + 32 + PAD;
    let bar_y = (0..fig.height()).rev().find(|&y| fig.get_pixel(x0, y).0 == jet(0.0)).expect("a bar");
    assert_eq!(fig.get_pixel(x0 + 31, bar_y).0, jet(1.0));
    assert_eq!(fig.get_pixel(PAD, bar_y).0, [255, 255, 255], "no bar under the image column");
    assert_eq!(grid::value_label(0.0194), "0.0194");
    assert_eq!(grid::value_label(12.5), "12.5");
    assert_eq!(grid::value_label(-3.0e-4), "-3.00e-4");
}
