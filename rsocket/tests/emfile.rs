//! An accept loop out of file descriptors. Alone in its own test binary (its own process),
//! because it lowers the process's `RLIMIT_NOFILE`.
//!
//! Once, a full descriptor table made the accept loop retry at once, 20 WARNs a second and a
//! whole core busy; now it backs off (10 ms doubling to 1 s) with one warning per 10 s, and
//! accepts again as soon as descriptors are free.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hodi_rsocket::frame::{Body, Frame};
use hodi_rsocket::{Config, Payload};
use tokio::net::TcpSocket;

mod common;
use common::*;

/// Collects what the server logs.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);
impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Log {
    fn count(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().expect("log")).matches(text).count()
    }
}

fn open_descriptors() -> u64 {
    // The directory handle itself is one of them.
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count() as u64 - 1
}

/// This process's CPU time, read from `stat`, opened beforehand (no descriptor is free later).
fn cpu_seconds(stat: &std::fs::File) -> f64 {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 4096];
    let n = stat.read_at(&mut buf, 0).expect("read stat");
    let stat = String::from_utf8_lossy(&buf[..n]);
    let after = stat.rsplit(')').next().expect("fields");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_loop_out_of_descriptors_backs_off_and_recovers() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).init();
    let addr = echo_server(Config::default()).await;
    // Sockets made now, connected once the table is full: connect() needs no new descriptor.
    let sockets: Vec<TcpSocket> = (0..20).map(|_| TcpSocket::new_v4().expect("socket")).collect();
    let stat = std::fs::File::open("/proc/self/stat").expect("stat");
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    rlimit::setrlimit(rlimit::Resource::NOFILE, open_descriptors(), hard).expect("lower the limit");
    let mut connected = Vec::new();
    for s in sockets {
        connected.push(tokio::spawn(s.connect(addr.parse().expect("addr"))));
    }
    let mut streams = Vec::new();
    for c in connected {
        streams.push(c.await.expect("task").expect("connected (queued in the kernel's backlog)"));
    }
    let cpu_before = cpu_seconds(&stat);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = cpu_seconds(&stat) - cpu_before;
    let warnings = log.count("accept failing");
    rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).expect("restore the limit");
    eprintln!("3 s out of descriptors: {cpu:.2} s CPU, {warnings} warnings");
    assert!(warnings >= 1, "the failing accept loop says so");
    assert!(warnings <= 1, "{warnings} warnings in 3 s: one per 10 s is enough");
    assert!(cpu < 1.0, "{cpu:.2} s of CPU in 3 s: the accept loop spins instead of backing off");
    // Descriptors are back: the waiting connections are accepted and served.
    let mut peer = RawPeer { tcp: streams.pop().expect("one") };
    peer.send(setup_frame(30_000)).await;
    peer.send(Frame::new(1, Body::RequestResponse { follows: false, payload: Payload::new("back") })).await;
    let started = Instant::now();
    let reply = peer.recv(Duration::from_secs(5)).await.expect("served once descriptors are free");
    assert_eq!(reply, Frame::response(1, Payload::new("back")), "after {:?}", started.elapsed());
}
