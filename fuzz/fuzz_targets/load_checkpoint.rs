//! `cargo fuzz run load_checkpoint`: safetensors + config.json + tokenizer.json (see
//! `fuzz/harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::load_checkpoint(data));
