//! Ops that candle lacks or does slowly, as candle custom ops with their own backward.
