//! Test support: start a real `hodi serve` on free ports with its own data directory, and run the
//! node peers in `tests/peers` against it.

#![allow(dead_code)]

pub mod balancer;
pub mod cutter;
pub mod database;
pub mod inproc;
pub mod redis;
pub mod sip;
pub mod tagged;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Listening {
    pub tls: Option<String>,
    pub tcp: Option<String>,
    pub ws: Option<String>,
    pub wss: Option<String>,
    pub sip: Option<String>,
    pub webhooks: Option<String>,
    pub http: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DevCredentials {
    pub org_id: String,
    pub app_id: String,
    pub api_key: String,
    pub purse_id: String,
}

/// A running `hodi serve` child process; killed (by its PID) when dropped.
pub struct Hodi {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub listening: Listening,
    pub creds: DevCredentials,
    pub stdout: String,
    /// Where it stores (see [`database`]): kept while this server, or another on its data, runs.
    pub db: std::sync::Arc<database::TestDatabase>,
}

impl Hodi {
    /// Starts a server on free loopback ports, storing everything under `data_dir`.
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Hodi {
        std::fs::create_dir_all(data_dir).expect("data dir");
        Self::start_on(data_dir, database::TestDatabase::for_data_dir(data_dir), extra_env)
    }

    /// Starts another node on `first`'s database, with `first`'s dev credentials (the dev tenant
    /// is provisioned once per database).
    pub fn start_node(data_dir: &Path, first: &Hodi, extra_env: &[(&str, &str)]) -> Hodi {
        std::fs::create_dir_all(data_dir).expect("data dir");
        std::fs::copy(first.data_dir.join("dev-credentials.toml"), data_dir.join("dev-credentials.toml"))
            .expect("copying the dev credentials");
        // Nodes behind one name share its certificate, so a client trusting one trusts them all.
        std::fs::create_dir_all(data_dir.join("tls")).expect("tls dir");
        for file in ["cert.pem", "key.pem"] {
            std::fs::copy(first.data_dir.join("tls").join(file), data_dir.join("tls").join(file))
                .expect("copying the first node's certificate");
        }
        Self::start_on(data_dir, first.db.clone(), extra_env)
    }

    /// Starts a server on `db`.
    fn start_on(data_dir: &Path, db: std::sync::Arc<database::TestDatabase>, extra_env: &[(&str, &str)]) -> Hodi {
        let listening_file = data_dir.join("listening.toml");
        let _ = std::fs::remove_file(&listening_file);
        let stdout_file = data_dir.join("stdout.txt");
        std::fs::create_dir_all(data_dir).expect("data dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hodi"));
        cmd.arg("serve")
            .env("HODI_DATA_DIR", data_dir)
            .env("HODI_DATABASE_URL", &db.url)
            .env("HODI_LISTEN__TLS", "127.0.0.1:0")
            .env("HODI_LISTEN__TCP", "127.0.0.1:0")
            .env("HODI_LISTEN__WS", "127.0.0.1:0")
            .env("HODI_LISTEN__WSS", "127.0.0.1:0")
            .env("HODI_VOICE__SIP_UDP", "127.0.0.1:0")
            .env("HODI_VOICE__SIP_TCP", "127.0.0.1:0")
            .env("HODI_VOICE__RECORDINGS_HTTP", "127.0.0.1:0")
            .env("HODI_WEBHOOKS__LISTEN", "127.0.0.1:0")
            .env("HODI_LISTEN__HTTP", "127.0.0.1:0")
            .env("HODI_LOG", "info,hodi=debug")
            .stdout(std::fs::File::create(&stdout_file).expect("stdout file"))
            .stderr(std::fs::File::create(data_dir.join("stderr.txt")).expect("stderr file"));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning hodi");
        let started = Instant::now();
        while !listening_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "hodi exited with {status}: {}",
                    std::fs::read_to_string(data_dir.join("stderr.txt")).unwrap_or_default()
                );
            }
            assert!(started.elapsed() < Duration::from_secs(30), "hodi did not start within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let listening: Listening =
            toml::from_str(&std::fs::read_to_string(&listening_file).expect("listening.toml")).expect("parse");
        let creds: DevCredentials =
            toml::from_str(&std::fs::read_to_string(data_dir.join("dev-credentials.toml")).expect("dev credentials"))
                .expect("parse");
        // The banner is written right after listening.toml, ending with the certificate hint; on a
        // busy machine that can take more than a moment.
        let mut stdout = String::new();
        while started.elapsed() < Duration::from_secs(30) {
            stdout = std::fs::read_to_string(&stdout_file).unwrap_or_default();
            if stdout.contains("NODE_EXTRA_CA_CERTS") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Hodi { child: Some(child), data_dir: data_dir.to_path_buf(), listening, creds, stdout, db }
    }

    /// The operator's CLI against this server's data: `hodi` with its data directory and database.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hodi"));
        cmd.env("HODI_DATA_DIR", &self.data_dir).env("HODI_DATABASE_URL", &self.db.url).stdin(Stdio::null());
        cmd
    }

    /// Opens this server's store from the test (it may be running).
    pub async fn store(&self) -> hodi::store::Store {
        hodi::store::Store::open(&self.db.url).await.expect("opening the test's store")
    }

    pub fn port(addr: &Option<String>) -> String {
        addr.as_ref().and_then(|a| a.rsplit(':').next()).expect("listener enabled").to_string()
    }

    /// Stops the server (SIGKILL: nothing must depend on a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id (to signal it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits up to `within` for the server to exit by itself; its status, if it did.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("stderr.txt")).unwrap_or_default()
    }

    /// Runs `node tests/peers/<script> <args>` with this server's addresses and credentials.
    pub fn node(&self, script: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        self.node_command(script, args, extra_env).output().expect("running node")
    }

    /// The command [`Hodi::node`] runs, for a test that talks with the script while it runs.
    pub fn node_command(&self, script: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Command {
        let peers = peers_dir();
        let mut cmd = Command::new("node");
        cmd.arg(peers.join(script))
            .args(args)
            .current_dir(&peers)
            .env("HODI_HOST", "localhost")
            .env("HODI_TLS_PORT", Self::port(&self.listening.tls))
            .env("HODI_TCP_PORT", Self::port(&self.listening.tcp))
            .env("HODI_WS_PORT", Self::port(&self.listening.ws))
            .env("HODI_WSS_PORT", Self::port(&self.listening.wss))
            .env("HODI_HTTP_PORT", Self::port(&self.listening.http))
            .env("HODI_ORG", &self.creds.org_id)
            .env("HODI_APP", &self.creds.app_id)
            .env("HODI_KEY", &self.creds.api_key)
            .env("NODE_EXTRA_CA_CERTS", self.data_dir.join("tls/cert.pem"))
            // For scenarios that also use the operator's CLI against this server's store.
            .env("HODI_BIN", env!("CARGO_BIN_EXE_hodi"))
            .env("HODI_DATA_DIR", &self.data_dir)
            .env("HODI_DATABASE_URL", &self.db.url)
            .stdin(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Like [`Hodi::node`], failing the test with both sides' output unless the script succeeds.
    pub fn node_ok(&self, script: &str, args: &[&str], extra_env: &[(&str, &str)]) -> String {
        let out = self.node(script, args, extra_env);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{script} {args:?} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}\n--- hodi stderr (tail)\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.stderr(), 40)
        );
        stdout
    }
}

