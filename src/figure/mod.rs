//! Pictures a person would rather look at than read: plots (and, later, heatmap figures).
