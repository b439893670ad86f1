//! A SIP datagram parses or is refused; a request that parses can be answered (the listener
//! builds responses from whatever it parsed).
//! The assertion lives in `fuzz/checks.rs`, shared with `tests/fuzz_corpora.rs`.
#![no_main]

#[allow(dead_code)] // each target uses one check of the shared file
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sip_message(data));
