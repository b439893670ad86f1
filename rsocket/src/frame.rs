//! RSocket 1.0 frames: the typed [`Frame`] and its binary encoding.
//!
//! Owns the byte layout of every frame type of the spec (`Protocol.md`, "Framing"), nothing more: it
//! does not know about connections, streams or transports. [`Frame::decode`] takes one whole frame
//! (the transport has already removed the length prefix) and returns an error for any byte sequence
//! that is not a well-formed frame; it never panics and never allocates more than the input's size.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::payload::Payload;

/// Flag bits of the 10-bit flags field.
pub mod flags {
    /// (I)gnore: the frame may be ignored if not understood.
    pub const IGNORE: u16 = 0x200;
    /// (M)etadata present.
    pub const METADATA: u16 = 0x100;
    /// (F)ollows: more fragments of this frame follow.
    pub const FOLLOWS: u16 = 0x080;
    /// SETUP: (R)esume enabled.
    pub const RESUME_ENABLE: u16 = 0x080;
    /// KEEPALIVE: (R)espond with a KEEPALIVE.
    pub const RESPOND: u16 = 0x080;
    /// SETUP: will honour (L)ease.
    pub const LEASE: u16 = 0x040;
    /// PAYLOAD / REQUEST_CHANNEL: (C)omplete.
    pub const COMPLETE: u16 = 0x040;
    /// PAYLOAD: (N)ext.
    pub const NEXT: u16 = 0x020;
}

/// Frame type codes (6 bits).
pub mod frame_type {
    pub const SETUP: u8 = 0x01;
    pub const LEASE: u8 = 0x02;
    pub const KEEPALIVE: u8 = 0x03;
    pub const REQUEST_RESPONSE: u8 = 0x04;
    pub const REQUEST_FNF: u8 = 0x05;
    pub const REQUEST_STREAM: u8 = 0x06;
    pub const REQUEST_CHANNEL: u8 = 0x07;
    pub const REQUEST_N: u8 = 0x08;
    pub const CANCEL: u8 = 0x09;
    pub const PAYLOAD: u8 = 0x0A;
    pub const ERROR: u8 = 0x0B;
    pub const METADATA_PUSH: u8 = 0x0C;
    pub const RESUME: u8 = 0x0D;
    pub const RESUME_OK: u8 = 0x0E;
    pub const EXT: u8 = 0x3F;
}

/// Error codes carried by ERROR frames.
pub mod error_code {
    pub const INVALID_SETUP: u32 = 0x0000_0001;
    pub const UNSUPPORTED_SETUP: u32 = 0x0000_0002;
    pub const REJECTED_SETUP: u32 = 0x0000_0003;
    pub const REJECTED_RESUME: u32 = 0x0000_0004;
    pub const CONNECTION_ERROR: u32 = 0x0000_0101;
    pub const CONNECTION_CLOSE: u32 = 0x0000_0102;
    pub const APPLICATION_ERROR: u32 = 0x0000_0201;
    pub const REJECTED: u32 = 0x0000_0202;
    pub const CANCELED: u32 = 0x0000_0203;
    pub const INVALID: u32 = 0x0000_0204;

    /// The spec's name for a code, for logs and error messages.
    pub fn name(code: u32) -> &'static str {
        match code {
            INVALID_SETUP => "INVALID_SETUP",
            UNSUPPORTED_SETUP => "UNSUPPORTED_SETUP",
            REJECTED_SETUP => "REJECTED_SETUP",
            REJECTED_RESUME => "REJECTED_RESUME",
            CONNECTION_ERROR => "CONNECTION_ERROR",
            CONNECTION_CLOSE => "CONNECTION_CLOSE",
            APPLICATION_ERROR => "APPLICATION_ERROR",
            REJECTED => "REJECTED",
            CANCELED => "CANCELED",
            INVALID => "INVALID",
            _ => "UNKNOWN",
        }
    }
}

/// Largest value of a 31-bit field (stream ids, request counts, keepalive times).
pub const MAX_U31: u32 = 0x7FFF_FFFF;
/// Largest value of the 24-bit metadata length and the transport length prefix.
pub const MAX_U24: usize = 0xFF_FFFF;
const HEADER_LEN: usize = 6;

