//! A simulator socket's request payload decodes and parses into a command, or is refused.
//! The assertion lives in `fuzz/checks.rs`, shared with `tests/fuzz_corpora.rs`.
#![no_main]

#[allow(dead_code)] // each target uses one check of the shared file
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::simulator_command(data));
