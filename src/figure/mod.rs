//! Pictures a person would rather look at than read: plots (and, later, heatmap figures).
//!
//! [`plot`] draws line charts (training curves: loss, accuracy) into an [`image::RgbImage`]
//! with nothing but the `image` crate: the text comes from the bitmap font in [`font`], the
//! colours from [`colour`], the axis ticks from [`ticks`]. [`save_png`] writes the result.

pub mod colour;
pub mod font;
pub mod ticks;

pub use colour::{jet, series_colour};
pub use font::{draw_text, draw_text_up, text_width};
pub use ticks::{nice_ticks, tick_labels};

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use image::{GenericImage, ImageFormat, Rgb, RgbImage};

use font::{ADVANCE, text_height};

/// One line on a panel: `(x, y)` points drawn in the order given. Points with a NaN or infinite
/// coordinate are left out (the line joins the finite points either side of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Shown in the legend; a series with an empty label has no legend entry.
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, axis labels and the series drawn on shared axes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Draws `panels` side by side (say loss | accuracy), each `width_per_panel` x `height` pixels,
/// on white.
///
/// Each panel gets a frame, light grid lines at round tick values (1-2-5 steps) with labels, its
/// title, its axis labels and a legend placed in the corner where it hides the least data. Series
/// get distinct colours and marker shapes; points are marked when there are few enough of them
/// to tell apart. Nothing panics on odd input: no panels gives a blank `width_per_panel` x
/// `height` image, empty panels show "no data", a single point or a constant series gets an axis
/// around its value, non-finite points are skipped, and panels too small for a chart stay blank.
pub fn plot(panels: &[Panel], width_per_panel: u32, height: u32) -> RgbImage {
    let count = panels.len().max(1) as u32;
    let mut img = RgbImage::from_pixel(width_per_panel.saturating_mul(count), height, BACKGROUND);
    for (i, panel) in panels.iter().enumerate() {
        let mut sub = RgbImage::from_pixel(width_per_panel, height, BACKGROUND);
        draw_panel(&mut sub, panel, &[]);
        img.copy_from(&sub, i as u32 * width_per_panel, 0).expect("each panel fits its slot");
    }
    img
}

/// A shaded band per series: `(x, low, high)` points, drawn under the
/// series of the same index in a light tint of its colour (say the min..max
/// of several runs around their mean).
pub type Band = Vec<(f64, f64, f64)>;

/// One panel, `width` x `height`, like [`plot`], with `bands[i]` shaded
/// under series `i` (fewer bands than series is fine; the axes cover them).
pub fn plot_with_bands(panel: &Panel, bands: &[Band], width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, BACKGROUND);
    draw_panel(&mut img, panel, bands);
    img
}