/// Why a byte sequence is not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame truncated: {0} needs more bytes")]
    Truncated(&'static str),
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("{0} must be on stream 0")]
    NeedsStreamZero(&'static str),
    #[error("{0} must not be on stream 0")]
    NeedsStream(&'static str),
    #[error("metadata length {declared} exceeds the {available} bytes left in the frame")]
    MetadataOverrun { declared: usize, available: usize },
    #[error("{0} is not valid ASCII")]
    NotAscii(&'static str),
    #[error("{0} has an invalid value")]
    InvalidValue(&'static str),
}

/// Why a frame cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("metadata of {0} bytes exceeds the 24-bit length field")]
    MetadataTooLarge(usize),
    #[error("{0} is longer than its length field allows")]
    FieldTooLong(&'static str),
}

/// SETUP frame contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub major_version: u16,
    pub minor_version: u16,
    /// Milliseconds between KEEPALIVE frames the client sends.
    pub keepalive_interval: u32,
    /// Milliseconds without any frame after which the peer may be considered dead.
    pub max_lifetime: u32,
    pub resume_token: Option<Bytes>,
    pub lease: bool,
    pub metadata_mime: String,
    pub data_mime: String,
    pub payload: Payload,
}

/// A decoded frame: the stream it belongs to and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stream_id: u32,
    pub body: Body,
}

/// The frame types of RSocket 1.0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Setup(Setup),
    Lease {
        ttl: u32,
        requests: u32,
        metadata: Option<Bytes>,
    },
    Keepalive {
        respond: bool,
        last_position: u64,
        data: Bytes,
    },
    RequestResponse {
        follows: bool,
        payload: Payload,
    },
    RequestFnf {
        follows: bool,
        payload: Payload,
    },
    RequestStream {
        follows: bool,
        initial_n: u32,
        payload: Payload,
    },
    RequestChannel {
        follows: bool,
        complete: bool,
        initial_n: u32,
        payload: Payload,
    },
    RequestN {
        n: u32,
    },
    Cancel,
    Payload {
        follows: bool,
        complete: bool,
        next: bool,
        payload: Payload,
    },
    Error {
        code: u32,
        data: Bytes,
    },
    MetadataPush {
        metadata: Bytes,
    },
    Resume {
        major_version: u16,
        minor_version: u16,
        token: Bytes,
        last_received_server_position: u64,
        first_available_client_position: u64,
    },
    ResumeOk {
        last_received_client_position: u64,
    },
    Ext {
        ignore: bool,
        extended_type: u32,
        payload: Payload,
    },
    /// A frame type this codec does not know, sent with the IGNORE flag: the spec says skip it.
    Ignored {
        frame_type: u8,
    },
}

impl Frame {
    pub fn new(stream_id: u32, body: Body) -> Self {
        Frame { stream_id, body }
    }

    /// An ERROR frame with a UTF-8 message.
    pub fn error(stream_id: u32, code: u32, message: &str) -> Self {
        Frame::new(stream_id, Body::Error { code, data: Bytes::copy_from_slice(message.as_bytes()) })
    }

    /// PAYLOAD with NEXT|COMPLETE: the single answer to a REQUEST_RESPONSE.
    pub fn response(stream_id: u32, payload: Payload) -> Self {
        Frame::new(stream_id, Body::Payload { follows: false, complete: true, next: true, payload })
    }

    /// The frame type code of this frame.
    pub fn frame_type(&self) -> u8 {
        use frame_type::*;
        match &self.body {
            Body::Setup(_) => SETUP,
            Body::Lease { .. } => LEASE,
            Body::Keepalive { .. } => KEEPALIVE,
            Body::RequestResponse { .. } => REQUEST_RESPONSE,
            Body::RequestFnf { .. } => REQUEST_FNF,
            Body::RequestStream { .. } => REQUEST_STREAM,
            Body::RequestChannel { .. } => REQUEST_CHANNEL,
            Body::RequestN { .. } => REQUEST_N,
            Body::Cancel => CANCEL,
            Body::Payload { .. } => PAYLOAD,
            Body::Error { .. } => ERROR,
            Body::MetadataPush { .. } => METADATA_PUSH,
            Body::Resume { .. } => RESUME,
            Body::ResumeOk { .. } => RESUME_OK,
            Body::Ext { .. } => EXT,
            Body::Ignored { frame_type } => *frame_type,
        }
    }

