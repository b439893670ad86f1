//! Fuzzes the frame decoder and the length-prefixed transport codec: any input must give a frame
//! or an error, never a panic, and every decoded frame must re-encode to bytes that decode to it.
#![no_main]

use bytes::{Bytes, BytesMut};
use hodi_rsocket::transport::length_prefixed::LengthPrefixedCodec;
use hodi_rsocket::Frame;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
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
});
