//! SIP messages: parsing (rsip's nom tokenizer, behind a size limit and a panic guard), the header
//! values a user agent needs, and writing responses and requests.
//!
//! Responses and our own requests are written as text here rather than through rsip's builders:
//! a UAS copies most headers verbatim from the request, which is simplest and exact as strings.

use rsip::headers::UntypedHeader;
use rsip::Header;

/// Largest SIP datagram or TCP message accepted.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why bytes are not a SIP message we can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("not a SIP message: {0}")]
    Malformed(String),
    #[error("missing {0} header")]
    Missing(&'static str),
}

/// A parsed request with the headers every transaction needs already extracted.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The user part of the Request-URI (the number called).
    pub user: String,
    pub vias: Vec<String>,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: String,
    pub contact: Option<String>,
    /// Every Contact header after the first (a REGISTER may carry several).
    pub more_contacts: Vec<String>,
    pub record_routes: Vec<String>,
    pub content_type: Option<String>,
    /// `Authorization` or `Proxy-Authorization` (digest credentials), whichever came.
    pub authorization: Option<String>,
    pub expires: Option<String>,
    /// `Refer-To` of a REFER (a transfer's target).
    pub refer_to: Option<String>,
    pub body: Vec<u8>,
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub call_id: String,
    pub cseq: String,
    pub from: String,
    pub to: String,
    pub contact: Option<String>,
    /// `WWW-Authenticate` and `Proxy-Authenticate` values (a 401 or 407).
    pub challenges: Vec<String>,
    pub body: Vec<u8>,
}

/// A message from the wire.
#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Response(Response),
}

pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    // CRLFs before a message are keep-alives (RFC 3261 §7.5, RFC 5626 §4.4.1), not part of it.
    let start = bytes.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    // The tokenizer is not ours: a panic on some input must not take the SIP listener down.
    let parsed = std::panic::catch_unwind(|| rsip::SipMessage::try_from(bytes))
        .map_err(|_| ParseError::Malformed("parser failure".into()))?
        .map_err(|e| ParseError::Malformed(e.to_string()))?;
    match parsed {
        rsip::SipMessage::Request(r) => {
            let mut req = Request {
                method: r.method.to_string(),
                user: r.uri.auth.as_ref().map(|a| a.user.clone()).unwrap_or_default(),
                vias: Vec::new(),
                from: String::new(),
                to: String::new(),
                call_id: String::new(),
                cseq: String::new(),
                contact: None,
                more_contacts: Vec::new(),
                record_routes: Vec::new(),
                content_type: None,
                authorization: None,
                expires: None,
                refer_to: None,
                body: r.body,
            };
            for h in r.headers.iter() {
                let Some((name, value)) = known(h) else { continue };
                let value = value.to_string();
                match name {
                    Known::Via => req.vias.push(value),
                    Known::From => req.from = value,
                    Known::To => req.to = value,
                    Known::CallId => req.call_id = value,
                    Known::CSeq => req.cseq = value,
                    Known::Contact if req.contact.is_none() => req.contact = Some(value),
                    Known::Contact => req.more_contacts.push(value),
                    Known::RecordRoute => req.record_routes.push(value),
                    Known::ContentType => req.content_type = Some(value),
                    Known::Authorization => req.authorization = Some(value),
                    Known::Expires => req.expires = Some(value),
                    Known::ReferTo => req.refer_to = Some(value),
                    Known::Challenge => {}
                }
            }
            for (name, value) in
                [("Via", req.vias.is_empty()), ("From", req.from.is_empty()), ("To", req.to.is_empty())]
                    .into_iter()
                    .chain([("Call-ID", req.call_id.is_empty()), ("CSeq", req.cseq.is_empty())])
            {
                if value {
                    return Err(ParseError::Missing(name));
                }
            }
            Ok(Message::Request(req))
        }
        rsip::SipMessage::Response(r) => {
            let mut resp = Response {
                code: r.status_code.code(),
                call_id: String::new(),
                cseq: String::new(),
                from: String::new(),
                to: String::new(),
                contact: None,
                challenges: Vec::new(),
                body: r.body,
            };
            for h in r.headers.iter() {
                let Some((name, value)) = known(h) else { continue };
                let value = value.to_string();
                match name {
                    Known::CallId => resp.call_id = value,
                    Known::CSeq => resp.cseq = value,
                    Known::From => resp.from = value,
                    Known::To => resp.to = value,
                    Known::Contact => resp.contact = Some(value),
                    Known::Challenge => resp.challenges.push(value),
                    Known::Via
                    | Known::RecordRoute
                    | Known::ContentType
                    | Known::Authorization
                    | Known::Expires
                    | Known::ReferTo => {}
                }
            }
            if resp.call_id.is_empty() || resp.cseq.is_empty() {
                return Err(ParseError::Missing("Call-ID or CSeq"));
            }
            Ok(Message::Response(resp))
        }
    }
}

