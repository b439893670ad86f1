//! Where a SIP message goes back to: a UDP peer address, or the TCP connection it came on.
//!
//! Owns TCP framing for SIP (headers, then `Content-Length` bytes of body, each message bounded by
//! [`MAX_MESSAGE`]); does not own what the messages mean (see [`crate::voice::listener`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::debug;

use super::message::MAX_MESSAGE;

/// Messages queued for one TCP connection before the sender waits.
const TCP_QUEUE: usize = 64;

/// A way back to the peer.
#[derive(Clone, Debug)]
pub enum Transport {
    Udp(Arc<UdpSocket>, SocketAddr),
    Tcp(mpsc::Sender<Vec<u8>>, SocketAddr),
    /// A browser call's SIP leg inside this process ([`crate::voice::webrtc`]): what Hodi sends
    /// on the dialog goes to the gateway's task. No network peer can reach the listener this
    /// way, so the caller it names is vouched for. The address is the browser's (its calls count
    /// against that address's limits).
    Web(mpsc::Sender<Vec<u8>>, SocketAddr, Arc<Vouched>),
}

/// Who a browser call is from, as the token the page presented says.
#[derive(Debug)]
pub struct Vouched {
    /// The org whose app minted the token: its numbers are the only ones the page may call.
    pub org_id: String,
    /// The customer the app sees.
    pub customer: String,
    /// `customer` is a valid E.164 number, seen as a cellular customer (a browser phone standing
    /// in for a handset, as the console's does); else an `app` provider number.
    pub cellular: bool,
}

impl Transport {
    pub async fn send(&self, bytes: Vec<u8>) {
        let result = match self {
            Transport::Udp(socket, peer) => socket.send_to(&bytes, peer).await.map(drop).map_err(|e| e.to_string()),
            Transport::Tcp(tx, _) => tx.send(bytes).await.map_err(|_| "connection closed".to_string()),
            // Never waits: the listener's task must not stall behind a browser call's task.
            Transport::Web(tx, ..) => tx.try_send(bytes).map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            debug!(error = %e, peer = %self.peer(), "sending SIP");
        }
    }

    pub fn peer(&self) -> SocketAddr {
        match self {
            Transport::Udp(_, p) | Transport::Tcp(_, p) | Transport::Web(_, p, _) => *p,
        }
    }

    /// A stream transport delivers or fails by itself: nothing is retransmitted over it
    /// (RFC 3261 §17.1.1.2, §17.2.1: timers A, E and G are for unreliable transports).
    pub fn reliable(&self) -> bool {
        matches!(self, Transport::Tcp(..) | Transport::Web(..))
    }

    /// The Via transport token.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Udp(..) => "UDP",
            Transport::Tcp(..) => "TCP",
            Transport::Web(..) => "WS",
        }
    }
}

/// How long a TCP connection may stay quiet, as the config says.
#[derive(Debug, Clone, Copy)]
pub struct TcpTimeouts {
    /// No bytes and no call using the connection: closed (keep-alive CRLFs count as bytes).
    pub idle: std::time::Duration,
    /// A message begun must be complete within this (a peer trickling a header is cut off).
    pub message: std::time::Duration,
}

/// Splits a TCP connection into SIP messages (calling `on_message` for each) and writes what is
/// queued on the returned transport. Ends when the peer closes, sends something unframeable,
/// stays idle with no call on the connection, or leaves a message unfinished too long.
pub async fn serve_tcp<F, Fut>(stream: TcpStream, peer: SocketAddr, timeouts: TcpTimeouts, on_message: F)
where
    F: Fn(Vec<u8>, Transport) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    serve_tcp_with(stream, peer, timeouts, |_| {}, on_message).await
}

/// [`serve_tcp`] for a connection Hodi opened: `on_ready` gets the transport to send on before
/// anything is read (a connection whose holder keeps that transport is never closed as idle).
pub async fn serve_tcp_with<F, Fut>(
    stream: TcpStream,
    peer: SocketAddr,
    timeouts: TcpTimeouts,
    on_ready: impl FnOnce(Transport),
    on_message: F,
) where
    F: Fn(Vec<u8>, Transport) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(TCP_QUEUE);
    let writing = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let transport = Transport::Tcp(tx.clone(), peer);
    on_ready(transport.clone());
    let mut buf = BytesMut::with_capacity(4096);
    // When the message now in `buf` began (None: nothing pending).
    let mut begun: Option<tokio::time::Instant> = None;
    loop {
        while let Some(len) = frame_length(&buf) {
            match len {
                Ok(len) => {
                    let message = buf.split_to(len).to_vec();
                    on_message(message, transport.clone()).await;
                }
                Err(why) => {
                    debug!(%peer, %why, "closing a SIP connection that cannot be framed");
                    writing.abort();
                    return;
                }
            }
        }
        // Keep-alives (CRLF) between messages carry nothing.
        while buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            buf.advance(1);
        }
        if buf.len() > MAX_MESSAGE {
            debug!(%peer, "SIP message over the limit; closing");
            break;
        }
        if buf.is_empty() {
            begun = None;
        } else {
            begun.get_or_insert_with(tokio::time::Instant::now);
        }
        let deadline = match begun {
            Some(at) => at + timeouts.message,
            None => tokio::time::Instant::now() + timeouts.idle,
        };
        match tokio::time::timeout_at(deadline, reader.read_buf(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) if begun.is_some() => {
                debug!(%peer, pending = buf.len(), "SIP message not finished in time; closing");
                break;
            }
            // Idle: kept while a call answers on it (its Transport holds a sender), else closed.
            Err(_) if tx.strong_count() > 2 => {}
            Err(_) => {
                debug!(%peer, "idle SIP connection with no call; closing");
                break;
            }
        }
    }
    drop(tx);
    drop(transport);
    let _ = writing.await;
}

/// The length of the first whole message in `buf`: None when more bytes are needed.
fn frame_length(buf: &[u8]) -> Option<Result<usize, String>> {
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let head_end = buf[start..].windows(4).position(|w| w == b"\r\n\r\n")? + start + 4;
    let head = String::from_utf8_lossy(&buf[start..head_end]);
    let mut length = None;
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                length = value.trim().parse::<usize>().ok();
                if length.is_none() {
                    return Some(Err(format!("bad Content-Length {:?}", value.trim())));
                }
            }
        }
    }
    // Over a stream, Content-Length is mandatory (RFC 3261 §18.3).
    let Some(body) = length else { return Some(Err("no Content-Length on a stream transport".into())) };
    if head_end + body > MAX_MESSAGE + start {
        return Some(Err("message larger than the limit".into()));
    }
    (buf.len() >= head_end + body).then_some(Ok(head_end + body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_by_content_length() {
        let one = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(frame_length(one), Some(Ok(one.len())));
        assert_eq!(frame_length(&one[..one.len() - 1]), None, "body not complete");
        assert_eq!(frame_length(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n"), None, "headers not complete");
        let two = [&one[..], &b"\r\n"[..], &one[..]].concat();
        assert_eq!(frame_length(&two), Some(Ok(one.len())));
        assert!(matches!(frame_length(b"X\r\nContent-Length: lots\r\n\r\n"), Some(Err(_))));
        assert!(matches!(frame_length(b"X\r\n\r\n"), Some(Err(_))), "no Content-Length");
        assert!(matches!(frame_length(b"X\r\nContent-Length: 99999999\r\n\r\n"), Some(Err(_))));
    }
}
