//! One SMTP connection: lines from the client go to `mailin`'s state machine, its responses go
//! back. The machine decides synchronously; what needs the store is done here around it: a
//! `RCPT TO` address is looked up before the machine sees the line (its [`Envelope`] then answers
//! from that), and a finished message is stored before the machine's `250` is written (or a `451`
//! instead, when storing fails).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin::response::{self, Response};
use mailin::{Action, Handler, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::Mail;
use crate::context::Hodi;

/// Longest line taken (RFC 5321 allows 1,000 octets; some senders write longer).
const MAX_LINE: usize = 8 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What a `RCPT TO` was found to be before the machine sees it.
#[derive(Debug)]
enum Lookup {
    /// An email number bound to this provider.
    Accepted(String, String),
    NoMailbox,
    TooMany,
}

/// The machine's handler: one message's envelope and data.
#[derive(Debug, Default)]
struct Envelope {
    from: String,
    to: Vec<(String, String)>,
    data: Vec<u8>,
    too_big: bool,
    in_data: bool,
    max_bytes: usize,
    /// The looked-up answer for the `RCPT TO` being processed.
    lookup: Option<Lookup>,
    /// A message taken whole, for the IO side to store.
    finished: Option<Mail>,
    /// The real answer to a message the handler told the machine was fine: the machine stays in
    /// its DATA state after an error answer at the end of a message (mailin 0.6), reading the next
    /// commands as message text, so a refusal is passed to the IO side to write instead.
    refusal: Option<Response>,
}

impl Handler for Envelope {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_string();
        self.to.clear();
        response::OK
    }

    fn rcpt(&mut self, _to: &str) -> Response {
        match self.lookup.take() {
            Some(Lookup::Accepted(address, provider)) => {
                self.to.push((address, provider));
                response::OK
            }
            Some(Lookup::TooMany) => Response::custom(452, "Too many recipients".into()),
            Some(Lookup::NoMailbox) | None => response::NO_MAILBOX,
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, _to: &[String]) -> Response {
        self.data.clear();
        self.too_big = false;
        self.in_data = true;
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        // Past the limit nothing more is kept; the message is refused at its end.
        if self.data.len() + buf.len() > self.max_bytes {
            self.too_big = true;
        } else {
            self.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.in_data = false;
        if self.too_big {
            self.data = Vec::new();
            self.refusal = Some(response::NO_STORAGE);
            return response::OK;
        }
        let data = std::mem::take(&mut self.data);
        self.finished = Some(Mail { from: self.from.clone(), to: std::mem::take(&mut self.to), data });
        response::OK
    }
}

/// The machine keeps its handler to itself; this one shares the envelope with the IO side (never
/// locked across an await).
#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Envelope>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Envelope) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Handler for Shared {
    fn mail(&mut self, ip: IpAddr, domain: &str, from: &str) -> Response {
        self.with(|e| e.mail(ip, domain, from))
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.with(|e| e.rcpt(to))
    }

    fn data_start(&mut self, domain: &str, from: &str, is8bit: bool, to: &[String]) -> Response {
        self.with(|e| e.data_start(domain, from, is8bit, to))
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with(|e| e.data(buf))
    }

    fn data_end(&mut self) -> Response {
        self.with(|e| e.data_end())
    }
}

/// The address of a `RCPT TO:<address>` line, if it is one.
fn rcpt_address(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.get(..8)?.eq_ignore_ascii_case("RCPT TO:") {
        return None;
    }
    let rest = &text[8..];
    let start = rest.find('<')? + 1;
    let end = rest[start..].find('>')? + start;
    Some(rest[start..end].trim().to_string())
}

/// Reads one line of at most [`MAX_LINE`] within `timeout`: None at the end of the stream.
async fn read_line(
    reader: &mut BufReader<Box<dyn Io>>,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> io::Result<Option<()>> {
    buf.clear();
    let read = tokio::time::timeout(timeout, reader.take(MAX_LINE as u64 + 1).read_until(b'\n', buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no command in time"))??;
    if read == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE || !buf.ends_with(b"\n") {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a line longer than 8 KiB"));
    }
    Ok(Some(()))
}

async fn write(reader: &mut BufReader<Box<dyn Io>>, response: &Response) -> io::Result<()> {
    let bytes = response.buffer()?;
    reader.get_mut().write_all(&bytes).await?;
    reader.get_mut().flush().await
}

/// Serves one connection until it ends.
pub(super) async fn serve(
    hodi: &Arc<Hodi>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> io::Result<()> {
    let settings = &hodi.config.inbox;
    let timeout = Duration::from_secs(settings.command_timeout_secs.max(1));
    let mut builder = SessionBuilder::new(settings.hostname.clone());
    if tls.is_some() {
        builder.enable_start_tls();
    }
    let envelope =
        Shared(Arc::new(Mutex::new(Envelope { max_bytes: settings.max_message_bytes, ..Envelope::default() })));
    let mut session = builder.build(peer.ip(), envelope.clone());
    let mut reader = BufReader::new(Box::new(tcp) as Box<dyn Io>);
    write(&mut reader, &session.greeting()).await?;
    let mut line = Vec::with_capacity(256);
    let mut tls = tls;
    loop {
        if read_line(&mut reader, &mut line, timeout).await?.is_none() {
            return Ok(());
        }
        if !envelope.with(|e| e.in_data) {
            if let Some(address) = rcpt_address(&line) {
                let lookup = if envelope.with(|e| e.to.len()) >= settings.max_recipients {
                    Lookup::TooMany
                } else {
                    match super::recipient(hodi, &address).await {
                        Ok(Some(provider)) => Lookup::Accepted(address, provider),
                        Ok(None) => Lookup::NoMailbox,
                        Err(e) => {
                            warn!(%peer, error = %e, "inbox: looking up a recipient");
                            write(&mut reader, &response::INTERNAL_ERROR).await?;
                            continue;
                        }
                    }
                };
                envelope.with(|e| e.lookup = Some(lookup));
            }
        }
        let mut reply = session.process(&line);
        if let Some(refusal) = envelope.with(|e| e.refusal.take()) {
            reply = refusal;
        }
        if let Some(mail) = envelope.with(|e| e.finished.take()) {
            reply = store(hodi, peer, &mail).await;
        }
        match reply.action {
            Action::NoReply => {}
            Action::Reply => write(&mut reader, &reply).await?,
            Action::Close => {
                write(&mut reader, &reply).await?;
                return Ok(());
            }
            Action::UpgradeTls => {
                write(&mut reader, &reply).await?;
                // Commands sent before the handshake would be read as if they came over TLS
                // (the STARTTLS command injection): a client that pipelines past it is dropped.
                if !reader.buffer().is_empty() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "commands pipelined after STARTTLS"));
                }
                let Some(acceptor) = tls.take() else {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "STARTTLS twice"));
                };
                let plain = reader.into_inner();
                let secured = tokio::time::timeout(timeout, acceptor.accept(plain))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake"))??;
                reader = BufReader::new(Box::new(secured) as Box<dyn Io>);
                session.tls_active();
            }
        }
    }
}

