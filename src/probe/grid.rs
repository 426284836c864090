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
