//! SIP registrations with digest authentication: a load client in its own process (this binary,
//! `--register-client`) registers 1,000 provisioned phones over and over at a fixed rate — each
//! registration a challenged REGISTER (401) and one answering the MD5 digest (200) — while
//! Hodi's CPU is measured: authenticated REGISTERs per second achieved, CPU per registration,
//! and how many failed. (sipp cannot be the client: its `[authentication]` keyword takes no
//! per-user name from an injection file.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const USERS: usize = 1000;
const PASSWORD: &str = "bench-password";
const DOMAIN: &str = "bench.example";
/// Client sockets the load is spread over.
const SOCKETS: usize = 16;
/// How long a registration may take before it counts as failed.
const PATIENCE: Duration = Duration::from_secs(5);

struct Level {
    rate: usize,
    attempted: u64,
    registered: u64,
    failed: u64,
    per_second: f64,
    cpu_percent: f64,
    us_per_register: f64,
}

/// Responses waited for, by Call-ID.
type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<String>>>>;

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim)
}

/// One phone's registration: challenged, answered; Ok when the answer was accepted, else what
/// went wrong (for the client's summary).
async fn register(
    socket: &UdpSocket,
    waiting: &Waiting,
    server: std::net::SocketAddr,
    user: usize,
    id: u64,
) -> Result<(), String> {
    let me = socket.local_addr().map_err(|e| e.to_string())?;
    // Unique across runs too: a phone's refresh on a Call-ID it used before must count its CSeq
    // up (RFC 3261 §10.3), and each run starts again at 1.
    let call_id = format!("{id}-{}-bench", std::process::id());
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{id}x{cseq}\r\n\
             From: <sip:phone{user}@{DOMAIN}>;tag={id}\r\nTo: <sip:phone{user}@{DOMAIN}>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:phone{user}@{me}>\r\n{auth}Expires: 600\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let exchange = |bytes: String| {
        let (tx, rx) = oneshot::channel();
        waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id.clone(), tx);
        async move {
            socket.send_to(bytes.as_bytes(), server).await.ok()?;
            tokio::time::timeout(PATIENCE, rx).await.ok()?.ok()
        }
    };
    let status = |text: &str| text.get(8..11).unwrap_or("???").to_string();
    let challenge = exchange(request(1, "")).await.ok_or("no answer to the first REGISTER")?;
    let read = hodi::voice::registrar::digest::read_challenge(header(&challenge, "WWW-Authenticate:"))
        .ok_or_else(|| format!("first REGISTER answered {}", status(&challenge)))?;
    let answer = read.answer(&format!("phone{user}"), PASSWORD, "REGISTER", &format!("sip:{DOMAIN}"), "benchcn", 1);
    let ok = exchange(request(2, &format!("Authorization: {answer}\r\n"))).await.ok_or("no answer to the second")?;
    match ok.starts_with("SIP/2.0 200") {
        true => Ok(()),
        false => Err(format!("second REGISTER answered {}", status(&ok))),
    }
}

/// `--register-client SIP_ADDR RATE SECONDS`: registers at RATE per second for SECONDS and prints
/// "registered failed seconds-to-the-last-success".
pub fn client(args: &[String]) -> Result<()> {
    let server: std::net::SocketAddr = args.get(1).context("--register-client ADDR RATE SECONDS")?.parse()?;
    let rate: u64 = args.get(2).context("rate")?.parse()?;
    let seconds: u64 = args.get(3).context("seconds")?.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (ok, failed, last) = runtime.block_on(async move {
        let waiting: Waiting = Arc::default();
        let mut sockets = Vec::new();
        for _ in 0..SOCKETS {
            let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
            let (s, w) = (socket.clone(), waiting.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, _)) = s.recv_from(&mut buf).await {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let Some(call_id) = header(&text, "Call-ID:").map(str::to_string) else { continue };
                    if let Some(tx) = w.lock().unwrap_or_else(|p| p.into_inner()).remove(&call_id) {
                        let _ = tx.send(text);
                    }
                }
            });
            sockets.push(socket);
        }
        let total = rate * seconds;
        let start = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64)).await;
            let (socket, waiting) = (sockets[i as usize % SOCKETS].clone(), waiting.clone());
            tasks.spawn(async move { register(&socket, &waiting, server, i as usize % USERS, i).await });
        }
        let (mut ok, mut failed, mut last) = (0u64, 0u64, Duration::ZERO);
        let mut why: std::collections::BTreeMap<String, u64> = Default::default();
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {
                    ok += 1;
                    last = start.elapsed();
                }
                Ok(Err(e)) => {
                    failed += 1;
                    *why.entry(e).or_default() += 1;
                }
                Err(e) => {
                    failed += 1;
                    *why.entry(e.to_string()).or_default() += 1;
                }
            }
        }
        if !why.is_empty() {
            eprintln!("  at {rate}/s, failures: {why:?}");
        }
        anyhow::Ok((ok, failed, last))
    })?;
    println!("{ok} {failed} {}", last.as_secs_f64());
    Ok(())
}