    /// Encoded size in bytes, without any transport length prefix.
    pub fn encoded_len(&self) -> usize {
        let payload_len = |p: &Payload| p.data.len() + p.metadata.as_ref().map_or(0, |m| 3 + m.len());
        HEADER_LEN
            + match &self.body {
                Body::Setup(s) => {
                    12 + s.resume_token.as_ref().map_or(0, |t| 2 + t.len())
                        + 2
                        + s.metadata_mime.len()
                        + s.data_mime.len()
                        + payload_len(&s.payload)
                }
                Body::Lease { metadata, .. } => 8 + metadata.as_ref().map_or(0, |m| m.len()),
                Body::Keepalive { data, .. } => 8 + data.len(),
                Body::RequestResponse { payload, .. } | Body::RequestFnf { payload, .. } => payload_len(payload),
                Body::RequestStream { payload, .. } | Body::RequestChannel { payload, .. } => 4 + payload_len(payload),
                Body::RequestN { .. } => 4,
                Body::Cancel | Body::Ignored { .. } => 0,
                Body::Payload { payload, .. } => payload_len(payload),
                Body::Error { data, .. } => 4 + data.len(),
                Body::MetadataPush { metadata } => metadata.len(),
                Body::Resume { token, .. } => 4 + 2 + token.len() + 16,
                Body::ResumeOk { .. } => 8,
                Body::Ext { payload, .. } => 4 + payload_len(payload),
            }
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.reserve(self.encoded_len());
        let mut fl: u16 = 0;
        let meta_flag = |p: &Payload| {
            if p.metadata.is_some() {
                flags::METADATA
            } else {
                0
            }
        };
        let follows_flag = |f: bool| if f { flags::FOLLOWS } else { 0 };
        match &self.body {
            Body::Setup(s) => {
                fl |= meta_flag(&s.payload);
                if s.resume_token.is_some() {
                    fl |= flags::RESUME_ENABLE;
                }
                if s.lease {
                    fl |= flags::LEASE;
                }
            }
            Body::Lease { metadata, .. } if metadata.is_some() => fl |= flags::METADATA,
            Body::Keepalive { respond: true, .. } => fl |= flags::RESPOND,
            Body::RequestResponse { follows, payload } | Body::RequestFnf { follows, payload } => {
                fl |= meta_flag(payload) | follows_flag(*follows)
            }
            Body::RequestStream { follows, payload, .. } => fl |= meta_flag(payload) | follows_flag(*follows),
            Body::RequestChannel { follows, complete, payload, .. } => {
                fl |= meta_flag(payload) | follows_flag(*follows);
                if *complete {
                    fl |= flags::COMPLETE;
                }
            }
            Body::Payload { follows, complete, next, payload } => {
                fl |= meta_flag(payload) | follows_flag(*follows);
                if *complete {
                    fl |= flags::COMPLETE;
                }
                if *next {
                    fl |= flags::NEXT;
                }
            }
            Body::MetadataPush { .. } => fl |= flags::METADATA,
            Body::Ext { ignore, payload, .. } => {
                fl |= meta_flag(payload);
                if *ignore {
                    fl |= flags::IGNORE;
                }
            }
            Body::Ignored { .. } => fl |= flags::IGNORE,
            _ => {}
        }
        out.put_u32(self.stream_id & MAX_U31);
        out.put_u16((u16::from(self.frame_type()) << 10) | fl);
        match &self.body {
            Body::Setup(s) => {
                out.put_u16(s.major_version);
                out.put_u16(s.minor_version);
                out.put_u32(s.keepalive_interval & MAX_U31);
                out.put_u32(s.max_lifetime & MAX_U31);
                if let Some(token) = &s.resume_token {
                    let len = u16::try_from(token.len()).map_err(|_| EncodeError::FieldTooLong("resume token"))?;
                    out.put_u16(len);
                    out.put_slice(token);
                }
                put_mime(out, &s.metadata_mime, "metadata mime type")?;
                put_mime(out, &s.data_mime, "data mime type")?;
                put_payload(out, &s.payload)?;
            }
            Body::Lease { ttl, requests, metadata } => {
                out.put_u32(ttl & MAX_U31);
                out.put_u32(requests & MAX_U31);
                if let Some(m) = metadata {
                    out.put_slice(m);
                }
            }
            Body::Keepalive { last_position, data, .. } => {
                out.put_u64(last_position & (u64::MAX >> 1));
                out.put_slice(data);
            }
            Body::RequestResponse { payload, .. }
            | Body::RequestFnf { payload, .. }
            | Body::Payload { payload, .. } => put_payload(out, payload)?,
            Body::RequestStream { initial_n, payload, .. } | Body::RequestChannel { initial_n, payload, .. } => {
                out.put_u32(initial_n & MAX_U31);
                put_payload(out, payload)?;
            }
            Body::RequestN { n } => out.put_u32(n & MAX_U31),
            Body::Cancel | Body::Ignored { .. } => {}
            Body::Error { code, data } => {
                out.put_u32(*code);
                out.put_slice(data);
            }
            Body::MetadataPush { metadata } => out.put_slice(metadata),
            Body::Resume {
                major_version,
                minor_version,
                token,
                last_received_server_position,
                first_available_client_position,
            } => {
                out.put_u16(*major_version);
                out.put_u16(*minor_version);
                let len = u16::try_from(token.len()).map_err(|_| EncodeError::FieldTooLong("resume token"))?;
                out.put_u16(len);
                out.put_slice(token);
                out.put_u64(*last_received_server_position);
                out.put_u64(*first_available_client_position);
            }
            Body::ResumeOk { last_received_client_position } => out.put_u64(*last_received_client_position),
            Body::Ext { extended_type, payload, .. } => {
                out.put_u32(extended_type & MAX_U31);
                put_payload(out, payload)?;
            }
        }
        Ok(())
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out)?;
        Ok(out.freeze())
    }

    /// Decodes one whole frame. Any malformed input is an error, never a panic.
    pub fn decode(mut buf: Bytes) -> Result<Frame, DecodeError> {
        use frame_type::*;
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::Truncated("frame header"));
        }
        let stream_id = buf.get_u32() & MAX_U31;
        let type_and_flags = buf.get_u16();
        let ftype = (type_and_flags >> 10) as u8;
        let fl = type_and_flags & 0x03FF;
        let has = |bit: u16| fl & bit != 0;
        let on_zero = |name: &'static str| {
            if stream_id == 0 {
                Ok(())
            } else {
                Err(DecodeError::NeedsStreamZero(name))
            }
        };
        let on_stream = |name: &'static str| {
            if stream_id != 0 {
                Ok(())
            } else {
                Err(DecodeError::NeedsStream(name))
            }
        };
        let body = match ftype {
            SETUP => {
                on_zero("SETUP")?;
                need(&buf, 12, "SETUP")?;
                let major_version = buf.get_u16();
                let minor_version = buf.get_u16();
                let keepalive_interval = buf.get_u32();
                let max_lifetime = buf.get_u32();
                if keepalive_interval == 0 || keepalive_interval > MAX_U31 {
                    return Err(DecodeError::InvalidValue("SETUP keepalive interval"));
                }
                if max_lifetime == 0 || max_lifetime > MAX_U31 {
                    return Err(DecodeError::InvalidValue("SETUP max lifetime"));
                }
                let resume_token = if has(flags::RESUME_ENABLE) {
                    need(&buf, 2, "SETUP resume token length")?;
                    let len = usize::from(buf.get_u16());
                    need(&buf, len, "SETUP resume token")?;
                    Some(buf.split_to(len))
                } else {
                    None
                };
                let metadata_mime = get_mime(&mut buf, "SETUP metadata mime type")?;
                let data_mime = get_mime(&mut buf, "SETUP data mime type")?;
                let payload = get_payload(buf, has(flags::METADATA))?;
                Body::Setup(Setup {
                    major_version,
                    minor_version,
                    keepalive_interval,
                    max_lifetime,
                    resume_token,
                    lease: has(flags::LEASE),
                    metadata_mime,
                    data_mime,
                    payload,
                })
            }
            LEASE => {
                on_zero("LEASE")?;
                need(&buf, 8, "LEASE")?;
                let ttl = buf.get_u32() & MAX_U31;
                let requests = buf.get_u32() & MAX_U31;
                let metadata = has(flags::METADATA).then_some(buf);
                Body::Lease { ttl, requests, metadata }
            }
            KEEPALIVE => {
                on_zero("KEEPALIVE")?;
                need(&buf, 8, "KEEPALIVE")?;
                let last_position = buf.get_u64() & (u64::MAX >> 1);
                Body::Keepalive { respond: has(flags::RESPOND), last_position, data: buf }
            }
            REQUEST_RESPONSE => {
                on_stream("REQUEST_RESPONSE")?;
                Body::RequestResponse { follows: has(flags::FOLLOWS), payload: get_payload(buf, has(flags::METADATA))? }
            }
            REQUEST_FNF => {
                on_stream("REQUEST_FNF")?;
                Body::RequestFnf { follows: has(flags::FOLLOWS), payload: get_payload(buf, has(flags::METADATA))? }
            }
            REQUEST_STREAM => {
                on_stream("REQUEST_STREAM")?;
                need(&buf, 4, "REQUEST_STREAM")?;
                let initial_n = buf.get_u32() & MAX_U31;
                Body::RequestStream {
                    follows: has(flags::FOLLOWS),
                    initial_n,
                    payload: get_payload(buf, has(flags::METADATA))?,
                }
            }
            REQUEST_CHANNEL => {
                on_stream("REQUEST_CHANNEL")?;
                need(&buf, 4, "REQUEST_CHANNEL")?;
                let initial_n = buf.get_u32() & MAX_U31;
                Body::RequestChannel {
                    follows: has(flags::FOLLOWS),
                    complete: has(flags::COMPLETE),
                    initial_n,
                    payload: get_payload(buf, has(flags::METADATA))?,
                }
            }
            REQUEST_N => {
                on_stream("REQUEST_N")?;
                need(&buf, 4, "REQUEST_N")?;
                Body::RequestN { n: buf.get_u32() & MAX_U31 }
            }
            CANCEL => {
                on_stream("CANCEL")?;
                Body::Cancel
            }
            PAYLOAD => {
                on_stream("PAYLOAD")?;
                Body::Payload {
                    follows: has(flags::FOLLOWS),
                    complete: has(flags::COMPLETE),
                    next: has(flags::NEXT),
                    payload: get_payload(buf, has(flags::METADATA))?,
                }
            }
            ERROR => {
                need(&buf, 4, "ERROR")?;
                let code = buf.get_u32();
                Body::Error { code, data: buf }
            }
            METADATA_PUSH => {
                on_zero("METADATA_PUSH")?;
                Body::MetadataPush { metadata: buf }
            }
            RESUME => {
                on_zero("RESUME")?;
                need(&buf, 6, "RESUME")?;
                let major_version = buf.get_u16();
                let minor_version = buf.get_u16();
                let len = usize::from(buf.get_u16());
                need(&buf, len + 16, "RESUME")?;
                let token = buf.split_to(len);
                Body::Resume {
                    major_version,
                    minor_version,
                    token,
                    last_received_server_position: buf.get_u64(),
                    first_available_client_position: buf.get_u64(),
                }
            }
            RESUME_OK => {
                on_zero("RESUME_OK")?;
                need(&buf, 8, "RESUME_OK")?;
                Body::ResumeOk { last_received_client_position: buf.get_u64() }
            }
            EXT => {
                need(&buf, 4, "EXT")?;
                let extended_type = buf.get_u32() & MAX_U31;
                Body::Ext {
                    ignore: has(flags::IGNORE),
                    extended_type,
                    payload: get_payload(buf, has(flags::METADATA))?,
                }
            }
            other if has(flags::IGNORE) => Body::Ignored { frame_type: other },
            other => return Err(DecodeError::UnknownType(other)),
        };
        Ok(Frame { stream_id, body })
    }
}

