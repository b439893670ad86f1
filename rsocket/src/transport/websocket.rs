//! WebSocket framing (`ws` and `wss`): one RSocket frame per binary message, no length prefix.

use futures_util::{future, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::{FrameIo, TransportError};
use crate::frame::Frame;

fn config(max_frame_size: usize) -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(max_frame_size)).max_frame_size(Some(max_frame_size))
}

fn ws_error(e: WsError, max: usize) -> TransportError {
    match e {
        // The same error as an oversize length-prefixed frame, so the connection answers it the
        // same way: ERROR on stream 0, then close.
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            TransportError::FrameTooLarge { size, max: max_size }
        }
        WsError::Capacity(c) => TransportError::WebSocket(format!("{c} (limit {max} bytes)")),
        WsError::Io(io) => TransportError::Io(io),
        other => TransportError::WebSocket(other.to_string()),
    }
}

fn into_frame_io<S>(ws: WebSocketStream<S>, max_frame_size: usize, peer: String) -> FrameIo
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let reader = stream.take_while(|msg| future::ready(!matches!(msg, Ok(Message::Close(_))))).filter_map(move |msg| {
        future::ready(match msg {
            Ok(Message::Binary(data)) => Some(Ok(data)),
            Ok(Message::Text(_)) => Some(Err(TransportError::TextMessage)),
            // Pings are answered by tungstenite itself; pongs and raw frames carry nothing for us.
            Ok(_) => None,
            Err(e) => Some(Err(ws_error(e, max_frame_size))),
        })
    });
    let writer = sink
        .sink_map_err(move |e| ws_error(e, max_frame_size))
        .with(|frame: Frame| future::ready(frame.to_bytes().map(Message::Binary).map_err(TransportError::from)));
    FrameIo { reader: Box::pin(reader), writer: Box::pin(writer), peer }
}

/// Server side: completes the HTTP upgrade on an accepted stream (plain or TLS).
pub async fn accept<S>(io: S, max_frame_size: usize, peer: String) -> Result<FrameIo, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = tokio_tungstenite::accept_async_with_config(io, Some(config(max_frame_size)))
        .await
        .map_err(|e| ws_error(e, max_frame_size))?;
    Ok(into_frame_io(ws, max_frame_size, peer))
}

/// Client side: performs the HTTP upgrade for `url` over an established stream.
pub async fn connect<S>(url: &str, io: S, max_frame_size: usize, peer: String) -> Result<FrameIo, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ws, _response) = tokio_tungstenite::client_async_with_config(url, io, Some(config(max_frame_size)))
        .await
        .map_err(|e| ws_error(e, max_frame_size))?;
    Ok(into_frame_io(ws, max_frame_size, peer))
}
