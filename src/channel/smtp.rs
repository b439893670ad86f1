//! Email over SMTP submission: STARTTLS or implicit TLS, AUTH when a username is set.
//!
//! Each message becomes a MIME message (plain and HTML alternatives when the app gave both) from
//! our email channel number to the customer, with the app's cc and bcc. Its `Message-ID` is
//! ours, made from the message id, and is what the app sees as the provider's id. A 4xx reply or
//! a lost connection is tried again; a 5xx reply fails the message with the server's words.
//!
//! The SMTP client and MIME building are `lettre`'s.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::worker::{Refusal, Transport};
use crate::config::providers::Smtp as Settings;
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::wire::outbound_message_body::Entry;

/// One SMTP provider.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp").finish_non_exhaustive()
    }
}

impl Smtp {
    /// Builds the client; refuses settings that can never work (no address, an unknown TLS
    /// mode, a password variable that is not set). The server is first reached on the first send.
    pub fn new(settings: &Settings) -> Result<Smtp, String> {
        let (host, port) = settings
            .address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("address {:?} is not host:port", settings.address))?;
        let ca = match settings.ca_file.as_str() {
            "" => None,
            path => {
                let pem = std::fs::read(path).map_err(|e| format!("ca_file {path}: {e}"))?;
                Some(Certificate::from_pem(&pem).map_err(|e| format!("ca_file {path}: {e}"))?)
            }
        };
        let tls_parameters = || {
            let mut builder =
                TlsParameters::builder(host.clone()).dangerous_accept_invalid_certs(settings.accept_invalid_certs);
            if let Some(ca) = ca.clone() {
                builder = builder.add_root_certificate(ca);
            }
            builder.build_rustls().map_err(|e| format!("TLS settings: {e}"))
        };
        let tls = match settings.tls.as_str() {
            "starttls" => Tls::Required(tls_parameters()?),
            "tls" => Tls::Wrapper(tls_parameters()?),
            "none" => Tls::None,
            other => return Err(format!("tls = {other:?}: use starttls, tls or none")),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(settings.timeout_secs.max(1))));
        if !settings.username.is_empty() {
            let password = settings.password()?;
            builder = builder.credentials(Credentials::new(settings.username.clone(), password.expose().to_string()));
        }
        Ok(Smtp { transport: builder.build() })
    }
}

/// The MIME message for a queued email.
fn compose(message: &QueuedSend) -> Result<(lettre::Message, String), Refusal> {
    let entry = super::body::outbound(message)?;
    let mailbox = |v: &str, what: &str| {
        v.parse::<Mailbox>().map_err(|e| Refusal::Permanent(format!("{what} {v:?} is not an email address: {e}")))
    };
    let from = mailbox(&message.channel_number, "our address")?;
    let to = mailbox(&message.customer_number, "the customer's address")?;
    let domain = from.email.domain().to_string();
    let message_id = format!("<{}@{domain}>", message.message_id);
    let mut builder = lettre::Message::builder().from(from).to(to).message_id(Some(message_id.clone()));
    let body = match entry {
        Entry::Email(email) => {
            builder = builder.subject(email.subject);
            for cc in &email.cc_list {
                builder = builder.cc(mailbox(cc, "cc")?);
            }
            for bcc in &email.bcc_list {
                builder = builder.bcc(mailbox(bcc, "bcc")?);
            }
            match (email.body_plain.is_empty(), email.body_html.is_empty()) {
                (_, true) => builder.singlepart(SinglePart::plain(email.body_plain)),
                (true, false) => builder.singlepart(SinglePart::html(email.body_html)),
                (false, false) => {
                    builder.multipart(MultiPart::alternative_plain_html(email.body_plain, email.body_html))
                }
            }
        }
        Entry::Text(text) | Entry::Url(text) => builder.header(ContentType::TEXT_PLAIN).body(text),
        other => {
            return Err(Refusal::Permanent(format!(
                "email carries an email body or text, not {}",
                super::body::kind(&other)
            )))
        }
    };
    let mail = body.map_err(|e| Refusal::Permanent(format!("cannot build the email: {e}")))?;
    Ok((mail, message_id))
}

impl Transport for Smtp {
    async fn send(&self, message: &QueuedSend) -> Result<Vec<AcceptedPart>, Refusal> {
        let (mail, message_id) = compose(message)?;
        match self.transport.send(mail).await {
            Ok(_) => Ok(vec![AcceptedPart { provider_message_id: message_id, part: 1, parts: 1 }]),
            Err(e) if e.is_permanent() => Err(Refusal::Permanent(format!("the mail server refused it: {e}"))),
            Err(e) => Err(Refusal::Transient(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    use crate::wire::{EmailMessageBody, OutboundMessage, OutboundMessageBody};

    fn queued(body: Entry, to: &str) -> QueuedSend {
        QueuedSend {
            message_id: "msg_1".into(),
            provider: "mail".into(),
            org_id: "o".into(),
            app_id: "a".into(),
            customer_id: "c".into(),
            channel: 7,
            channel_number: "hodi@example.org".into(),
            customer_number: to.into(),
            message: OutboundMessage { body: Some(OutboundMessageBody { entry: Some(body) }), ..Default::default() }
                .encode_to_vec(),
            attempts: 0,
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn an_email_body_becomes_headers_and_alternatives_and_bad_addresses_are_permanent() {
        let email = EmailMessageBody {
            subject: "Your balance".into(),
            body_plain: "You owe 5".into(),
            body_html: "<p>You owe 5</p>".into(),
            cc_list: vec!["boss@example.org".into()],
            bcc_list: vec!["audit@example.org".into()],
        };
        let (mail, id) = compose(&queued(Entry::Email(email), "jane@example.com")).expect("composes");
        assert_eq!(id, "<msg_1@example.org>");
        let text = String::from_utf8(mail.formatted()).expect("utf-8");
        for needle in [
            "From: hodi@example.org",
            "To: jane@example.com",
            "Cc: boss@example.org",
            "Subject: Your balance",
            "Message-ID: <msg_1@example.org>",
            "multipart/alternative",
            "<p>You owe 5</p>",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert!(!text.contains("audit@example.org"), "bcc must not be a header");
        assert_eq!(mail.envelope().to().len(), 3, "bcc is an envelope recipient");
        let bad = compose(&queued(Entry::Text("hi".into()), "not an address"));
        assert!(matches!(bad, Err(Refusal::Permanent(_))), "{bad:?}");
    }
}