/// Stores a finished message: `250` once it is, `451` (try again) if it cannot be, `554` if it is
/// no message at all.
async fn store(hodi: &Arc<Hodi>, peer: SocketAddr, mail: &Mail) -> Response {
    let events = match super::received(mail) {
        Ok(events) => events,
        Err(why) => {
            info!(%peer, why, "inbox: a message refused");
            return Response::custom(554, format!("Transaction failed: {why}"));
        }
    };
    let count = events.len();
    match crate::messaging::providers::apply(hodi, events).await {
        Ok(()) => {
            debug!(%peer, recipients = count, bytes = mail.data.len(), "inbox: a message stored");
            response::OK
        }
        Err(e) => {
            warn!(%peer, error = %e, "inbox: storing a message");
            response::INTERNAL_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcpt_lines_give_their_address() {
        assert_eq!(rcpt_address(b"RCPT TO:<news@hodi.example>\r\n").as_deref(), Some("news@hodi.example"));
        assert_eq!(
            rcpt_address(b"rcpt to: <News@Hodi.example> NOTIFY=NEVER\r\n").as_deref(),
            Some("News@Hodi.example")
        );
        assert_eq!(rcpt_address(b"MAIL FROM:<a@b>\r\n"), None);
        assert_eq!(rcpt_address(b"RCPT TO:news@hodi.example\r\n"), None, "no brackets: the machine refuses it");
        assert_eq!(rcpt_address(b"RCPT"), None);
        assert_eq!(rcpt_address(&[0xff, 0xfe]), None);
    }

    #[test]
    fn the_envelope_keeps_what_was_accepted_and_refuses_what_is_too_big() {
        let mut e = Envelope { max_bytes: 10, ..Envelope::default() };
        e.mail(IpAddr::from([127, 0, 0, 1]), "x", "a@example.com");
        e.lookup = Some(Lookup::Accepted("news@hodi.example".into(), "mail".into()));
        assert_eq!(e.rcpt("news@hodi.example").code, 250);
        assert_eq!(e.rcpt("other@hodi.example").code, 550, "no lookup: no mailbox");
        e.lookup = Some(Lookup::TooMany);
        assert_eq!(e.rcpt("x@hodi.example").code, 452);
        e.data_start("x", "a@example.com", false, &[]);
        e.data(b"0123456789").expect("data");
        assert_eq!(e.data_end().code, 250);
        let mail = e.finished.take().expect("a message");
        assert_eq!((mail.to.len(), mail.data.len()), (1, 10));
        e.data_start("x", "a@example.com", false, &[]);
        e.data(b"0123456789AB").expect("data");
        assert_eq!(e.data_end().code, 250, "the machine must leave DATA");
        assert_eq!(e.refusal.take().map(|r| r.code), Some(552), "the client hears 552");
        assert!(e.finished.is_none());
    }
}
