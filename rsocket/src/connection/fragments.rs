//! Reassembly of fragmented messages (FOLLOWS): frames in, whole messages out. Pure — no IO, no
//! time — so its limits are tested without sockets.
//!
//! Owns the limits on what a peer can make us buffer before a message is whole: all partial
//! messages together at most `max_bytes` (each fragment counting [`FRAGMENT_COST`] besides its
//! payload, so empty fragments are bounded too), at most `max_streams` open at once.

use std::collections::HashMap;

use bytes::BytesMut;

use super::Fatal;
use crate::frame::Body;
use crate::payload::Payload;

/// The fragmented messages a connection has open.
pub(super) struct Reassembly {
    partials: HashMap<u32, Partial>,
    /// What the open messages count toward `max_bytes`.
    bytes: usize,
    max_bytes: usize,
    max_streams: usize,
}

impl Reassembly {
    pub(super) fn new(max_bytes: usize, max_streams: usize) -> Self {
        Reassembly { partials: HashMap::new(), bytes: 0, max_bytes, max_streams }
    }

    /// Takes one frame's body on stream `id`: the whole message once it is complete (at once for
    /// a frame that is not a fragment), `None` while more fragments are due. A CANCEL in the
    /// middle of a message drops it (`None`); any other frame in the middle of one is fatal.
    pub(super) fn take(&mut self, id: u32, body: Body) -> Result<Option<Body>, Fatal> {
        let follows = follows(&body);
        let is_continuation = self.partials.contains_key(&id);
        if !follows && !is_continuation {
            return Ok(Some(body));
        }
        if is_continuation && !matches!(body, Body::Payload { .. }) {
            if matches!(body, Body::Cancel) {
                self.cancel(id);
                return Ok(None);
            }
            return Err(Fatal::connection(format!("stream {id}: fragment continued by a non-PAYLOAD frame")));
        }
        if !is_continuation && self.partials.len() >= self.max_streams {
            return Err(Fatal::connection(format!("more than {} fragmented messages open at once", self.max_streams)));
        }
        let cost = payload_len(&body) + FRAGMENT_COST;
        self.bytes += cost;
        if self.bytes > self.max_bytes {
            return Err(Fatal::connection(format!(
                "fragmented messages exceed the reassembly limit of {} bytes",
                self.max_bytes
            )));
        }
        match self.partials.get_mut(&id) {
            Some(partial) => {
                partial.counted += cost;
                partial.append(take_payload(body));
            }
            None => {
                let mut partial = Partial { first: body.clone(), metadata: None, data: BytesMut::new(), counted: cost };
                partial.append(take_payload(body));
                self.partials.insert(id, partial);
            }
        }
        if follows {
            return Ok(None);
        }
        let partial = self.partials.remove(&id).ok_or_else(|| Fatal::connection("fragment state lost"))?;
        self.bytes -= partial.counted;
        Ok(Some(partial.finish()))
    }

    /// Whether `body` can skip reassembly: no message is open and it is not a fragment itself.
    /// Checked before [`Reassembly::take`] so a whole frame costs no hash lookup and no move.
    pub(super) fn passes_through(&self, body: &Body) -> bool {
        self.partials.is_empty() && !follows(body)
    }

    /// Forgets a message being reassembled on `id`, if any.
    pub(super) fn cancel(&mut self, id: u32) {
        if let Some(partial) = self.partials.remove(&id) {
            self.bytes -= partial.counted;
        }
    }
}

fn follows(body: &Body) -> bool {
    matches!(
        body,
        Body::RequestResponse { follows: true, .. }
            | Body::RequestFnf { follows: true, .. }
            | Body::RequestStream { follows: true, .. }
            | Body::RequestChannel { follows: true, .. }
            | Body::Payload { follows: true, .. }
    )
}

fn payload_len(body: &Body) -> usize {
    match body {
        Body::RequestResponse { payload, .. }
        | Body::RequestFnf { payload, .. }
        | Body::RequestStream { payload, .. }
        | Body::RequestChannel { payload, .. }
        | Body::Payload { payload, .. } => payload.len(),
        _ => 0,
    }
}

/// What each fragment counts toward the reassembly limit besides its payload: its header and
/// bookkeeping, so that a flood of empty fragments is bounded like a flood of bytes.
const FRAGMENT_COST: usize = 64;

