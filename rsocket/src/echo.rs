//! A reference responder: echoes requests and produces numbered streams. Used by the
//! `rsocket-echo` binary, this crate's tests and the benchmark; also a minimal example of
//! implementing [`Responder`] and [`Acceptor`].
//!
//! REQUEST_RESPONSE echoes the payload, except data `active-streams`, answered with how many
//! REQUEST_STREAM producers are running. REQUEST_STREAM with data `N` emits N payloads `item-<i>`;
//! with `forever`, emits until cancelled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::{Acceptor, BoxFuture, BoxStream, Payload, RemoteError, Requester, Responder, SetupInfo};

#[derive(Default)]
pub struct Echo {
    active_streams: Arc<AtomicUsize>,
}

struct Active(Arc<AtomicUsize>);
impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Responder for Echo {
    fn request_response(&self, payload: Payload) -> BoxFuture<Result<Payload, RemoteError>> {
        let active = self.active_streams.load(Ordering::SeqCst);
        Box::pin(async move {
            if payload.data.as_ref() == b"active-streams" {
                return Ok(Payload::new(active.to_string()));
            }
            Ok(payload)
        })
    }

    fn request_stream(&self, payload: Payload) -> BoxStream<Result<Payload, RemoteError>> {
        let text = String::from_utf8_lossy(&payload.data).into_owned();
        let count = if text == "forever" { usize::MAX } else { text.parse::<usize>().unwrap_or(0) };
        self.active_streams.fetch_add(1, Ordering::SeqCst);
        let guard = Active(self.active_streams.clone());
        Box::pin(futures_util::stream::unfold((0usize, guard), move |(i, guard)| async move {
            if i >= count {
                return None;
            }
            Some((Ok(Payload::new(format!("item-{i}"))), (i + 1, guard)))
        }))
    }
}

/// Accepts every SETUP with an [`Echo`] responder; all connections share one stream counter.
#[derive(Default)]
pub struct EchoAcceptor(pub Arc<AtomicUsize>);

impl Acceptor for EchoAcceptor {
    fn accept(&self, _setup: SetupInfo, _requester: Requester) -> BoxFuture<Result<Arc<dyn Responder>, RemoteError>> {
        let active = self.0.clone();
        Box::pin(async move { Ok(Arc::new(Echo { active_streams: active }) as Arc<dyn Responder>) })
    }
}