/// Writes `img` to `path` as PNG, atomically: the bytes go to a temporary file in the same
/// directory, which is synced and then renamed over `path`, so readers never see half a file.
pub fn save_png(img: &RgbImage, path: &Path) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.{}-{}.tmp", name.to_string_lossy(), std::process::id(), unique));
    let result = (|| {
        let mut writer = BufWriter::new(File::create(&tmp)?);
        img.write_to(&mut writer, ImageFormat::Png).map_err(io::Error::other)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([34, 34, 34]);
const FRAME: Rgb<u8> = Rgb([90, 90, 90]);
const GRID: Rgb<u8> = Rgb([232, 232, 232]);
const LEGEND_EDGE: Rgb<u8> = Rgb([200, 200, 200]);
const MUTED: Rgb<u8> = Rgb([140, 140, 140]);

/// Height of digits and capitals (font rows 0..=6), for centring labels on tick marks.
const CAP_ROWS: i32 = 7;
/// Series with more finite points than this are drawn as bare lines, without markers.
const MAX_MARKED_POINTS: usize = 60;

/// Everything that scales with the text size.
#[derive(Clone, Copy)]
struct Metrics {
    s: i32,
    text_h: i32,
    gap: i32,
    outer: i32,
    tick_len: i32,
    line_w: f32,
    marker_r: f32,
}

impl Metrics {
    fn for_panel(w: i32, h: i32) -> Metrics {
        let s = if w >= 420 && h >= 300 { 2 } else { 1 };
        Metrics {
            s,
            text_h: text_height(s as u32) as i32,
            gap: 4 * s,
            outer: 8 * s,
            tick_len: 3 * s,
            line_w: 1.25 * s as f32 + 0.25,
            marker_r: 2.25 * s as f32 + 0.5,
        }
    }

    fn width(&self, text: &str) -> i32 {
        text_width(text, self.s as u32) as i32
    }
}

/// Where the data go: the frame's inside, and the data range mapped onto it.
struct Axes {
    left: i32,
    top: i32,
    right: i32,
    bottom: i32,
    pad: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Axes {
    fn px(&self, x: f64) -> f64 {
        let span = (self.right - self.left) as f64 - 2.0 * self.pad;
        self.left as f64 + self.pad + fraction(x, self.x) * span
    }

    fn py(&self, y: f64) -> f64 {
        let span = (self.bottom - self.top) as f64 - 2.0 * self.pad;
        self.bottom as f64 - self.pad - fraction(y, self.y) * span
    }
}

/// Where `v` lies in `range`, 0 at its start and 1 at its end; halving first keeps the
/// differences finite even for a range as wide as f64 allows.
fn fraction(v: f64, (lo, hi): (f64, f64)) -> f64 {
    (v / 2.0 - lo / 2.0) / (hi / 2.0 - lo / 2.0)
}

fn draw_panel(img: &mut RgbImage, panel: &Panel, bands: &[Band]) {
    let (w, h) = (img.width().min(i32::MAX as u32) as i32, img.height().min(i32::MAX as u32) as i32);
    let m = Metrics::for_panel(w, h);
    let finite: Vec<Vec<(f64, f64)>> = panel
        .series
        .iter()
        .map(|s| s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect())
        .collect();
    let bands: Vec<Band> = bands
        .iter()
        .map(|b| b.iter().copied().filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite()).collect())
        .collect();
    let band_points: Vec<(f64, f64)> = bands.iter().flatten().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]).collect();
    let all = finite.iter().flatten().chain(band_points.iter());
    let (x_lo, x_hi) = all.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y_lo, y_hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let has_data = x_lo <= x_hi;
    let (x_lo, x_hi, y_lo, y_hi) = if has_data { (x_lo, x_hi, y_lo, y_hi) } else { (0.0, 1.0, 0.0, 1.0) };

    // Vertical layout first: it does not depend on any tick label.
    let top = if panel.title.is_empty() { m.outer + m.text_h / 2 } else { m.outer + m.text_h + 2 * m.gap };
    let x_label_h = if panel.x_label.is_empty() { 0 } else { m.text_h + m.gap };
    let bottom = h - (m.tick_len + m.gap + m.text_h + x_label_h + m.outer);
    if bottom - top < 4 * m.text_h {
        return; // No room for a chart.
    }
    let y_budget = ((bottom - top) / (m.text_h * 5 / 2)).clamp(3, 10) as usize;
    let y_ticks = nice_ticks(y_lo, y_hi, y_budget);
    let y_labels = tick_labels(&y_ticks);

    // Then horizontal: the y tick labels and the y-axis title set the left margin, the last x
    // tick label (centred on the frame's right edge) the right one.
    let y_label_w = y_labels.iter().map(|l| m.width(l)).max().unwrap_or(0);
    let y_title_w = if panel.y_label.is_empty() { 0 } else { m.text_h + m.gap };
    let left = m.outer + y_title_w + y_label_w + m.gap + m.tick_len;
    let mut right = w - m.outer;
    let mut x_ticks = Vec::new();
    let mut x_labels = Vec::new();
    for _ in 0..2 {
        (x_ticks, x_labels) = fit_x_ticks(&m, x_lo, x_hi, right - left);
        let last_half = x_labels.last().map_or(0, |l| m.width(l) / 2);
        right = w - m.outer.max(last_half + m.s);
    }
    if right - left < 4 * m.text_h {
        return;
    }
    let axes = Axes {
        left,
        top,
        right,
        bottom,
        pad: (4 * m.s) as f64 + m.marker_r as f64,
        x: range_of(&x_ticks),
        y: range_of(&y_ticks),
    };

    // Grid, frame, ticks and their labels.
    for &t in &y_ticks {
        let y = axes.py(t).round() as i32;
        hline(img, left + 1, right - 1, y, GRID);
        hline(img, left - m.tick_len, left - 1, y, FRAME);
    }
    for &t in &x_ticks {
        let x = axes.px(t).round() as i32;
        vline(img, x, top + 1, bottom - 1, GRID);
        vline(img, x, bottom + 1, bottom + m.tick_len, FRAME);
    }
    frame(img, left, top, right, bottom, FRAME);
    for (t, label) in y_ticks.iter().zip(&y_labels) {
        let y = axes.py(*t).round() as i32 - CAP_ROWS * m.s / 2;
        let x = left - m.tick_len - m.gap - m.width(label);
        draw_text(img, x, y, label, m.s as u32, INK);
    }
    let x_label_top = bottom + m.tick_len + m.gap;
    for (t, label) in x_ticks.iter().zip(&x_labels) {
        let lw = m.width(label);
        let x = (axes.px(*t).round() as i32 - lw / 2).clamp(0, (w - lw).max(0));
        draw_text(img, x, x_label_top, label, m.s as u32, INK);
    }

    // Titles.
    let centre_x = (left + right) / 2;
    if !panel.title.is_empty() {
        let title = fit(&m, &panel.title, w - 2 * m.outer);
        let x = (centre_x - m.width(&title) / 2).min(w - m.outer - m.width(&title)).max(0);
        draw_text(img, x, m.outer, &title, m.s as u32, INK);
        if m.s >= 2 {
            draw_text(img, x + 1, m.outer, &title, m.s as u32, INK); // faux bold
        }
    }
    if !panel.x_label.is_empty() {
        let label = fit(&m, &panel.x_label, w - 2 * m.outer);
        let x = (centre_x - m.width(&label) / 2).clamp(0, (w - m.width(&label)).max(0));
        draw_text(img, x, x_label_top + m.text_h + m.gap, &label, m.s as u32, INK);
    }
    if !panel.y_label.is_empty() {
        let label = fit(&m, &panel.y_label, bottom - top);
        let y = (top + bottom) / 2 - m.width(&label) / 2;
        draw_text_up(img, m.outer, y, &label, m.s as u32, INK);
    }

    // The data, then the legend over it.
    let mut canvas = Canvas::new(left + 1, top + 1, right - left - 1, bottom - top - 1);
    if has_data {
        for (i, band) in bands.iter().enumerate() {
            let [r, g, b] = series_colour(i);
            let tint = |c: u8| (255.0 - 0.18 * (255.0 - c as f64)).round() as u8;
            shade_band(img, &axes, band, Rgb([tint(r), tint(g), tint(b)]));
        }
        for (i, points) in finite.iter().enumerate() {
            canvas.clear();
            let pixels: Vec<(f32, f32)> = points.iter().map(|&(x, y)| (axes.px(x) as f32, axes.py(y) as f32)).collect();
            for pair in pixels.windows(2) {
                canvas.segment(pair[0], pair[1], m.line_w / 2.0);
            }
            if marked(points) {
                for &p in &pixels {
                    canvas.marker(p, m.marker_r, Marker::of_series(i));
                }
            }
            canvas.paint(img, Rgb(series_colour(i)));
        }
    } else {
        let text = "no data";
        draw_text(img, centre_x - m.width(text) / 2, (top + bottom) / 2 - CAP_ROWS * m.s / 2, text, m.s as u32, MUTED);
    }
    draw_legend(img, &m, &axes, panel, &finite, &canvas);
}