/// The headers a transaction reads.
#[derive(Clone, Copy)]
enum Known {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    RecordRoute,
    ContentType,
    Authorization,
    Expires,
    Challenge,
    ReferTo,
}

/// Which known header `h` is, and its value: rsip names only the long forms, so the compact
/// forms every UA must accept (RFC 3261 §7.3.3: `v`, `f`, `t`, `i`, `m`, `c`) arrive as `Other`.
fn known(h: &Header) -> Option<(Known, &str)> {
    Some(match h {
        Header::Via(v) => (Known::Via, v.value()),
        Header::From(v) => (Known::From, v.value()),
        Header::To(v) => (Known::To, v.value()),
        Header::CallId(v) => (Known::CallId, v.value()),
        Header::CSeq(v) => (Known::CSeq, v.value()),
        Header::Contact(v) => (Known::Contact, v.value()),
        Header::RecordRoute(v) => (Known::RecordRoute, v.value()),
        Header::ContentType(v) => (Known::ContentType, v.value()),
        Header::Authorization(v) => (Known::Authorization, v.value()),
        Header::ProxyAuthorization(v) => (Known::Authorization, v.value()),
        Header::Expires(v) => (Known::Expires, v.value()),
        Header::WwwAuthenticate(v) => (Known::Challenge, v.value()),
        Header::ProxyAuthenticate(v) => (Known::Challenge, v.value()),
        Header::Other(name, value) => {
            let kind = match name.as_str() {
                "v" | "V" => Known::Via,
                "f" | "F" => Known::From,
                "t" | "T" => Known::To,
                "i" | "I" => Known::CallId,
                "m" | "M" => Known::Contact,
                "c" | "C" => Known::ContentType,
                // rsip has no type for Refer-To (RFC 3515; compact form `r`).
                n if n.eq_ignore_ascii_case("Refer-To") || n == "r" || n == "R" => Known::ReferTo,
                _ => return None,
            };
            (kind, value.as_str())
        }
        _ => return None,
    })
}

/// A `;name=value` parameter of a header value.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The `tag` of a From or To value.
pub fn tag(value: &str) -> Option<&str> {
    // Parameters after the URI's closing `>` belong to the header; inside it, to the URI.
    let after = value.rsplit_once('>').map_or(value, |(_, rest)| rest);
    param(after, "tag")
}

/// The user part of a From/To/Contact value (`"Bob" <sip:+2547…@host>` → `+2547…`).
pub fn user(value: &str) -> Option<&str> {
    let uri = value.split_once('<').map_or(value, |(_, rest)| rest.split('>').next().unwrap_or(rest));
    let rest = uri.trim().strip_prefix("sip:").or_else(|| uri.trim().strip_prefix("sips:"))?;
    let (user, _) = rest.split_once('@')?;
    Some(user.split(';').next().unwrap_or(user))
}

