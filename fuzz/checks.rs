//! What each fuzz target asserts about one input, shared by the fuzz targets (`fuzz_targets/`)
//! and by `tests/fuzz_corpora.rs`, which replays every corpus file in `./scripts/test` so that a
//! decoder change that panics on a known input fails an ordinary test run.
//!
//! The rule everywhere: input from a peer gives a value or an error, never a panic.

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tokio_util::codec::Decoder;

/// RSocket frames and the length-prefixed codec: what decodes re-encodes to the same frame.
pub fn frame_decode(data: &[u8]) {
    use hodi_rsocket::transport::length_prefixed::LengthPrefixedCodec;
    use hodi_rsocket::Frame;
    if let Ok(frame) = Frame::decode(Bytes::copy_from_slice(data)) {
        if let Ok(again) = frame.to_bytes() {
            assert_eq!(Frame::decode(again).ok(), Some(frame));
        }
    }
    let mut codec = LengthPrefixedCodec::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let _ = Frame::decode(frame);
    }
}

/// A SIP datagram parses or is refused; a request that parses can be answered (the listener
/// builds responses from whatever it parsed).
pub fn sip_message(data: &[u8]) {
    use hodi::voice::sip::message::{self, Message};
    if let Ok(Message::Request(req)) = message::parse(data) {
        let _ = req.response(400, "Bad Request", Some("fuzz"), &[], None);
        let _ = message::tag(&req.to);
        let _ = message::user(&req.from);
    }
}

/// An SDP body gives a media description or a reason.
pub fn sdp(data: &[u8]) {
    use hodi::voice::sdp;
    let local = std::net::IpAddr::from([127, 0, 0, 1]);
    if let Ok(media) = sdp::read(data, local) {
        let _ = sdp::reachable(&media, local);
    }
}

/// RTP datagrams, each after a two-byte big-endian length as a peer's packets would arrive: each
/// parses or is refused, and the receiver counts the stream (loss, jitter, SSRC changes, key
/// presses) whatever its sequence numbers, timestamps and telephone events.
pub fn rtp(data: &[u8]) {
    use hodi::voice::media::rtp::{Packet, Receiver, TelephoneEvent};
    let mut receiver = Receiver::default();
    let mut arrival = 0u32;
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, after) = tail.split_at(len);
        rest = after;
        // The RTP port also takes RTCP (multiplexed, RFC 5761): every datagram is read as
        // reports too; what parses writes back to reports that read the same.
        if let Some(reports) = hodi::voice::media::rtcp::parse(datagram) {
            for r in reports {
                let again = hodi::voice::media::rtcp::compound(r.ssrc, r.sender, r.blocks.first().copied(), "fuzz");
                let back = hodi::voice::media::rtcp::parse(&again).expect("our own reports parse");
                assert_eq!((back[0].ssrc, back[0].sender), (r.ssrc, r.sender));
            }
        }
        if let Some(packet) = Packet::parse(datagram) {
            arrival = arrival.wrapping_add(160);
            let _ = receiver.on_packet(&packet, arrival, Some(101));
            if let Some(event) = TelephoneEvent::parse(packet.payload) {
                let _ = event.digit();
                assert_eq!(TelephoneEvent::parse(&event.bytes()), Some(event));
            }
            let mut out = Vec::new();
            packet.write(&mut out);
            assert_eq!(Packet::parse(&out).map(|p| p.payload), Some(packet.payload));
        }
    }
}

/// An app socket's request payload decodes and parses into a command, or is refused.
pub fn app_command(data: &[u8]) {
    let raw = Bytes::copy_from_slice(data);
    if let Ok(command) = hodi::wire::AppToServerCommand::decode(raw.clone()) {
        let _ = hodi::command::AppCommand::from_proto(command, &raw);
    }
}

/// A simulator socket's request payload decodes and parses into a command, or is refused.
pub fn simulator_command(data: &[u8]) {
    if let Ok(command) = hodi::wire::SimulatorToServerCommand::decode(data) {
        let _ = hodi::command::SimulatorCommand::from_proto(command);
    }
}
