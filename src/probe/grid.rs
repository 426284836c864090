//! A figure like the paper's: rows of tiles (say image | layer 1 | layer 2 ... for one image
//! per row), a title above each column and a label left of each row.

use image::{Rgb, RgbImage};

use crate::figure::font::text_height;
use crate::figure::{draw_text, text_width};

/// Pixels of white between tiles and around the figure.
pub const PAD: u32 = 4;

const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

/// Lays out `rows` of tiles on white, each tile scaled up by the integer `zoom` (nearest
/// neighbour, so 32x32 CIFAR images stay crisp: zoom 4 gives 128x128). Tiles should all be the
/// same size; each cell is as large as the largest one. Titles are centred over their columns,
/// labels left-aligned in a column of their own. Text is drawn at scale 2 when the tiles are
/// at least 64 pixels tall and every title fits its column at that scale, otherwise at scale 1.
///
/// The size is `PAD + label column + columns * (tile width + PAD)` by
/// `PAD + title row + rows * (tile height + PAD)`, where the label column is the widest label
/// plus `PAD` (nothing without labels) and the title row is one text line plus `PAD` (nothing
/// without titles).
pub fn grid(rows: &[Vec<RgbImage>], column_titles: &[String], row_labels: &[String], zoom: u32) -> RgbImage {
    let zoom = zoom.max(1);
    let tiles = rows.iter().flatten();
    let tile_w = tiles.clone().map(RgbImage::width).max().unwrap_or(0) * zoom;
    let tile_h = tiles.map(RgbImage::height).max().unwrap_or(0) * zoom;
    let n_cols = rows.iter().map(Vec::len).chain([column_titles.len()]).max().unwrap_or(0) as u32;
    let n_rows = rows.len().max(row_labels.len()) as u32;

    let fits = |s| column_titles.iter().all(|t| text_width(t, s) <= tile_w);
    let scale = if tile_h >= 64 && fits(2) { 2 } else { 1 };
    let has_text = |texts: &[String]| texts.iter().any(|t| !t.is_empty());
    let label_w = match has_text(row_labels) {
        true => row_labels.iter().map(|l| text_width(l, scale)).max().unwrap_or(0) + PAD,
        false => 0,
    };
    let title_h = if has_text(column_titles) { text_height(scale) + PAD } else { 0 };

    let width = PAD + label_w + n_cols * (tile_w + PAD);
    let height = PAD + title_h + n_rows * (tile_h + PAD);
    let mut out = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));

    let col_x = |c: u32| PAD + label_w + c * (tile_w + PAD);
    let row_y = |r: u32| PAD + title_h + r * (tile_h + PAD);
    for (c, title) in column_titles.iter().enumerate() {
        // Centred; a title wider than its column spills evenly to both sides.
        let x = col_x(c as u32) as i32 + (tile_w as i32 - text_width(title, scale) as i32) / 2;
        draw_text(&mut out, x, PAD as i32, title, scale, BLACK);
    }
    for (r, label) in row_labels.iter().enumerate() {
        let y = row_y(r as u32) as i32 + (tile_h as i32 - text_height(scale) as i32) / 2;
        draw_text(&mut out, PAD as i32, y, label, scale, BLACK);
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            let (x0, y0) = (col_x(c as u32), row_y(r as u32));
            for (x, y, px) in tile.enumerate_pixels() {
                for (dx, dy) in (0..zoom).flat_map(|dx| (0..zoom).map(move |dy| (dx, dy))) {
                    out.put_pixel(x0 + x * zoom + dx, y0 + y * zoom + dy, *px);
                }
            }
        }
    }
    out
}

/// What a heatmap figure says about itself: a title line (the probe or
/// probes, the aggregation, the scale) and, under each column, the colour
/// bar of its heatmaps with the values at its two ends.
pub struct Legend {
    pub title: String,
    /// One per column of the grid: `None` for a column without heatmaps
    /// (the image), else the labels of the bar's low and high ends.
    pub bars: Vec<Option<(String, String)>>,
}

/// Height in pixels of a colour bar under a column.
pub const BAR_H: u32 = 8;

/// [`grid`] with a [`Legend`]: the title above, a jet colour bar under
/// every heatmap column, its low-end label at the left and its high-end
/// label at the right.
pub fn grid_with_legend(
    rows: &[Vec<RgbImage>],
    column_titles: &[String],
    row_labels: &[String],
    zoom: u32,
    legend: &Legend,
) -> RgbImage {
    let body = grid(rows, column_titles, row_labels, zoom);
    // The column positions, as `grid` computes them.
    let zoom = zoom.max(1);
    let tile_w = rows.iter().flatten().map(RgbImage::width).max().unwrap_or(0) * zoom;
    let tile_h = rows.iter().flatten().map(RgbImage::height).max().unwrap_or(0) * zoom;
    let fits = |s| column_titles.iter().all(|t| text_width(t, s) <= tile_w);
    let scale = if tile_h >= 64 && fits(2) { 2 } else { 1 };
    let label_w = match row_labels.iter().any(|t| !t.is_empty()) {
        true => row_labels.iter().map(|l| text_width(l, scale)).max().unwrap_or(0) + PAD,
        false => 0,
    };
    let col_x = |c: u32| PAD + label_w + c * (tile_w + PAD);
    let line = text_height(1);
    let top = PAD + line;
    let has_bars = legend.bars.iter().any(Option::is_some);
    let bottom = if has_bars { BAR_H + 2 + line + PAD } else { 0 };
    let width = body.width().max(2 * PAD + text_width(&legend.title, 1));
    let mut out = RgbImage::from_pixel(width, top + body.height() + bottom, Rgb([255, 255, 255]));
    draw_text(&mut out, PAD as i32, PAD as i32, &legend.title, 1, BLACK);
    image::imageops::replace(&mut out, &body, 0, i64::from(top));
    let y = top + body.height();
    for (c, bar) in legend.bars.iter().enumerate() {
        let Some((lo, hi)) = bar else { continue };
        let x0 = col_x(c as u32);
        for dx in 0..tile_w {
            let [r, g, b] = crate::figure::jet(dx as f32 / (tile_w.max(2) - 1) as f32);
            for dy in 0..BAR_H {
                if x0 + dx < out.width() {
                    out.put_pixel(x0 + dx, y + dy, Rgb([r, g, b]));
                }
            }
        }
        let ty = (y + BAR_H + 2) as i32;
        draw_text(&mut out, x0 as i32, ty, lo, 1, BLACK);
        draw_text(&mut out, (x0 + tile_w) as i32 - text_width(hi, 1) as i32, ty, hi, 1, BLACK);
    }
    out
}

/// A heatmap value for a colour bar's label: 3 significant digits.
pub fn value_label(v: f32) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_string()
    } else if !(0.01..1000.0).contains(&a) {
        format!("{v:.2e}")
    } else {
        format!("{:.*}", (2 - a.log10().floor() as i32).max(0) as usize, v)
    }
}