async fn level(server: &super::BenchServer, rate: usize, seconds: usize) -> Result<Level> {
    let sip = server.running.bound.sip.context("SIP listener")?;
    let (cpu0, t0) = (super::cpu_seconds(), Instant::now());
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--register-client", &sip.to_string(), &rate.to_string(), &seconds.to_string()])
        .output()
        .await
        .context("the load client")?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let (cpu1, elapsed) = (super::cpu_seconds(), t0.elapsed().as_secs_f64());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = text.split_whitespace().map(|n| n.parse::<f64>().unwrap_or(0.0));
    let (registered, failed) = (counts.next().unwrap_or(0.0) as u64, counts.next().unwrap_or(0.0) as u64);
    // The rate over the time registrations were being accepted: not counting the wait for the
    // ones that failed (5 s each), nor starting the client.
    let window = counts.next().unwrap_or(0.0).max(seconds as f64);
    let cpu = cpu1 - cpu0;
    Ok(Level {
        rate,
        attempted: (rate * seconds) as u64,
        registered,
        failed,
        per_second: registered as f64 / window,
        cpu_percent: cpu / elapsed * 100.0,
        us_per_register: cpu / registered.max(1) as f64 * 1e6,
    })
}

async fn run(rates: &[usize], seconds: usize) -> Result<Vec<Level>> {
    let server = super::BenchServer::start("registrar", |c| {
        c.voice.sip_udp = "127.0.0.1:0".into();
        c.voice.sip_tcp.clear();
        c.voice.recordings_http.clear();
    })
    .await?;
    let org = server.dev.org_id.clone();
    for i in 0..USERS {
        let user = hodi::voice::registrar::sip_user(&org, DOMAIN, &format!("phone{i}"), PASSWORD, None, None)?;
        server.running.hodi.store.put_sip_user(&user).await?;
    }
    let mut out = Vec::new();
    for &rate in rates {
        let l = level(&server, rate, seconds).await?;
        eprintln!(
            "{rate}/s offered: {:.0} REGISTER/s accepted ({} of {}, {} failed), Hodi CPU {:.1}%, {:.1} µs per REGISTER",
            l.per_second, l.registered, l.attempted, l.failed, l.cpu_percent, l.us_per_register
        );
        out.push(l);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let registered = server.running.sip.as_ref().map_or(0, |s| s.registrar.registrations());
    eprintln!("{registered} phones registered at the end");
    server.stop();
    Ok(out)
}

pub fn main(args: &[String]) -> Result<()> {
    let max = super::arg(args, "--rate", 12_000.0)? as usize;
    let seconds = super::arg(args, "--seconds", 5.0)? as usize;
    let rates: Vec<usize> = [1000, 2500, 5000, 8000, 10_000, 12_000].into_iter().filter(|&r| r <= max).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = runtime.block_on(run(&rates, seconds.max(1)))?;
    let mut table = String::new();
    for l in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.1}% | {:.1} µs |\n",
            l.rate, l.attempted, l.registered, l.failed, l.per_second, l.cpu_percent, l.us_per_register
        ));
    }
    let section = format!(
        "## SIP registrations with digest auth (`hodi-bench registrar`)\n\n\
         A load client in its own process registers {USERS} provisioned phones over and over at each offered rate for\n\
         {seconds} s, from 16 UDP sockets: every registration is a REGISTER challenged with 401 and a second one\n\
         answering the MD5 digest (qop=auth), which Hodi checks against the stored HA1 (a store lookup per REGISTER)\n\
         before it updates the phone's binding; a registration not accepted within 5 s counts as failed. Hodi's CPU is\n\
         its process's (100% = one core; the machine has 2 and the client uses the other); per registration counts\n\
         both REGISTERs.\n\n\
         | offered /s | attempted | registered | failed | registered /s | Hodi CPU | CPU per registration |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- registrar` (`--rate N` caps the levels, `--seconds S`).\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## SIP registrations", &section)
}
