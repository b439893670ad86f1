//! `hodi-bench hostile`: what each attack costs the server, and what it costs everyone else.
//!
//! The server runs in its own process (`hodi-bench --serve-hodi`: embedded SQLite, plain TCP,
//! default limits), so its memory is its own: VmRSS from /proc. This process plays the attacker
//! and, on its own connection, a legitimate app doing `getState` one after another; its p50 and
//! p99 are measured while each attack runs, next to the same client's figures with no attack in
//! the same run. Attackers use source addresses 127.0.0.2… (all of 127/8 is loopback on Linux),
//! since the server counts places per address and the legitimate client is 127.0.0.1.
//!
//! Attacks: idle authenticated app sockets (memory per socket), silent sockets that never send
//! SETUP, KEEPALIVE echo floods from clients that never read, a flood of empty fragments, wrong
//! API keys as fast as the server answers, and sendMessageByTag to 100,000 customers.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hodi::wire::*;
use hodi_rsocket::frame::{Body, Frame};
use hodi_rsocket::{Payload, Requester};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{arg, percentile};

/// Customers tagged for the by-tag attack.
const TAGGED: usize = 100_000;

/// The server side: starts Hodi, tags [`TAGGED`] customers, prints its address and the dev
/// credentials, and runs until stdin closes.
pub fn serve() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = super::BenchServer::start("hostile", |c| {
            c.voice.sip_udp = "127.0.0.1:0".into();
            c.voice.sip_tcp = "127.0.0.1:0".into();
            c.voice.recordings_http.clear();
        })
        .await?;
        let sip = server.running.sip.as_ref().context("the voice executor")?;
        let sip_tcp = sip.tcp.context("SIP over TCP")?;
        let store = server.running.hodi.store.clone();
        let org = server.dev.org_id.clone();
        let tagged = if std::env::var_os("HODI_BENCH_NO_TAGS").is_some() { 0 } else { TAGGED };
        for i in 0..tagged {
            let n = hodi::store::customers::StoredNumber {
                provider: CustomerNumberProvider::Cellular as i32,
                number: format!("+25471{i:07}"),
                partition: String::new(),
            };
            let (c, _) = store.customer_by_number(&org, &n).await?;
            let tag = hodi::store::identity::Index { key: "hostile".into(), value: "yes".into(), expires_at: None };
            store.upsert_tags(&org, &c.id, &[tag]).await?;
        }
        let mut out = std::io::stdout();
        writeln!(
            out,
            "{} {} {} {} {} {sip_tcp}",
            server.addr, server.dev.org_id, server.dev.app_id, server.dev.api_key, sip.local
        )?;
        out.flush()?;
        // Until the parent closes our stdin.
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while stdin.read(&mut buf).await.unwrap_or(0) > 0 {}
        server.stop();
        Ok(())
    })
}

struct Server {
    child: Child,
    addr: String,
    meta: AppConnectionMetadata,
    sip_udp: String,
    sip_tcp: String,
}

impl Server {
    fn spawn(tag: bool) -> Result<Server> {
        let mut command = Command::new(std::env::current_exe()?);
        if !tag {
            command.env("HODI_BENCH_NO_TAGS", "1");
        }
        let mut child = command
            .arg("--serve-hodi")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning the server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [addr, org, app, key, sip_udp, sip_tcp] = parts[..] else { bail!("the server said {line:?}") };
        let meta = AppConnectionMetadata {
            org_id: org.into(),
            app_id: app.into(),
            api_key: Some(key.into()),
            simplex_mode: true,
            ..Default::default()
        };
        Ok(Server { child, addr: addr.into(), meta, sip_udp: sip_udp.into(), sip_tcp: sip_tcp.into() })
    }

    /// The server's resident memory, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn socket_from(source: u8, addr: &str) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((std::net::Ipv4Addr::new(127, 0, 0, source), 0).into())?;
    Ok(socket.connect(addr.parse()?).await?)
}

async fn app_socket(source: u8, addr: &str, meta: &AppConnectionMetadata) -> Result<Requester> {
    let tcp = socket_from(source, addr).await?;
    tcp.set_nodelay(true)?;
    let io = hodi_rsocket::transport::length_prefixed::frame_io(tcp, 1 << 20, addr.to_string());
    let params = hodi_rsocket::SetupParams { payload: Payload::new(meta.encode_to_vec()), ..Default::default() };
    let responder = Arc::new(hodi_rsocket::echo::Echo::default());
    Ok(hodi_rsocket::connect(io, params, responder, hodi_rsocket::Config::default()).await?)
}

