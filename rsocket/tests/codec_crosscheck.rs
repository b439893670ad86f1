//! Our frame codec against `rsocket_rust`'s (0.7.5), both ways: what one encodes the other decodes
//! and re-encodes to the same bytes.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hodi_rsocket::frame::{Body, Frame, Setup};
use hodi_rsocket::Payload;
use rsocket_rust::frame as theirs;
use rsocket_rust::utils::Writeable;

fn p(meta: Option<&'static str>, data: &'static str) -> Payload {
    Payload { metadata: meta.map(|m| Bytes::from_static(m.as_bytes())), data: Bytes::from_static(data.as_bytes()) }
}

fn ours() -> Vec<Frame> {
    vec![
        Frame::new(
            0,
            Body::Setup(Setup {
                major_version: 1,
                minor_version: 0,
                keepalive_interval: 1000,
                max_lifetime: 60000,
                resume_token: Some(Bytes::from_static(b"token")),
                lease: false,
                metadata_mime: "application/json".into(),
                data_mime: "application/octet-stream".into(),
                payload: p(Some("{\"agent\":\"x\"}"), "setup-data"),
            }),
        ),
        Frame::new(0, Body::Keepalive { respond: true, last_position: 42, data: Bytes::from_static(b"ka") }),
        Frame::new(1, Body::RequestResponse { follows: false, payload: p(Some("meta"), "data") }),
        Frame::new(3, Body::RequestResponse { follows: false, payload: p(None, "only-data") }),
        Frame::new(5, Body::RequestFnf { follows: false, payload: p(Some("m"), "fnf") }),
        Frame::new(7, Body::RequestStream { follows: false, initial_n: 16, payload: p(None, "stream") }),
        Frame::new(
            9,
            Body::RequestChannel { follows: false, complete: false, initial_n: 4, payload: p(Some("c"), "channel") },
        ),
        Frame::new(9, Body::RequestN { n: 100 }),
        Frame::new(11, Body::Cancel),
        Frame::new(2, Body::Payload { follows: false, complete: true, next: true, payload: p(None, "reply") }),
        Frame::new(4, Body::Payload { follows: false, complete: false, next: true, payload: p(Some("pm"), "item") }),
        Frame::error(0, 0x003, "rejected: invalid API key"),
        Frame::error(13, 0x201, "application error"),
        Frame::new(0, Body::MetadataPush { metadata: Bytes::from_static(b"push") }),
        Frame::new(0, Body::Lease { ttl: 1000, requests: 10, metadata: None }),
        Frame::new(0, Body::ResumeOk { last_received_client_position: 77 }),
    ]
}

#[test]
fn rsocket_rust_decodes_and_reencodes_our_frames_identically() {
    for frame in ours() {
        let bytes = frame.to_bytes().expect("encode");
        let mut buf = BytesMut::from(&bytes[..]);
        let decoded =
            theirs::Frame::decode(&mut buf).unwrap_or_else(|e| panic!("rsocket_rust rejected {frame:?}: {e}"));
        assert_eq!(decoded.get_stream_id(), frame.stream_id);
        assert_eq!(Bytes::from(decoded.bytes()), bytes, "re-encoding of {frame:?}");
    }
}

#[test]
fn we_decode_and_reencode_rsocket_rust_frames_identically() {
    let frames = vec![
        theirs::Setup::builder(0, 0)
            .set_keepalive(Duration::from_secs(20))
            .set_lifetime(Duration::from_secs(90))
            .set_mime_metadata("application/json")
            .set_mime_data("application/octet-stream")
            .set_metadata(Bytes::from_static(b"{}"))
            .set_data(Bytes::from_static(b"hello"))
            .build(),
        theirs::Keepalive::builder(0, theirs::Frame::FLAG_RESPOND)
            .set_last_received_position(9)
            .set_data(Bytes::from_static(b"k"))
            .build(),
        theirs::RequestResponse::builder(1, 0)
            .set_metadata(Bytes::from_static(b"m"))
            .set_data(Bytes::from_static(b"d"))
            .build(),
        theirs::RequestFNF::builder(3, 0).set_data(Bytes::from_static(b"fnf")).build(),
        theirs::RequestStream::builder(5, 0).set_initial_request_n(8).set_data(Bytes::from_static(b"s")).build(),
        theirs::RequestN::builder(5, 0).set_n(3).build(),
        theirs::Cancel::builder(5, 0).build(),
        theirs::Payload::builder(2, theirs::Frame::FLAG_NEXT | theirs::Frame::FLAG_COMPLETE)
            .set_data(Bytes::from_static(b"reply"))
            .build(),
        theirs::Error::builder(0, 0).set_code(0x101).set_data(Bytes::from_static(b"bad")).build(),
        theirs::MetadataPush::builder(0, theirs::Frame::FLAG_METADATA).set_metadata(Bytes::from_static(b"mp")).build(),
    ];
    for frame in frames {
        let bytes = Bytes::from(frame.bytes());
        let ours = Frame::decode(bytes.clone()).unwrap_or_else(|e| panic!("we rejected {frame:?}: {e}"));
        assert_eq!(ours.stream_id, frame.get_stream_id());
        assert_eq!(ours.to_bytes().expect("encode"), bytes, "re-encoding of {ours:?}");
    }
}
