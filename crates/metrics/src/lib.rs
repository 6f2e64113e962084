//! # candle-explain-metrics
//!
//! Faithfulness metrics for attributions (Sensitivity-n, deletion / insertion curves,
//! ROAR / KAR, sanity checks, IG axiom checks, Taylor-interaction allocation errors),
//! batched on the device.
//!
//! Not implemented yet: this crate is the workspace slot for the metrics issue. The
//! perturbation building blocks it will use (device-side masks, the memory-budgeted
//! chunker) live in `candle-explain-core` (`Batching`, `methods::Occlusion`,
//! `methods::ShapleyValues`).
