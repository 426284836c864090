//! Colours: the palette that tells series apart, and a jet-like map for heatmaps.

/// Series colours (the Tableau 10 palette): distinct from each other and readable on white.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],  // blue
    [255, 127, 14],  // orange
    [44, 160, 44],   // green
    [214, 39, 40],   // red
    [148, 103, 189], // purple
    [140, 86, 75],   // brown
    [227, 119, 194], // pink
    [127, 127, 127], // grey
    [188, 189, 34],  // olive
    [23, 190, 207],  // cyan
];

/// The colour of series number `i`; the palette repeats after ten series (the plot also varies
/// the marker shape, so repeats stay distinguishable).
pub fn series_colour(i: usize) -> [u8; 3] {
    PALETTE[i % PALETTE.len()]
}

/// A jet-like colour map: dark blue at 0, through blue, cyan, green-ish at 0.5, yellow and red,
/// to dark red at 1. `v` is clamped to 0..=1; NaN maps to black.
pub fn jet(v: f32) -> [u8; 3] {
    if v.is_nan() {
        return [0, 0, 0];
    }
    let v = v.clamp(0.0, 1.0);
    let channel = |centre: f32| {
        let c = (1.5 - (4.0 * v - centre).abs()).clamp(0.0, 1.0);
        (c * 255.0).round() as u8
    };
    [channel(3.0), channel(2.0), channel(1.0)]
}