fn get_state(number: &str) -> Payload {
    let cmd = AppToServerCommand {
        entry: Some(app_to_server_command::Entry::GetCustomerState(GetCustomerStateCommand {
            customer: Some(get_customer_state_command::Customer::CustomerNumber(CustomerNumber {
                provider: CustomerNumberProvider::Cellular as i32,
                number: number.into(),
                partition: None,
            })),
        })),
    };
    Payload::new(cmd.encode_to_vec())
}

/// The legitimate app: `getState` one after another for `seconds`; latencies in ms, sorted.
async fn legitimate(client: &Requester, seconds: f64) -> Result<Vec<f64>> {
    let payload = get_state("+254799000001");
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < until {
        let started = Instant::now();
        match tokio::time::timeout(Duration::from_secs(30), client.request_response(payload.clone())).await {
            Ok(Ok(_)) => latencies.push(started.elapsed().as_secs_f64() * 1e3),
            Ok(Err(e)) => bail!("the legitimate client's request failed: {e}"),
            Err(_) => latencies.push(30_000.0),
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(latencies)
}

fn prefixed(frame: &Frame) -> Vec<u8> {
    let body = frame.to_bytes().expect("encodable");
    let mut out = vec![(body.len() >> 16) as u8, (body.len() >> 8) as u8, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

fn setup(meta: &AppConnectionMetadata) -> Frame {
    Frame::new(
        0,
        Body::Setup(hodi_rsocket::frame::Setup {
            major_version: 1,
            minor_version: 0,
            keepalive_interval: 30_000,
            max_lifetime: 90_000,
            resume_token: None,
            lease: false,
            metadata_mime: "application/octet-stream".into(),
            data_mime: "application/octet-stream".into(),
            payload: Payload::new(meta.encode_to_vec()),
        }),
    )
}

/// What an attack holds while it runs (sockets), dropped to end it.
type Held = Vec<Box<dyn std::any::Any + Send>>;

struct Attack {
    name: &'static str,
    /// What the attacker did, for the table.
    note: String,
    held: Held,
    stop: Arc<AtomicBool>,
}

struct Row {
    name: &'static str,
    note: String,
    rss_mb: f64,
    growth_mb: f64,
    p50: f64,
    p99: f64,
}

pub fn main(args: &[String]) -> Result<()> {
    let seconds = arg(args, "--seconds", 5.0)?;
    // `--only idle` runs the attacks whose name contains "idle" (nothing is written then).
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let tag = only.as_deref().is_none_or(|o| "sendMessageByTag".contains(o));
    eprintln!("hostile: starting the server{}", if tag { " and tagging 100,000 customers…" } else { "" });
    let server = Server::spawn(tag)?;
    let rows = runtime.block_on(run(&server, seconds, only.as_deref()))?;
    if only.is_some() {
        return Ok(());
    }
    let mut section = String::from(
        "## Hostile peers\n\n`cargo run --release -p hodi-bench -- --write hostile`. The server in its own process with \
         default limits; a legitimate app does `getState` one at a time on its own connection while each attack runs. \
         Memory is the server's resident set during the attack; growth is over its resident set just before the attack (the allocator keeps memory an earlier attack made it take).\n\n\
         | Attack | What the attacker did | Server RSS (MB) | Growth (MB) | getState p50 (ms) | getState p99 (ms) |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        section.push_str(&format!(
            "| {} | {} | {:.1} | {:+.1} | {:.2} | {:.2} |\n",
            r.name, r.note, r.rss_mb, r.growth_mb, r.p50, r.p99
        ));
    }
    section.push_str(&format!(
        "\nMachine: {} cores; each attack measured for {seconds} s.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Hostile peers", &section)
}

async fn run(server: &Server, seconds: f64, only: Option<&str>) -> Result<Vec<Row>> {
    let legit = app_socket(1, &server.addr, &server.meta).await?;
    legitimate(&legit, 1.0).await?; // warm-up
    let baseline = server.rss();
    let mut rows = Vec::new();
    let quiet = legitimate(&legit, seconds).await?;
    rows.push(Row {
        name: "none",
        note: "—".into(),
        rss_mb: baseline as f64 / 1e6,
        growth_mb: 0.0,
        p50: percentile(&quiet, 0.5),
        p99: percentile(&quiet, 0.99),
    });
    let starts: [(&str, Start); 8] = [
        ("idle", idle_sockets),
        ("silent", silent_sockets),
        ("keepalive", keepalive_flood),
        ("fragment", fragment_flood),
        ("keys", wrong_keys),
        ("sendMessageByTag", by_tag),
        ("sip-tcp", sip_tcp_idle),
        ("invite", junk_invites),
    ];
    for (short, start) in starts {
        if only.is_some_and(|o| !short.contains(o)) {
            continue;
        }
        // The allocator keeps what an earlier attack made the server take: growth is counted
        // from just before this one.
        let before = server.rss();
        let attack = start(server).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let latencies = legitimate(&legit, seconds).await?;
        let rss = server.rss();
        eprintln!(
            "{} ({}): rss {:.1} MB, p99 {:.2} ms",
            attack.name,
            attack.note,
            rss as f64 / 1e6,
            percentile(&latencies, 0.99)
        );
        rows.push(Row {
            name: attack.name,
            note: attack.note.clone(),
            rss_mb: rss as f64 / 1e6,
            growth_mb: (rss as f64 - before as f64) / 1e6,
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
        });
        attack.stop.store(true, Ordering::Relaxed);
        drop(attack.held);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(rows)
}

/// Starts one attack; it runs until its `stop` is set and its `held` sockets are dropped.
type Start = fn(&Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>>;

fn attack(name: &'static str, note: String, held: Held, stop: Arc<AtomicBool>) -> Attack {
    Attack { name, note, held, stop }
}

/// 5,000 authenticated app sockets that then say nothing (500 from each of 10 addresses).
fn idle_sockets(server: &Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>> {
    Box::pin(async move {
        let before = server.rss();
        let mut held: Held = Vec::new();
        for i in 0..5000usize {
            let client = app_socket(2 + (i / 500) as u8, &server.addr, &server.meta).await?;
            held.push(Box::new(client));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let per = (server.rss().saturating_sub(before)) as f64 / 5000.0 / 1024.0;
        Ok(attack("5,000 idle app sockets", format!("{per:.1} KB of server memory each"), held, Default::default()))
    })
}

/// `n` TCP connections to `addr` that send nothing, `per_source` from each of 127.0.0.`first`….
async fn silent(n: usize, first: u8, per_source: usize, addr: &str) -> Held {
    let mut held: Held = Vec::new();
    for i in 0..n {
        if let Ok(s) = socket_from(first + (i / per_source) as u8, addr).await {
            held.push(Box::new(s));
        }
    }
    held
}

/// 2,000 connections from 20 addresses that never send SETUP.
fn silent_sockets(server: &Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>> {
    Box::pin(async move {
        let held = silent(2000, 20, 100, &server.addr).await;
        Ok(attack("2,000 silent sockets", "no SETUP, 20 addresses".into(), held, Default::default()))
    })
}

/// Three clients sending 1 MB KEEPALIVEs with the respond flag, never reading.
fn keepalive_flood(
    server: &Server,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>> {
    Box::pin(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let frame = prefixed(&Frame::new(
            0,
            Body::Keepalive { respond: true, last_position: 0, data: vec![b'k'; 1000 * 1000].into() },
        ));
        for source in 50..53u8 {
            let mut tcp = socket_from(source, &server.addr).await?;
            tcp.write_all(&prefixed(&setup(&server.meta))).await?;
            let (stop, sent, frame) = (stop.clone(), sent.clone(), frame.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), tcp.write_all(&frame)).await {
                        Ok(Ok(())) => {
                            sent.fetch_add(frame.len() as u64, Ordering::Relaxed);
                        }
                        Ok(Err(_)) => break,
                        Err(_) => {}
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let note = format!("3 clients; {} MB written in 1 s, then blocked", sent.load(Ordering::Relaxed) / 1_000_000);
        Ok(attack("KEEPALIVE echo flood", note, Vec::new(), stop))
    })
}

/// One authenticated connection sending empty fragments as fast as it can.
fn fragment_flood(server: &Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>> {
    Box::pin(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut tcp = socket_from(60, &server.addr).await?;
        tcp.write_all(&prefixed(&setup(&server.meta))).await?;
        let first = prefixed(&Frame::new(1, Body::RequestResponse { follows: true, payload: Payload::default() }));
        let more = prefixed(&Frame::new(
            1,
            Body::Payload { follows: true, complete: false, next: true, payload: Payload::default() },
        ));
        let batch: Vec<u8> = more.iter().copied().cycle().take(more.len() * 10_000).collect();
        let (s, n) = (stop.clone(), sent.clone());
        tokio::spawn(async move {
            let _ = tcp.write_all(&first).await;
            while !s.load(Ordering::Relaxed) && n.load(Ordering::Relaxed) < 1_000_000 {
                if tcp.write_all(&batch).await.is_err() {
                    break;
                }
                n.fetch_add(10_000, Ordering::Relaxed);
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let note = format!("{} fragments sent before the server closed the connection", sent.load(Ordering::Relaxed));
        Ok(attack("empty-fragment flood", note, Vec::new(), stop))
    })
}

/// SETUPs with a wrong API key from one address, one after another, as fast as answered.
fn wrong_keys(server: &Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>> {
    Box::pin(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let (tried, examined) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let bad = AppConnectionMetadata { api_key: Some("hodi_key_wrong".into()), ..server.meta.clone() };
        let (s, t, e, addr) = (stop.clone(), tried.clone(), examined.clone(), server.addr.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let Ok(mut tcp) = socket_from(70, &addr).await else { break };
                let _ = tcp.write_all(&prefixed(&setup(&bad))).await;
                let mut reply = vec![0u8; 512];
                let n =
                    tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut reply)).await.ok().and_then(Result::ok);
                t.fetch_add(1, Ordering::Relaxed);
                if n.is_some_and(|n| String::from_utf8_lossy(&reply[..n]).contains("authentication failed")) {
                    e.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let note = format!(
            "{} SETUPs in the first second, {} of them examined",
            tried.load(Ordering::Relaxed),
            examined.load(Ordering::Relaxed)
        );
        Ok(attack("wrong API keys", note, Vec::new(), stop))
    })
}

/// sendMessageByTag to the 100,000 tagged customers, from another app socket.
fn by_tag(server: &Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>> {
    Box::pin(async move {
        let app = app_socket(80, &server.addr, &server.meta).await?;
        let cmd = super::messaging::sms_by_tag("hostile");
        let reply =
            AppToServerCommandReply::decode(app.request_response(Payload::new(cmd.encode_to_vec())).await?.data)?;
        anyhow::ensure!(
            matches!(
                reply.entry,
                Some(app_to_server_command_reply::Entry::TagCommand(TagCommandReply { status: true, .. }))
            ),
            "by-tag send refused: {reply:?}"
        );
        Ok(attack("sendMessageByTag", format!("{TAGGED} tagged customers"), vec![Box::new(app)], Default::default()))
    })
}

/// 1,000 SIP TCP connections from 20 addresses that send nothing (within the per-address cap).
fn sip_tcp_idle(server: &Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>> {
    Box::pin(async move {
        let held = silent(1000, 100, 50, &server.sip_tcp).await;
        Ok(attack("1,000 idle SIP TCP connections", "20 addresses, nothing sent".into(), held, Default::default()))
    })
}

/// INVITEs to a number nobody owns over UDP, a new Call-ID each, as fast as one socket sends.
fn junk_invites(server: &Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Attack>> + Send + '_>> {
    Box::pin(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let socket = tokio::net::UdpSocket::bind("127.0.0.9:0").await?;
        socket.connect(&server.sip_udp).await?;
        let me = socket.local_addr()?;
        let target = server.sip_udp.clone();
        let (s, n) = (stop.clone(), sent.clone());
        tokio::spawn(async move {
            let sdp =
                "v=0\r\no=p 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
            let mut i = 0u64;
            let mut answers = vec![0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                i += 1;
                let invite = format!(
                    "INVITE sip:+19999999@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKj{i}\r\n\
                     From: <sip:scanner@{me}>;tag=j{i}\r\nTo: <sip:+19999999@{target}>\r\nCall-ID: junk-{i}\r\n\
                     CSeq: 1 INVITE\r\nContact: <sip:scanner@{me}>\r\nMax-Forwards: 70\r\n\
                     Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                );
                if socket.send(invite.as_bytes()).await.is_err() {
                    break;
                }
                n.fetch_add(1, Ordering::Relaxed);
                // Drain answers so our socket buffer does not fill; pace at about 5,000 a second.
                while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_micros(200), socket.recv(&mut answers)).await
                {
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let note =
            format!("about {} INVITEs a second to an unknown number, new Call-ID each", sent.load(Ordering::Relaxed));
        Ok(attack("junk INVITE flood (UDP)", note, Vec::new(), stop))
    })
}
