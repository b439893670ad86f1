//! RTP datagrams, each after a two-byte big-endian length as a peer's packets would arrive: each
//! parses or is refused, and the receiver counts the stream (loss, jitter, SSRC changes, key
//! presses) whatever its sequence numbers, timestamps and telephone events.
//! The assertion lives in `fuzz/checks.rs`, shared with `tests/fuzz_corpora.rs`.
#![no_main]

#[allow(dead_code)] // each target uses one check of the shared file
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::rtp(data));
