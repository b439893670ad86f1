//! Replays every fuzz corpus in `fuzz/corpus/<target>/` through the same check its fuzz target
//! runs (`fuzz/checks.rs`), so that a decoder change that panics on a known input — a seed or
//! anything a fuzzing run kept — fails `./scripts/test`, not only a fuzzing session.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let caught = std::panic::catch_unwind(|| check(&data));
        assert!(caught.is_ok(), "{target}: {} panicked", path.display());
        inputs += 1;
    }
    // A corpus that has lost its seeds would make this test pass while testing nothing.
    assert!(inputs >= 3, "{target}: only {inputs} inputs in {}", dir.display());
}

#[test]
fn rsocket_frames() {
    replay("frame_decode", checks::frame_decode);
}

#[test]
fn sip_messages() {
    replay("sip_message", checks::sip_message);
}

#[test]
fn sdp_bodies() {
    replay("sdp", checks::sdp);
}

#[test]
fn rtp_streams() {
    replay("rtp", checks::rtp);
}

#[test]
fn app_commands() {
    replay("app_command", checks::app_command);
}

#[test]
fn simulator_commands() {
    replay("simulator_command", checks::simulator_command);
}