/// A message being reassembled from fragments.
struct Partial {
    first: Body,
    metadata: Option<BytesMut>,
    data: BytesMut,
    /// What this message counts toward [`Reassembly::bytes`].
    counted: usize,
}

impl Partial {
    fn append(&mut self, payload: Payload) {
        if let Some(m) = payload.metadata {
            self.metadata.get_or_insert_with(BytesMut::new).extend_from_slice(&m);
        }
        self.data.extend_from_slice(&payload.data);
    }
    fn finish(self) -> Body {
        let payload = Payload { metadata: self.metadata.map(BytesMut::freeze), data: self.data.freeze() };
        match self.first {
            Body::RequestResponse { .. } => Body::RequestResponse { follows: false, payload },
            Body::RequestFnf { .. } => Body::RequestFnf { follows: false, payload },
            Body::RequestStream { initial_n, .. } => Body::RequestStream { follows: false, initial_n, payload },
            Body::RequestChannel { initial_n, complete, .. } => {
                Body::RequestChannel { follows: false, complete, initial_n, payload }
            }
            Body::Payload { complete, next, .. } => Body::Payload { follows: false, complete, next, payload },
            other => other,
        }
    }
}

fn take_payload(body: Body) -> Payload {
    match body {
        Body::RequestResponse { payload, .. }
        | Body::RequestFnf { payload, .. }
        | Body::RequestStream { payload, .. }
        | Body::RequestChannel { payload, .. }
        | Body::Payload { payload, .. } => payload,
        _ => Payload::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn fragment(first: bool, follows: bool, data: &'static [u8]) -> Body {
        let payload = Payload { metadata: None, data: Bytes::from_static(data) };
        if first {
            Body::RequestResponse { follows, payload }
        } else {
            Body::Payload { follows, complete: !follows, next: true, payload }
        }
    }

    #[test]
    fn fragments_make_one_message_of_the_first_frames_kind() {
        let mut r = Reassembly::new(1024, 4);
        assert!(r.take(1, fragment(true, true, b"he")).ok().flatten().is_none());
        assert!(r.take(1, fragment(false, true, b"ll")).ok().flatten().is_none());
        let whole = r.take(1, fragment(false, false, b"o")).ok().flatten();
        let Some(Body::RequestResponse { follows: false, payload }) = whole else { panic!("{whole:?}") };
        assert_eq!(&payload.data[..], b"hello");
        assert_eq!((r.partials.len(), r.bytes), (0, 0), "a finished message is no longer counted");
        // A frame that is not a fragment passes straight through.
        assert!(r.passes_through(&Body::Cancel) && !r.passes_through(&fragment(true, true, b"")));
        assert!(matches!(r.take(3, Body::Cancel).ok().flatten(), Some(Body::Cancel)));
        assert!(r.take(5, fragment(true, true, b"x")).is_ok());
        assert!(!r.passes_through(&Body::Cancel), "with a message open, every frame goes through take");
    }

    #[test]
    fn limits_are_fatal_and_cancel_frees_what_was_held() {
        let mut r = Reassembly::new(3 * FRAGMENT_COST, 2);
        assert!(r.take(1, fragment(true, true, b"")).is_ok());
        assert!(r.take(3, fragment(true, true, b"")).is_ok());
        let third = r.take(5, fragment(true, true, b""));
        assert!(third.err().is_some_and(|f| f.message.contains("more than 2 fragmented")));
        // A CANCEL mid-message drops it and gives back its bytes and its place.
        assert!(r.take(3, Body::Cancel).ok().flatten().is_none());
        assert_eq!((r.partials.len(), r.bytes), (1, FRAGMENT_COST));
        assert!(r.take(1, fragment(false, true, b"")).is_ok());
        let over = r.take(1, fragment(false, true, b"x"));
        assert!(over.err().is_some_and(|f| f.message.contains("reassembly limit")));
    }

    #[test]
    fn a_message_continued_by_another_kind_of_frame_is_fatal() {
        let mut r = Reassembly::new(1024, 4);
        assert!(r.take(1, fragment(true, true, b"a")).is_ok());
        let wrong = r.take(1, fragment(true, false, b"b"));
        assert!(wrong.err().is_some_and(|f| f.message.contains("non-PAYLOAD")));
    }
}