/// Picks x ticks for a plot `width` pixels wide: as many as fit with their labels at least three
/// characters apart, up to ten.
fn fit_x_ticks(m: &Metrics, lo: f64, hi: f64, width: i32) -> (Vec<f64>, Vec<String>) {
    let min_gap = 3 * ADVANCE as i32 * m.s;
    let mut budget = (width / (6 * ADVANCE as i32 * m.s)).clamp(3, 10) as usize;
    loop {
        let ticks = nice_ticks(lo, hi, budget);
        let labels = tick_labels(&ticks);
        let span = (ticks.len().max(2) - 1) as i32;
        let spacing = width / span;
        let widest = labels.iter().map(|l| m.width(l)).max().unwrap_or(0);
        if spacing >= widest + min_gap || budget <= 3 {
            return (ticks, labels);
        }
        budget -= 1;
    }
}

/// The axis range the ticks span, never empty.
fn range_of(ticks: &[f64]) -> (f64, f64) {
    match (ticks.first(), ticks.last()) {
        (Some(&a), Some(&b)) if b > a => (a, b),
        (Some(&a), _) => (a - 1.0, a + 1.0),
        _ => (0.0, 1.0),
    }
}

/// `text`, cut short with "..." if it is wider than `max_w` pixels.
fn fit(m: &Metrics, text: &str, max_w: i32) -> String {
    if m.width(text) <= max_w {
        return text.to_string();
    }
    let mut out: String = text.chars().collect();
    while !out.is_empty() && m.width(&out) + m.width("...") > max_w {
        out.pop();
    }
    let out = out.trim_end().to_string();
    if out.is_empty() { String::new() } else { out + "..." }
}