impl Drop for Hodi {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A loopback port free for TCP and UDP, for a peer that must be told its port before it binds
/// (a mock provider, sipp, redis-server). Chosen below the kernel's ephemeral range (32768 and up
/// on Linux), where the servers under test binding port 0 never land, so a port handed out here
/// is not taken meanwhile by one of them; ports are spread by process and handed out in turn, so
/// parallel tests do not pick the same one. Each comes with the next three free too and none of
/// them is handed out again by this process: sipp puts RTCP and more beside its media port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    const STEP: u32 = 4;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = std::process::id().wrapping_mul(7_919)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let _ = NEXT.compare_exchange(u32::MAX, (seed % SPAN) / STEP * STEP, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..SPAN / STEP {
        let port = (LOW + NEXT.fetch_add(STEP, Ordering::Relaxed) % SPAN) as u16;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp: Vec<_> = (0..STEP as u16).map(|i| std::net::UdpSocket::bind(("127.0.0.1", port + i))).collect();
        if tcp.is_ok() && udp.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
}

/// `tests/peers`, with its node modules installed (`scripts/test` installs them).
pub fn peers_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    assert!(
        dir.join("node_modules/elarian").exists() && dir.join("node_modules/rsocket-core").exists(),
        "the node test peers are not installed: run `npm ci --prefix tests/peers` (./scripts/test does this)"
    );
    dir
}

/// Reads until the peer closes or `within` passes; what was read, and whether it closed (for
/// tests that play a hostile client).
pub async fn read_until_closed(tcp: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// `GET path` on `addr`: the status code and the body.
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to the HTTP listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: hodi\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("request sent");
    let (text, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "the answer to GET {path} did not end");
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of the sample of `metric` whose labels include every one of `labels`.
pub fn metric_sample(metrics: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (name_labels, value) = line.rsplit_once(' ')?;
        let name = name_labels.split('{').next()?;
        (name == metric && labels.iter().all(|l| name_labels.contains(l))).then(|| value.parse().ok())?
    })
}

/// A peer process the test talks with while it runs: its stdout read line by line (each line
/// kept), its stderr gathered for the failure message, killed if dropped.
pub struct Talking {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    pub said: Vec<String>,
}

impl Talking {
    pub fn spawn(command: Command) -> Talking {
        use tokio::io::AsyncBufReadExt;
        let mut command = tokio::process::Command::from(command);
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().expect("spawning the peer");
        let lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut err = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut s).await;
            s
        });
        Talking { child, lines, stderr, said: Vec::new() }
    }

    /// The next line it prints before `deadline`; None when it ended or the time is up.
    pub async fn next_line(&mut self, deadline: tokio::time::Instant) -> Option<String> {
        let line = tokio::time::timeout_at(deadline, self.lines.next_line()).await.ok()?.ok()??;
        self.said.push(line.clone());
        Some(line)
    }

    /// Waits (10 s) for it to exit: whether it succeeded, and what it said on both outputs.
    pub async fn finish(mut self) -> (bool, String) {
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let ok = matches!(status, Ok(Ok(s)) if s.success());
        let err = self.stderr.await.unwrap_or_default();
        (ok, format!("exit {status:?}\n--- stdout\n{}\n--- stderr\n{err}", self.said.join("\n")))
    }
}

/// One raw HTTP/1.1 request on a fresh connection (closed after): (status, head, body bytes).
pub async fn http_request(addr: &str, request: &[u8]) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("written");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(answer.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, answer[split..].to_vec())
}

/// `GET path` (with a cookie), closing the connection after the answer.
pub fn http_get_request(path: &str, cookie: Option<&str>) -> Vec<u8> {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n{cookie}Connection: close\r\n\r\n").into_bytes()
}

/// The console's login form posted with `org` and `key`.
pub fn console_login_request(org: &str, key: &str) -> Vec<u8> {
    let body: String =
        form_urlencoded::Serializer::new(String::new()).append_pair("org", org).append_pair("key", key).finish();
    format!(
        "POST /console/login HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The `name=value` of the cookie a response sets.
pub fn session_cookie(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}