fn need(buf: &Bytes, n: usize, what: &'static str) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated(what))
    } else {
        Ok(())
    }
}

fn get_mime(buf: &mut Bytes, what: &'static str) -> Result<String, DecodeError> {
    need(buf, 1, what)?;
    let len = usize::from(buf.get_u8());
    need(buf, len, what)?;
    let raw = buf.split_to(len);
    if !raw.is_ascii() {
        return Err(DecodeError::NotAscii(what));
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn put_mime(out: &mut BytesMut, mime: &str, what: &'static str) -> Result<(), EncodeError> {
    let len = u8::try_from(mime.len()).map_err(|_| EncodeError::FieldTooLong(what))?;
    out.put_u8(len);
    out.put_slice(mime.as_bytes());
    Ok(())
}

/// Metadata (24-bit length prefixed) then data: the tail of every payload-carrying frame.
fn get_payload(mut buf: Bytes, has_metadata: bool) -> Result<Payload, DecodeError> {
    let metadata = if has_metadata {
        need(&buf, 3, "metadata length")?;
        let len = (usize::from(buf.get_u8()) << 16) | usize::from(buf.get_u16());
        if len > buf.remaining() {
            return Err(DecodeError::MetadataOverrun { declared: len, available: buf.remaining() });
        }
        Some(buf.split_to(len))
    } else {
        None
    };
    Ok(Payload { metadata, data: buf })
}

fn put_payload(out: &mut BytesMut, payload: &Payload) -> Result<(), EncodeError> {
    if let Some(m) = &payload.metadata {
        if m.len() > MAX_U24 {
            return Err(EncodeError::MetadataTooLarge(m.len()));
        }
        out.put_u8((m.len() >> 16) as u8);
        out.put_u16((m.len() & 0xFFFF) as u16);
        out.put_slice(m);
    }
    out.put_slice(&payload.data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frame: Frame) {
        let bytes = frame.to_bytes().expect("encode");
        assert_eq!(bytes.len(), frame.encoded_len(), "encoded_len of {frame:?}");
        assert_eq!(Frame::decode(bytes).expect("decode"), frame);
    }

    fn p(meta: Option<&'static [u8]>, data: &'static [u8]) -> Payload {
        Payload { metadata: meta.map(Bytes::from_static), data: Bytes::from_static(data) }
    }

    #[test]
    fn every_frame_type_roundtrips() {
        roundtrip(Frame::new(
            0,
            Body::Setup(Setup {
                major_version: 1,
                minor_version: 0,
                keepalive_interval: 1000,
                max_lifetime: 60000,
                resume_token: Some(Bytes::from_static(b"tok")),
                lease: true,
                metadata_mime: "application/json".into(),
                data_mime: "application/octet-stream".into(),
                payload: p(Some(b"{}"), b"setup"),
            }),
        ));
        roundtrip(Frame::new(0, Body::Lease { ttl: 5, requests: 7, metadata: Some(Bytes::from_static(b"m")) }));
        roundtrip(Frame::new(0, Body::Keepalive { respond: true, last_position: 9, data: Bytes::from_static(b"k") }));
        roundtrip(Frame::new(1, Body::RequestResponse { follows: true, payload: p(None, b"rr") }));
        roundtrip(Frame::new(3, Body::RequestFnf { follows: false, payload: p(Some(b""), b"") }));
        roundtrip(Frame::new(5, Body::RequestStream { follows: false, initial_n: 3, payload: p(None, b"s") }));
        roundtrip(Frame::new(
            7,
            Body::RequestChannel { follows: false, complete: true, initial_n: 1, payload: p(Some(b"x"), b"c") },
        ));
        roundtrip(Frame::new(9, Body::RequestN { n: MAX_U31 }));
        roundtrip(Frame::new(11, Body::Cancel));
        roundtrip(Frame::new(2, Body::Payload { follows: false, complete: true, next: true, payload: p(None, b"ok") }));
        roundtrip(Frame::error(0, error_code::REJECTED_SETUP, "no"));
        roundtrip(Frame::new(0, Body::MetadataPush { metadata: Bytes::from_static(b"mp") }));
        roundtrip(Frame::new(
            0,
            Body::Resume {
                major_version: 1,
                minor_version: 0,
                token: Bytes::from_static(b"t"),
                last_received_server_position: 1,
                first_available_client_position: 2,
            },
        ));
        roundtrip(Frame::new(0, Body::ResumeOk { last_received_client_position: 3 }));
        roundtrip(Frame::new(13, Body::Ext { ignore: true, extended_type: 4, payload: p(None, b"e") }));
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(Frame::decode(Bytes::from_static(&[0, 0])), Err(DecodeError::Truncated("frame header")));
        // REQUEST_RESPONSE on stream 0.
        assert_eq!(
            Frame::decode(Bytes::from_static(&[0, 0, 0, 0, 0x10, 0])),
            Err(DecodeError::NeedsStream("REQUEST_RESPONSE"))
        );
        // Metadata length larger than the frame.
        let bad = Bytes::from_static(&[0, 0, 0, 1, 0x11, 0x00, 0xFF, 0xFF, 0xFF, 1]);
        assert!(matches!(Frame::decode(bad), Err(DecodeError::MetadataOverrun { .. })));
        // Unknown type without the ignore flag, then with it.
        assert_eq!(Frame::decode(Bytes::from_static(&[0, 0, 0, 1, 0x40, 0])), Err(DecodeError::UnknownType(0x10)));
        assert_eq!(
            Frame::decode(Bytes::from_static(&[0, 0, 0, 1, 0x42, 0])).map(|f| f.body),
            Ok(Body::Ignored { frame_type: 0x10 })
        );
        // SETUP with a zero keepalive interval.
        let mut setup = BytesMut::new();
        setup.put_slice(&[0, 0, 0, 0, 0x04, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xEA, 0x60, 0, 0]);
        assert_eq!(Frame::decode(setup.freeze()), Err(DecodeError::InvalidValue("SETUP keepalive interval")));
    }

    #[test]
    fn every_prefix_of_a_frame_is_rejected_or_decoded_without_panic() {
        let frame = Frame::new(
            0,
            Body::Setup(Setup {
                major_version: 1,
                minor_version: 0,
                keepalive_interval: 1,
                max_lifetime: 2,
                resume_token: Some(Bytes::from_static(b"abc")),
                lease: false,
                metadata_mime: "m".into(),
                data_mime: "d".into(),
                payload: p(Some(b"meta"), b"data"),
            }),
        );
        let bytes = frame.to_bytes().expect("encode");
        for cut in 0..bytes.len() {
            let _ = Frame::decode(bytes.slice(..cut));
        }
    }
}

#[cfg(test)]
mod robustness {
    //! A cheap stand-in for the fuzzer that runs on every `cargo test`: random and mutated inputs
    //! must decode or fail, never panic, and what decodes must round-trip.
    use super::*;

    /// xorshift64*: deterministic, dependency-free randomness.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    fn check(bytes: &[u8]) {
        if let Ok(frame) = Frame::decode(Bytes::copy_from_slice(bytes)) {
            let again = frame.to_bytes().expect("a decoded frame re-encodes");
            assert_eq!(Frame::decode(again).expect("re-decodes"), frame);
        }
    }

    #[test]
    fn random_and_mutated_inputs_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..100_000 {
            let len = (rng.next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check(&bytes);
        }
        let seeds: Vec<Bytes> = [
            Frame::new(1, Body::RequestResponse { follows: false, payload: Payload::with_metadata("data", "meta") }),
            Frame::new(0, Body::Keepalive { respond: true, last_position: 1, data: Bytes::from_static(b"k") }),
            Frame::error(0, error_code::REJECTED_SETUP, "no"),
        ]
        .iter()
        .map(|f| f.to_bytes().expect("encode"))
        .collect();
        for _ in 0..100_000 {
            let mut bytes = seeds[(rng.next() % seeds.len() as u64) as usize].to_vec();
            for _ in 0..(1 + rng.next() % 4) {
                let i = (rng.next() as usize) % bytes.len();
                bytes[i] = rng.next() as u8;
            }
            check(&bytes);
        }
    }
}
