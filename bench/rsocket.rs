//! Request/response echo over loopback TCP, Hodi's RSocket layer against a Node echo server on npm
//! rsocket-core/rsocket-tcp-server 0.0.27 (the stack the Elarian SDK uses), measured in the same run
//! with the same client.
//!
//! Each server runs as its own process so its CPU time can be read from `/proc/<pid>/stat`.
//! Reported per configuration: median requests/s and median server CPU per request over several
//! rounds, and the Node/Hodi ratio of CPU per request.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{arg, median};
use hodi_rsocket::{Payload, Requester, SetupParams};

const PAYLOAD_BYTES: usize = 64;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut cmd: Command) -> Result<Server> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("spawning server")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line.trim().strip_prefix("listening ").context("server did not report its address")?.to_string();
    Ok(Server { child, addr })
}

/// (utime, stime) of a process, in seconds.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime / ticks_per_second, stime / ticks_per_second))
}

async fn connect(addr: &str) -> Result<Requester> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let io = hodi_rsocket::transport::length_prefixed::frame_io(tcp, 1 << 20, addr.to_string());
    let params = SetupParams {
        metadata_mime: "application/octet-stream".into(),
        data_mime: "application/octet-stream".into(),
        ..Default::default()
    };
    Ok(hodi_rsocket::connect(
        io,
        params,
        Arc::new(hodi_rsocket::echo::Echo::default()),
        hodi_rsocket::Config::default(),
    )
    .await?)
}

/// Runs `in_flight` request loops on one connection for `duration`; returns completed requests.
async fn load(client: &Requester, in_flight: usize, duration: Duration) -> Result<u64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let payload = Payload::new(vec![0x5Au8; PAYLOAD_BYTES]);
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (client, done, stop, payload) = (client.clone(), done.clone(), stop.clone(), payload.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let reply = client.request_response(payload.clone()).await?;
                    if reply.data.len() != PAYLOAD_BYTES {
                        bail!("echo returned {} bytes", reply.data.len());
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed))
}

struct Sample {
    requests_per_second: f64,
    /// Server CPU per request, user and system, in microseconds.
    user_us: f64,
    system_us: f64,
}

async fn measure(server: &Server, in_flight: usize, rounds: usize, seconds: f64, tck: f64) -> Result<Vec<Sample>> {
    let client = connect(&server.addr).await?;
    load(&client, in_flight, Duration::from_secs(1)).await?; // warm-up
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let (u0, s0) = cpu_seconds(server.child.id(), tck)?;
        let t0 = Instant::now();
        let n = load(&client, in_flight, Duration::from_secs_f64(seconds)).await?.max(1) as f64;
        let wall = t0.elapsed().as_secs_f64();
        let (u1, s1) = cpu_seconds(server.child.id(), tck)?;
        samples.push(Sample {
            requests_per_second: n / wall,
            user_us: (u1 - u0) * 1e6 / n,
            system_us: (s1 - s0) * 1e6 / n,
        });
    }
    client.close();
    Ok(samples)
}

/// Load only, for profiling a server: `--client ADDR IN_FLIGHT SECONDS`.
pub fn client(args: &[String]) -> Result<()> {
    let addr = args.get(1).context("--client ADDR IN_FLIGHT SECONDS")?.clone();
    let in_flight: usize = args.get(2).context("in flight")?.parse()?;
    let seconds: f64 = args.get(3).context("seconds")?.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let n = runtime.block_on(async {
        let client = connect(&addr).await?;
        load(&client, in_flight, Duration::from_secs_f64(seconds)).await
    })?;
    eprintln!("{n} requests");
    Ok(())
}

pub fn serve_echo() -> Result<()> {
    let workers: usize = std::env::var("HODI_BENCH_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(0);
    let runtime = if workers == 0 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?
    };
    runtime.block_on(async {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut out = std::io::stdout();
        writeln!(out, "listening {}", socket.local_addr()?)?;
        out.flush()?;
        let listener = hodi_rsocket::server::Listener {
            name: "bench",
            socket,
            framing: hodi_rsocket::server::Framing::LengthPrefixed,
            tls: None,
            handshake_timeout: Duration::from_secs(10),
        };
        let acceptor = Arc::new(hodi_rsocket::echo::EchoAcceptor::default());
        hodi_rsocket::server::run(listener, acceptor, hodi_rsocket::Config::default(), Default::default()).await;
        Ok(())
    })
}

