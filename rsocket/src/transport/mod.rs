//! Transports: how whole frames travel over a byte stream or a WebSocket.
//!
//! Owns framing only — the 3-byte length prefix of TCP/TLS ([`length_prefixed`]), one frame per
//! binary WebSocket message ([`websocket`]), and the TLS handshake with its timeout ([`tls`]). It
//! hands the connection layer a [`FrameIo`]: a stream of frame bytes in and a sink of frames out
//! (encoded directly into the write buffer). It never decodes a frame and knows nothing of streams
//! or requests.

pub mod length_prefixed;
pub mod tls;
pub mod websocket;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Sink, Stream};

use crate::frame::{EncodeError, Frame};

/// Frames in, as raw bytes, one item per frame.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;
/// Frames out, encoded by the transport straight into its write buffer.
pub type FrameSink = Pin<Box<dyn Sink<Frame, Error = TransportError> + Send>>;

/// One connection's frame-level I/O, ready for [`crate::connection`].
pub struct FrameIo {
    pub reader: FrameStream,
    pub writer: FrameSink,
    /// Where the peer is, for logs (`ip:port`).
    pub peer: String,
}

/// Why a transport could not carry a frame.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { size: usize, max: usize },
    #[error("websocket: {0}")]
    WebSocket(String),
    #[error("websocket text message: RSocket frames travel as binary messages")]
    TextMessage,
    #[error("tls handshake: {0}")]
    Tls(String),
    #[error("tls handshake did not finish within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    #[error("frame cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
}