/// Whether a series' points get markers (the legend follows suit): not when they would crowd.
fn marked(finite_points: &[(f64, f64)]) -> bool {
    finite_points.len() <= MAX_MARKED_POINTS
}

fn draw_legend(
    img: &mut RgbImage,
    m: &Metrics,
    axes: &Axes,
    panel: &Panel,
    finite: &[Vec<(f64, f64)>],
    canvas: &Canvas,
) {
    let mut entries: Vec<(usize, &str)> = panel
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.label.is_empty())
        .map(|(i, s)| (i, s.label.as_str()))
        .collect();
    if entries.is_empty() {
        return;
    }
    let pad = 2 * m.gap;
    let row_h = m.text_h + m.gap;
    let swatch = 5 * ADVANCE as i32 * m.s;
    let inset = 2 * m.gap;
    // At most two thirds of the plot's height, so some data always shows.
    let max_rows = (((axes.bottom - axes.top) * 2 / 3 - 2 * pad + m.gap) / row_h).max(0) as usize;
    let mut more = 0;
    if entries.len() > max_rows {
        more = entries.len() + 1 - max_rows.max(1);
        entries.truncate(max_rows.saturating_sub(1));
    }
    let max_text = ((axes.right - axes.left) * 3 / 5 - 2 * pad - swatch - m.gap).max(m.width("..."));
    let labels: Vec<String> = entries.iter().map(|(_, l)| fit(m, l, max_text)).collect();
    let more_text = format!("({more} more)");
    let text_w = labels.iter().map(|l| m.width(l)).chain((more > 0).then(|| m.width(&more_text))).max().unwrap_or(0);
    let rows = labels.len() as i32 + i32::from(more > 0);
    let box_w = pad + swatch + m.gap + text_w + pad;
    let box_h = pad + rows * row_h - m.gap + pad;

    // The corner whose box covers the least ink; ties go to the first in this order.
    let corners = [
        (axes.right - inset - box_w, axes.top + inset),
        (axes.left + inset, axes.top + inset),
        (axes.right - inset - box_w, axes.bottom - inset - box_h),
        (axes.left + inset, axes.bottom - inset - box_h),
    ];
    let (bx, by) = corners
        .iter()
        .copied()
        .min_by(|a, b| canvas.ink(a.0, a.1, box_w, box_h).total_cmp(&canvas.ink(b.0, b.1, box_w, box_h)))
        .expect("four corners");

    fill(img, bx, by, box_w, box_h, BACKGROUND);
    frame(img, bx, by, bx + box_w - 1, by + box_h - 1, LEGEND_EDGE);
    let mut sample = Canvas::new(bx, by, box_w, box_h);
    for (row, ((i, _), label)) in entries.iter().zip(&labels).enumerate() {
        let y = by + pad + row as i32 * row_h;
        let mid = y as f32 + (CAP_ROWS * m.s) as f32 / 2.0;
        let x0 = (bx + pad) as f32;
        sample.clear();
        sample.segment((x0, mid), (x0 + swatch as f32, mid), m.line_w / 2.0);
        if marked(&finite[*i]) {
            sample.marker((x0 + swatch as f32 / 2.0, mid), m.marker_r, Marker::of_series(*i));
        }
        sample.paint(img, Rgb(series_colour(*i)));
        draw_text(img, bx + pad + swatch + m.gap, y, label, m.s as u32, INK);
    }
    if more > 0 {
        let y = by + pad + labels.len() as i32 * row_h;
        draw_text(img, bx + pad + swatch + m.gap, y, &more_text, m.s as u32, MUTED);
    }
}