/// The host part of a From/To/Contact value's URI, lower case, without port or parameters
/// (`<sip:alice@Acme.Example:5060>;tag=1` → `acme.example`).
pub fn host(value: &str) -> Option<String> {
    let uri = uri(value);
    let rest = uri.strip_prefix("sip:").or_else(|| uri.strip_prefix("sips:"))?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = hostport.split([';', '?']).next()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The URI of a Contact value.
pub fn uri(value: &str) -> &str {
    value
        .split_once('<')
        .map_or(value.split(';').next().unwrap_or(value), |(_, rest)| rest.split('>').next().unwrap_or(rest))
        .trim()
}

impl Request {
    /// The transaction's branch (top Via).
    pub fn branch(&self) -> Option<&str> {
        self.vias.first().and_then(|v| param(v, "branch"))
    }

    pub fn cseq_number(&self) -> u32 {
        self.cseq.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    /// A response to this request. `to_tag` is added to To when it has none (dialog-creating
    /// responses); `extra` headers come before the body.
    pub fn response(
        &self,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for via in &self.vias {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        if (200..300).contains(&code) {
            for rr in &self.record_routes {
                out.push_str(&format!("Record-Route: {rr}\r\n"));
            }
        }
        out.push_str(&format!("From: {}\r\n", self.from));
        match (to_tag, tag(&self.to)) {
            (Some(t), None) if code > 100 => out.push_str(&format!("To: {};tag={t}\r\n", self.to)),
            _ => out.push_str(&format!("To: {}\r\n", self.to)),
        }
        out.push_str(&format!("Call-ID: {}\r\nCSeq: {}\r\n", self.call_id, self.cseq));
        for (name, value) in extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("Server: Hodi\r\n");
        match body {
            Some((content_type, body)) => {
                out.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
            }
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+254711082000@127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0\r\n\
        From: \"Amina\" <sip:+254700000001@127.0.0.1:5061>;tag=abc\r\n\
        To: <sip:+254711082000@127.0.0.1:5060>\r\n\
        Call-ID: 1-call@127.0.0.1\r\nCSeq: 1 INVITE\r\n\
        Contact: <sip:amina@127.0.0.1:5061>\r\nMax-Forwards: 70\r\n\
        Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn an_invite_parses_and_a_response_copies_what_it_must() {
        let Ok(Message::Request(req)) = parse(INVITE.as_bytes()) else { panic!("parse") };
        assert_eq!(
            (req.method.as_str(), req.user.as_str(), req.branch()),
            ("INVITE", "+254711082000", Some("z9hG4bK-1-0"))
        );
        assert_eq!(user(&req.from), Some("+254700000001"));
        assert_eq!(tag(&req.from), Some("abc"));
        assert_eq!(tag(&req.to), None);
        assert_eq!(req.body, b"v=0\n");
        let ok = String::from_utf8(req.response(200, "OK", Some("hodi1"), &[], Some(("application/sdp", "v=0\r\n"))))
            .expect("utf8");
        assert!(ok.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0\r\n"), "{ok}");
        assert!(ok.contains("To: <sip:+254711082000@127.0.0.1:5060>;tag=hodi1\r\n"), "{ok}");
        assert!(ok.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"), "{ok}");
        let Ok(Message::Response(back)) = parse(ok.as_bytes()) else { panic!("our response parses") };
        assert_eq!((back.code, back.call_id.as_str(), tag(&back.to)), (200, "1-call@127.0.0.1", Some("hodi1")));
        let trying = String::from_utf8(req.response(100, "Trying", Some("hodi1"), &[], None)).expect("utf8");
        assert!(!trying.contains("tag=hodi1"), "100 carries no To tag");
    }

    #[test]
    fn compact_header_forms_parse_like_the_long_ones() {
        let compact = INVITE
            .replace("Via:", "v:")
            .replace("From:", "f:")
            .replace("To:", "t:")
            .replace("Call-ID:", "i:")
            .replace("Contact:", "m:")
            .replace("Content-Type:", "c:");
        let Ok(Message::Request(req)) = parse(compact.as_bytes()) else { panic!("compact INVITE refused") };
        assert_eq!(req.branch(), Some("z9hG4bK-1-0"));
        assert_eq!((user(&req.from), tag(&req.from)), (Some("+254700000001"), Some("abc")));
        assert_eq!(req.call_id, "1-call@127.0.0.1");
        assert_eq!(req.contact.as_deref(), Some("<sip:amina@127.0.0.1:5061>"));
        assert_eq!(req.content_type.as_deref(), Some("application/sdp"));
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        assert_eq!(parse(&vec![b'a'; MAX_MESSAGE + 1]).unwrap_err(), ParseError::TooLarge);
        let no_call_id = INVITE.replace("Call-ID: 1-call@127.0.0.1\r\n", "");
        assert_eq!(parse(no_call_id.as_bytes()).unwrap_err(), ParseError::Missing("Call-ID"));
        assert!(matches!(parse(b"HELLO WORLD\r\n\r\n"), Err(ParseError::Malformed(_))));
        // Mutations of a real message: whatever happens, no panic escapes.
        let base = INVITE.as_bytes();
        for i in 0..base.len() {
            for b in [0u8, b':', b'\r', b' ', 0xFF] {
                let mut m = base.to_vec();
                m[i] = b;
                let _ = parse(&m);
            }
            let _ = parse(&base[..i]);
        }
    }
}
