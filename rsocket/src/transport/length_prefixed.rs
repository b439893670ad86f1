//! TCP and TLS framing: each frame preceded by its length as a 24-bit big-endian integer.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed};

use super::{FrameIo, TransportError};
use crate::frame::MAX_U24;

/// Splits a byte stream into frames and refuses any frame above `max_frame_size` as soon as its
/// length prefix arrives, before buffering its body.
#[derive(Debug, Clone, Copy)]
pub struct LengthPrefixedCodec {
    max_frame_size: usize,
}

impl LengthPrefixedCodec {
    pub fn new(max_frame_size: usize) -> Self {
        LengthPrefixedCodec {
            max_frame_size: max_frame_size.min(MAX_U24),
        }
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
            return Err(TransportError::FrameTooLarge {
                size: len,
                max: self.max_frame_size,
            });
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

impl Encoder<Bytes> for LengthPrefixedCodec {
    type Error = TransportError;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), TransportError> {
        if frame.len() > MAX_U24 {
            return Err(TransportError::FrameTooLarge {
                size: frame.len(),
                max: MAX_U24,
            });
        }
        dst.reserve(3 + frame.len());
        dst.put_u8((frame.len() >> 16) as u8);
        dst.put_u16((frame.len() & 0xFFFF) as u16);
        dst.put_slice(&frame);
        Ok(())
    }
}

/// Frames a TCP or TLS stream.
pub fn frame_io<S>(io: S, max_frame_size: usize, peer: String) -> FrameIo
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (writer, reader) = Framed::new(io, LengthPrefixedCodec::new(max_frame_size)).split();
    FrameIo {
        reader: Box::pin(reader),
        writer: Box::pin(writer.sink_map_err(|e| e)),
        peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_prefix_is_refused_before_the_body_arrives() {
        let mut codec = LengthPrefixedCodec::new(10);
        let mut buf = BytesMut::from(&[0u8, 0, 11][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::FrameTooLarge { size: 11, max: 10 })
        ));
    }

    #[test]
    fn frames_split_across_reads_are_reassembled() {
        let mut codec = LengthPrefixedCodec::new(100);
        let mut out = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"hello"), &mut out)
            .expect("encode");
        codec
            .encode(Bytes::from_static(b"!"), &mut out)
            .expect("encode");
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in out {
            buf.put_u8(byte);
            while let Some(frame) = codec.decode(&mut buf).expect("decode") {
                got.push(frame);
            }
        }
        assert_eq!(
            got,
            vec![Bytes::from_static(b"hello"), Bytes::from_static(b"!")]
        );
    }
}
