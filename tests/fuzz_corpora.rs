//! Replays every fuzz input kept in the repository — the seeds (`fuzz/seeds/<target>/`) and what
//! fuzzing runs found (`fuzz/corpus/<target>/`) — through the same check its fuzz target runs
//! (`fuzz/checks.rs`), so that a decoder change that panics on a known input fails
//! `./scripts/test`, not only a fuzzing session.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (kind, least) in [("seeds", 3), ("corpus", 10)] {
        let dir = root.join(kind).join(target);
        let mut inputs = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let caught = std::panic::catch_unwind(|| check(&data));
            assert!(caught.is_ok(), "{target}: {} panicked", path.display());
            inputs += 1;
        }
        // A folder that has lost its inputs would make this test pass while testing nothing.
        assert!(inputs >= least, "{target}: only {inputs} inputs in {}", dir.display());
    }
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

/// The hand-made seeds (`fuzz/seeds/write_seeds.py`) are real messages, so that fuzzing starts
/// deep inside each decoder rather than at its first refusal.
#[test]
fn hand_made_seeds_decode() {
    let seeds = |target: &str| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
        let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?.to_owned();
                let data = std::fs::read(&path).ok()?;
                name.starts_with("seed-").then_some((name, data))
            })
            .collect();
        found.sort();
        assert!(found.len() >= 4, "{target}: {} hand-made seeds", found.len());
        found
    };
    for (name, data) in seeds("frame_decode") {
        if name == "seed-length-prefixed-stream" {
            continue;
        }
        let frame = hodi_rsocket::Frame::decode(bytes::Bytes::from(data));
        assert!(frame.is_ok(), "frame_decode/{name}: {frame:?}");
    }
    for (name, data) in seeds("sip_message") {
        let parsed = hodi::voice::sip::message::parse(&data);
        assert!(parsed.is_ok(), "sip_message/{name}: {:?}", parsed.err());
    }
    let local = std::net::IpAddr::from([127, 0, 0, 1]);
    for name in ["seed-offer", "seed-hold", "seed-pcma-only"] {
        let (_, data) = seeds("sdp").into_iter().find(|(n, _)| n == name).expect(name);
        assert!(hodi::voice::sdp::read(&data, local).is_ok(), "sdp/{name}");
    }
    for (name, data) in seeds("rtp") {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let packet = hodi::voice::media::rtp::Packet::parse(&data[2..2 + len]);
        assert!(packet.is_some(), "rtp/{name}: first packet refused");
    }
}
