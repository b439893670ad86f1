//! Replays every fuzz input kept in the repository — the seeds (`fuzz/seeds/<target>/`) and what
//! fuzzing runs found (`fuzz/corpus/<target>/`) — through the same check its fuzz target runs
//! (`fuzz/checks.rs`), so that a decoder change that panics on a known input fails
//! `./scripts/test`, not only a fuzzing session.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Every input in `fuzz/<kind>/<target>/` (kind: `seeds` or `corpus`), by file name, sorted.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("input entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).expect("a file name").to_owned();
            (name, std::fs::read(&path).expect("input file"))
        })
        .collect();
    found.sort();
    found
}

fn replay(target: &str, check: fn(&[u8])) {
    for (kind, least) in [("seeds", 3), ("corpus", 10)] {
        let found = inputs(kind, target);
        for (name, data) in &found {
            let caught = std::panic::catch_unwind(|| check(data));
            assert!(caught.is_ok(), "{target}: fuzz/{kind}/{target}/{name} panicked");
        }
        // A folder that has lost its inputs would make this test pass while testing nothing.
        assert!(found.len() >= least, "{target}: only {} inputs in fuzz/{kind}", found.len());
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
        let found: Vec<_> = inputs("seeds", target).into_iter().filter(|(name, _)| name.starts_with("seed-")).collect();
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
    let sdp = seeds("sdp");
    for name in ["seed-offer", "seed-hold", "seed-pcma-only"] {
        let (_, data) = sdp.iter().find(|(n, _)| n == name).expect(name);
        assert!(hodi::voice::sdp::read(data, local).is_ok(), "sdp/{name}");
    }
    for (name, data) in seeds("rtp") {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let packet = hodi::voice::media::rtp::Packet::parse(&data[2..2 + len]);
        assert!(packet.is_some(), "rtp/{name}: first packet refused");
        if name == "seed-rtp-then-rtcp" {
            let second = &data[2 + len..];
            let rtcp_len = usize::from(u16::from_be_bytes([second[0], second[1]]));
            let reports = hodi::voice::media::rtcp::parse(&second[2..2 + rtcp_len]).expect("its RTCP compound parses");
            assert_eq!((reports.len(), reports[0].blocks.len()), (1, 1), "rtp/{name}: an SR with one block");
        }
    }
}
