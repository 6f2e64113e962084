//! `cargo fuzz run cli_method`: `METHOD --flag value …` as the CLI parses and builds it (see
//! `fuzz/harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::cli_method(data));