#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
}

impl Marker {
    fn of_series(i: usize) -> Marker {
        [Marker::Circle, Marker::Square, Marker::TriangleUp, Marker::Diamond][i % 4]
    }

    /// Whether the offset (`dx`, `dy`) from the centre is inside a marker of radius `r`.
    fn contains(self, dx: f32, dy: f32, r: f32) -> bool {
        match self {
            Marker::Circle => dx * dx + dy * dy <= r * r,
            Marker::Square => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
            Marker::Diamond => dx.abs() + dy.abs() <= r * 1.25,
            Marker::TriangleUp => {
                // Apex at the top, base below the centre; sized to look as heavy as the circle.
                let (top, base) = (-r * 1.2, r * 0.8);
                dy >= top && dy <= base && dx.abs() <= (dy - top) / (base - top) * r * 1.15
            }
        }
    }
}

/// Anti-aliased coverage for one colour over a rectangle of the image: shapes raise each
/// pixel's coverage (taking the maximum, so overlaps within one series do not darken), then
/// [`Canvas::paint`] blends the colour in. `ink` keeps the maximum over everything painted.
struct Canvas {
    x0: i32,
    y0: i32,
    w: i32,
    h: i32,
    cover: Vec<f32>,
    ink: Vec<f32>,
}

impl Canvas {
    fn new(x0: i32, y0: i32, w: i32, h: i32) -> Canvas {
        let (w, h) = (w.max(0), h.max(0));
        let n = w as usize * h as usize;
        Canvas { x0, y0, w, h, cover: vec![0.0; n], ink: vec![0.0; n] }
    }

    fn clear(&mut self) {
        self.cover.fill(0.0);
    }

    /// Pixel range (relative to the canvas) covering image coordinates `lo..=hi` on one axis.
    fn span(lo: f32, hi: f32, origin: i32, len: i32) -> std::ops::Range<i32> {
        let a = (lo.floor() as i32).saturating_sub(origin).clamp(0, len);
        let b = (hi.ceil() as i32).saturating_add(1).saturating_sub(origin).clamp(0, len);
        a..b
    }

    fn raise(&mut self, cx: i32, cy: i32, c: f32) {
        let i = cy as usize * self.w as usize + cx as usize;
        if c > self.cover[i] {
            self.cover[i] = c;
        }
    }

