//! The inbox: Hodi's own SMTP receiver (`[inbox] listen`), so that customers' email to the org's
//! email numbers reaches the app as `receivedEmail` without a mail provider in between.
//!
//! It takes mail for email numbers bound to an `smtp` provider (the same numbers send through that
//! provider's submission server): `RCPT TO` another address is 550. A message is parsed with
//! `mail-parser` (subject, plain and HTML bodies; the customer is the `From` header's address, else
//! the envelope sender) and stored, with its notification, before the `250` — a 451 makes the
//! sending server try again, and its `Message-ID` keeps a second delivery from reaching the app
//! twice. STARTTLS is offered with Hodi's certificate.
//!
//! The SMTP state machine is the `mailin` crate's (sans-IO: lines in, responses out); this module
//! is the IO around it ([`session`]). Like the webhooks, it is the internet's door: connections
//! are capped in total and per source address (`hodi_rsocket::admission`), each command must come
//! within `command_timeout_secs`, a connection lives at most `session_secs`, a line is at most
//! 8 KiB, a message at most `max_message_bytes`, and a message has at most `max_recipients`.
//!
//! Owns the SMTP side only; what a message means is messaging's (`messaging::providers::apply`).

mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hodi_rsocket::admission::{Admission, AdmittedListener};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::channel::events::{ChannelEvent, Received, ReceivedEmail};
use crate::config::providers::Provider;
use crate::context::Hodi;
use crate::wire::MessagingChannel;

/// Starts the listener (unless `[inbox] listen` is empty); where it listens.
pub async fn start(hodi: Arc<Hodi>, tls: TlsAcceptor, shutdown: CancellationToken) -> Result<Option<SocketAddr>> {
    let settings = hodi.config.inbox.clone();
    if settings.listen.trim().is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(settings.listen.trim()).await.with_context(|| {
        format!("inbox.listen = {:?}: cannot listen there (in use, or not an address of this host)", settings.listen)
    })?;
    let local = listener.local_addr()?;
    let admission = Admission::new("inbox", settings.max_connections, settings.max_connections_per_address);
    let mut listener = AdmittedListener::new("inbox", listener, admission);
    let tls = settings.starttls.then_some(tls);
    info!(%local, starttls = tls.is_some(), "inbox listening for SMTP");
    tokio::spawn(async move {
        while let Some((tcp, peer, ticket)) = listener.next(&shutdown).await {
            let (hodi, tls, shutdown) = (hodi.clone(), tls.clone(), shutdown.clone());
            tokio::spawn(async move {
                let lifetime = Duration::from_secs(hodi.config.inbox.session_secs.max(1));
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    done = tokio::time::timeout(lifetime, session::serve(&hodi, tcp, peer, tls)) => match done {
                        Ok(Err(e)) => debug!(%peer, error = %e, "inbox: connection ended"),
                        Err(_) => debug!(%peer, "inbox: connection closed at the end of its lifetime"),
                        Ok(Ok(())) => {}
                    },
                }
                drop(ticket);
            });
        }
    });
    Ok(Some(local))
}

/// The `smtp` provider an email number takes mail for, if any.
async fn recipient(hodi: &Hodi, address: &str) -> Result<Option<String>> {
    let smtp = hodi.config.providers.iter().filter(|(_, p)| matches!(p, Provider::Smtp(_)));
    for (name, _) in smtp {
        for candidate in [address.to_string(), address.to_ascii_lowercase()] {
            if hodi.store.provider_number_owner(name, "email", &candidate).await?.is_some() {
                return Ok(Some(name.clone()));
            }
        }
    }
    Ok(None)
}

/// A message as the session took it: the envelope and the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mail {
    from: String,
    /// Each accepted recipient and the provider its number is bound to.
    to: Vec<(String, String)>,
    data: Vec<u8>,
}

/// What a message becomes: one received email per recipient.
fn received(mail: &Mail) -> Result<Vec<ChannelEvent>, String> {
    let parsed = mail_parser::MessageParser::default().parse(&mail.data).ok_or("the message does not parse")?;
    let sender = parsed
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(str::to_string)
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| mail.from.clone());
    if sender.is_empty() {
        return Err("no sender: neither a From header nor MAIL FROM".into());
    }
    let subject = parsed.subject().unwrap_or_default().to_string();
    let text = parsed.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let html = parsed.body_html(0).map(|t| t.into_owned()).unwrap_or_default();
    let id = parsed.message_id().map(str::to_string);
    Ok(mail
        .to
        .iter()
        .map(|(address, provider)| {
            ChannelEvent::Received(Received {
                provider: provider.clone(),
                channel: MessagingChannel::Email,
                channel_number: address.clone(),
                customer_number: sender.clone(),
                text: text.clone(),
                provider_message_id: id.clone(),
                email: Some(ReceivedEmail { subject: subject.clone(), body_html: html.clone() }),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_becomes_one_email_per_recipient_from_its_from_header() {
        let data =
            b"From: Ada <ada@example.com>\r\nTo: news@hodi.example\r\nSubject: Hi\r\nMessage-ID: <m1@example.com>\r\n\
            Content-Type: text/plain\r\n\r\nHello there\r\n"
                .to_vec();
        let mail = Mail {
            from: "bounces+x@example.com".into(),
            to: vec![("news@hodi.example".into(), "mail".into()), ("help@hodi.example".into(), "mail".into())],
            data,
        };
        let events = received(&mail).expect("parses");
        assert_eq!(events.len(), 2);
        let ChannelEvent::Received(r) = &events[1] else { panic!("an email") };
        assert_eq!(r.customer_number, "ada@example.com", "the From header, not the bounce address");
        assert_eq!(r.channel_number, "help@hodi.example");
        assert_eq!(r.text.trim_end(), "Hello there");
        assert_eq!(r.provider_message_id.as_deref(), Some("m1@example.com"));
        let bare = Mail { from: "x@example.com".into(), to: mail.to.clone(), data: b"\r\nno headers\r\n".to_vec() };
        let ChannelEvent::Received(r) = &received(&bare).expect("parses")[0] else { panic!("an email") };
        assert_eq!(r.customer_number, "x@example.com", "the envelope sender without a From header");
    }
}
