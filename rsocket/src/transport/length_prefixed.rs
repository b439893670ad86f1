//! TCP and TLS framing: each frame preceded by its length as a 24-bit big-endian integer.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed};

use super::{FrameIo, TransportError};
use crate::frame::{Frame, MAX_U24};

/// Splits a byte stream into frames and refuses any frame above `max_frame_size` as soon as its
/// length prefix arrives, before buffering its body.
#[derive(Debug, Clone, Copy)]
pub struct LengthPrefixedCodec {
    max_frame_size: usize,
}

impl LengthPrefixedCodec {
    pub fn new(max_frame_size: usize) -> Self {
        LengthPrefixedCodec { max_frame_size: max_frame_size.min(MAX_U24) }
    }
}

impl Decoder for LengthPrefixedCodec {
    type Item = Bytes;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TransportError> {
        if src.len() < 3 {
            return Ok(None);
        }
        let len = (usize::from(src[0]) << 16) | (usize::from(src[1]) << 8) | usize::from(src[2]);
        if len > self.max_frame_size {
            return Err(TransportError::FrameTooLarge { size: len, max: self.max_frame_size });
        }
        if src.len() < 3 + len {
            // Grow gradually: a peer that announces a large frame and then stalls must not make us
            // allocate it all up front.
            src.reserve((3 + len - src.len()).min(64 * 1024));
            return Ok(None);
        }
        src.advance(3);
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl Encoder<Frame> for LengthPrefixedCodec {
    type Error = TransportError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), TransportError> {
        let len = frame.encoded_len();
        if len > MAX_U24 {
            return Err(TransportError::FrameTooLarge { size: len, max: MAX_U24 });
        }
        dst.reserve(3 + len);
        dst.put_u8((len >> 16) as u8);
        dst.put_u16((len & 0xFFFF) as u16);
        frame.encode(dst)?;
        Ok(())
    }
}

/// Initial read and write buffer of a connection; they grow with traffic.
const BUFFER: usize = 2048;
/// The write buffer is flushed once it holds this much (or the writer runs out of queued frames).
const FLUSH_AT: usize = 8 * 1024;

/// Frames a TCP or TLS stream.
pub fn frame_io<S>(io: S, max_frame_size: usize, peer: String) -> FrameIo
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    // Buffers start small: most connections are idle most of the time, and tokio-util's 8 KiB
    // read and write buffers were half of what an idle connection cost. They grow with traffic.
    let mut framed = Framed::with_capacity(io, LengthPrefixedCodec::new(max_frame_size), BUFFER);
    // Small buffers, but frames still go out in writes of up to 8 KiB, as tokio-util's default.
    framed.set_backpressure_boundary(FLUSH_AT);
    let (writer, reader) = framed.split::<Frame>();
    FrameIo { reader: Box::pin(reader), writer: Box::pin(writer.sink_map_err(|e| e)), peer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_prefix_is_refused_before_the_body_arrives() {
        let mut codec = LengthPrefixedCodec::new(10);
        let mut buf = BytesMut::from(&[0u8, 0, 11][..]);
        assert!(matches!(codec.decode(&mut buf), Err(TransportError::FrameTooLarge { size: 11, max: 10 })));
    }

    #[test]
    fn frames_split_across_reads_are_reassembled() {
        let mut codec = LengthPrefixedCodec::new(100);
        let mut out = BytesMut::new();
        let a = Frame::new(1, crate::frame::Body::Cancel);
        let b = Frame::error(0, 1, "!");
        codec.encode(a.clone(), &mut out).expect("encode");
        codec.encode(b.clone(), &mut out).expect("encode");
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in out {
            buf.put_u8(byte);
            while let Some(frame) = codec.decode(&mut buf).expect("decode") {
                got.push(frame);
            }
        }
        assert_eq!(got, vec![a.to_bytes().expect("a"), b.to_bytes().expect("b")]);
    }
}