pub fn main(args: &[String]) -> Result<()> {
    let rounds = arg(args, "--rounds", 5.0)? as usize;
    let seconds = arg(args, "--seconds", 3.0)?;
    let root = super::workspace_root();
    let peers = root.join("tests/peers");
    if !peers.join("node_modules/rsocket-tcp-server").exists() {
        bail!("install the Node peer first: npm ci --prefix tests/peers");
    }
    let tck: f64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?.trim().parse()?;
    let node_version = String::from_utf8(Command::new("node").arg("--version").output()?.stdout)?.trim().to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let servers: [(&str, ServerCommand); 3] = [
        ("Hodi, tokio current-thread", Box::new(|| hodi_echo(0))),
        ("Hodi, tokio multi-thread (2 workers)", Box::new(|| hodi_echo(2))),
        (
            "Node rsocket-js",
            Box::new(|| {
                let mut c = Command::new("node");
                c.arg(peers.join("echo_server.js")).arg("0").current_dir(&peers);
                Ok(c)
            }),
        ),
    ];
    let mut rows = Vec::new();
    for in_flight in [1usize, 8] {
        for (name, command) in &servers {
            let server = spawn(command()?)?;
            let samples = runtime.block_on(measure(&server, in_flight, rounds, seconds, tck))?;
            drop(server);
            let row = Row {
                server: name.to_string(),
                in_flight,
                requests_per_second: median(samples.iter().map(|x| x.requests_per_second).collect()),
                user_us: median(samples.iter().map(|x| x.user_us).collect()),
                system_us: median(samples.iter().map(|x| x.system_us).collect()),
                total_us: median(samples.iter().map(|x| x.user_us + x.system_us).collect()),
            };
            eprintln!(
                "in flight {in_flight}: {name}: {:.0} req/s, server CPU {:.1} us/req ({:.1} user + {:.1} system)",
                row.requests_per_second, row.total_us, row.user_us, row.system_us
            );
            rows.push(row);
        }
    }
    write_report(&root.join("docs/benchmarks.md"), &rows, rounds, seconds, &node_version)
}

/// Builds the command that starts one kind of echo server.
type ServerCommand<'a> = Box<dyn Fn() -> Result<Command> + 'a>;

struct Row {
    server: String,
    in_flight: usize,
    requests_per_second: f64,
    user_us: f64,
    system_us: f64,
    total_us: f64,
}

fn hodi_echo(workers: usize) -> Result<Command> {
    let mut c = Command::new(std::env::current_exe()?);
    c.arg("--serve-echo").env("HODI_BENCH_WORKERS", workers.to_string());
    Ok(c)
}

fn write_report(path: &Path, rows: &[Row], rounds: usize, seconds: f64, node: &str) -> Result<()> {
    let mut table = String::from(
        "| in flight | server | req/s | server CPU µs/req | user µs/req | system µs/req | Node ÷ this, CPU/req | Node ÷ this, user CPU/req |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let node =
            rows.iter().find(|r| r.in_flight == row.in_flight && r.server.starts_with("Node")).context("node row")?;
        table.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |\n",
            row.in_flight,
            row.server,
            row.requests_per_second,
            row.total_us,
            row.user_us,
            row.system_us,
            node.total_us / row.total_us,
            node.user_us / row.user_us
        ));
    }
    let section = format!(
        "## RSocket request/response echo (`hodi-bench`)\n\n\
         Loopback TCP, one connection, {PAYLOAD_BYTES}-byte payloads, the same Rust client (hodi-rsocket) driving both servers.\n\
         Hodi: `hodi_rsocket::echo` in its own process, on a current-thread and on a 2-worker tokio runtime. Node: `tests/peers/echo_server.js`\n\
         (rsocket-core/rsocket-tcp-server 0.0.27, node {node}). Medians of {rounds} rounds of {seconds} s after a 1 s warm-up;\n\
         server CPU is utime+stime from /proc. Client and server share the machine's cores.\n\n{table}\n\
         With one request in flight both servers make the same three system calls per request (epoll_wait, read, write;\n\
         `strace -c` on either), so kernel time on loopback TCP dominates and bounds the total ratio; the user column is\n\
         what each RSocket implementation itself costs. With eight in flight, frames batch per read and per write.\n\n\
         Measured by `cargo run --release -p hodi-bench`.\n"
    );
    super::write_section(path, "## RSocket request/response echo", &section)
}