    /// A line from `a` to `b` (image coordinates) of half-width `hw`, with round ends.
    fn segment(&mut self, a: (f32, f32), b: (f32, f32), hw: f32) {
        let reach = hw + 1.0;
        let xs = Canvas::span(a.0.min(b.0) - reach, a.0.max(b.0) + reach, self.x0, self.w);
        let ys = Canvas::span(a.1.min(b.1) - reach, a.1.max(b.1) + reach, self.y0, self.h);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for cy in ys {
            for cx in xs.clone() {
                let px = (self.x0 + cx) as f32 + 0.5;
                let py = (self.y0 + cy) as f32 + 0.5;
                let t = if len2 > 0.0 { (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                let (ex, ey) = (px - (a.0 + t * dx), py - (a.1 + t * dy));
                let c = (hw + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0);
                if c > 0.0 {
                    self.raise(cx, cy, c);
                }
            }
        }
    }

    /// A filled marker centred on `c`, anti-aliased by 4x4 supersampling.
    fn marker(&mut self, c: (f32, f32), r: f32, shape: Marker) {
        let reach = r * 1.3 + 1.0;
        let xs = Canvas::span(c.0 - reach, c.0 + reach, self.x0, self.w);
        let ys = Canvas::span(c.1 - reach, c.1 + reach, self.y0, self.h);
        for cy in ys {
            for cx in xs.clone() {
                let mut hits = 0;
                for sy in 0..4 {
                    for sx in 0..4 {
                        let px = (self.x0 + cx) as f32 + (sx as f32 + 0.5) / 4.0;
                        let py = (self.y0 + cy) as f32 + (sy as f32 + 0.5) / 4.0;
                        hits += i32::from(shape.contains(px - c.0, py - c.1, r));
                    }
                }
                if hits > 0 {
                    self.raise(cx, cy, hits as f32 / 16.0);
                }
            }
        }
    }

    /// Blends `colour` into `img` by the coverage, and adds the coverage to the ink record.
    fn paint(&mut self, img: &mut RgbImage, colour: Rgb<u8>) {
        for cy in 0..self.h {
            for cx in 0..self.w {
                let i = cy as usize * self.w as usize + cx as usize;
                let a = self.cover[i];
                if a <= 0.0 {
                    continue;
                }
                self.ink[i] = self.ink[i].max(a);
                let (x, y) = (self.x0 + cx, self.y0 + cy);
                if x < 0 || y < 0 || x as u32 >= img.width() || y as u32 >= img.height() {
                    continue;
                }
                let p = img.get_pixel_mut(x as u32, y as u32);
                for k in 0..3 {
                    p.0[k] = (p.0[k] as f32 * (1.0 - a) + colour.0[k] as f32 * a).round() as u8;
                }
            }
        }
    }

    /// Total ink under the rectangle at (`x`, `y`), image coordinates.
    fn ink(&self, x: i32, y: i32, w: i32, h: i32) -> f32 {
        let mut total = 0.0;
        for cy in (y - self.y0).max(0)..(y + h - self.y0).min(self.h) {
            for cx in (x - self.x0).max(0)..(x + w - self.x0).min(self.w) {
                total += self.ink[cy as usize * self.w as usize + cx as usize];
            }
        }
        total
    }
}

fn hline(img: &mut RgbImage, x0: i32, x1: i32, y: i32, colour: Rgb<u8>) {
    fill(img, x0, y, x1 - x0 + 1, 1, colour);
}

fn vline(img: &mut RgbImage, x: i32, y0: i32, y1: i32, colour: Rgb<u8>) {
    fill(img, x, y0, 1, y1 - y0 + 1, colour);
}

/// The outline of the rectangle with corners (`x0`, `y0`) and (`x1`, `y1`), both included.
fn frame(img: &mut RgbImage, x0: i32, y0: i32, x1: i32, y1: i32, colour: Rgb<u8>) {
    hline(img, x0, x1, y0, colour);
    hline(img, x0, x1, y1, colour);
    vline(img, x0, y0, y1, colour);
    vline(img, x1, y0, y1, colour);
}

fn fill(img: &mut RgbImage, x: i32, y: i32, w: i32, h: i32, colour: Rgb<u8>) {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    let (x0, x1) = ((x as i64).clamp(0, iw), (x as i64 + w as i64).clamp(0, iw));
    let (y0, y1) = ((y as i64).clamp(0, ih), (y as i64 + h as i64).clamp(0, ih));
    for py in y0..y1 {
        for px in x0..x1 {
            img.put_pixel(px as u32, py as u32, colour);
        }
    }
}

/// Fills the area between a band's low and high lines, column by column
/// inside the frame, with `colour` (mixed with what is there, so that
/// overlapping bands both show).
fn shade_band(img: &mut RgbImage, axes: &Axes, band: &[(f64, f64, f64)], colour: Rgb<u8>) {
    for pair in band.windows(2) {
        let ((x0, lo0, hi0), (x1, lo1, hi1)) = (pair[0], pair[1]);
        let (px0, px1) = (axes.px(x0), axes.px(x1));
        if px1.partial_cmp(&px0) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let start = (px0.round() as i32).max(axes.left + 1);
        let end = (px1.round() as i32).min(axes.right - 1);
        for x in start..=end {
            let t = ((x as f64 - px0) / (px1 - px0)).clamp(0.0, 1.0);
            let (lo, hi) = (lo0 + t * (lo1 - lo0), hi0 + t * (hi1 - hi0));
            let (ya, yb) = (axes.py(hi).round() as i32, axes.py(lo).round() as i32);
            for y in ya.max(axes.top + 1)..=yb.min(axes.bottom - 1) {
                if x < 0 || y < 0 || x as u32 >= img.width() || y as u32 >= img.height() {
                    continue;
                }
                let p = img.get_pixel_mut(x as u32, y as u32);
                for k in 0..3 {
                    p.0[k] = ((p.0[k] as u16 * colour.0[k] as u16) / 255) as u8;
                }
            }
        }
    }
}
