//! SIP registrations with digest authentication: sipp (a separate process) registers 1,000
//! provisioned phones over and over at a fixed rate — each registration a challenged REGISTER
//! (401) and an answered one (200) — and Hodi's CPU is measured meanwhile: authenticated
//! REGISTERs per second achieved, CPU per REGISTER, and how many failed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

const USERS: usize = 1000;
const PASSWORD: &str = "bench-password";

struct Level {
    rate: usize,
    attempted: u64,
    registered: u64,
    failed: u64,
    per_second: f64,
    cpu_percent: f64,
    us_per_register: f64,
}

fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last line of sipp's statistics file: (successful, failed) calls.
fn sipp_counts(stats: &std::path::Path) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(stats).context("sipp statistics")?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("header")?.split(';').collect();
    let last: Vec<&str> = lines.rfind(|l| !l.trim().is_empty()).context("a statistics line")?.split(';').collect();
    let column = |name: &str| -> Result<u64> {
        let i = header.iter().position(|h| *h == name).with_context(|| format!("no {name} column"))?;
        Ok(last.get(i).and_then(|v| v.trim().parse().ok()).unwrap_or(0))
    };
    Ok((column("SuccessfulCall(C)")?, column("FailedCall(C)")?))
}

async fn level(server: &super::BenchServer, users: &std::path::Path, rate: usize, seconds: usize) -> Result<Level> {
    let sip = server.running.bound.sip.context("SIP listener")?;
    let scenario = super::workspace_root().join("bench/sip/uac_register.xml");
    let stats = server.dir.join(format!("register-{rate}.csv"));
    let total = rate * seconds;
    let (cpu0, t0) = (super::cpu_seconds(), Instant::now());
    let status = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .arg("-inf")
        .arg(users)
        .args([&sip.to_string(), "-i", "127.0.0.1", "-p", &free_port()?.to_string()])
        .args(["-r", &rate.to_string(), "-m", &total.to_string(), "-l", "5000", "-nostdin", "-timeout", "120s"])
        .args(["-recv_timeout", "5000", "-trace_stat", "-fd", "1", "-stf"])
        .arg(&stats)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("sipp (apt install sip-tester)")?;
    let (cpu1, elapsed) = (super::cpu_seconds(), t0.elapsed().as_secs_f64());
    let (registered, failed) = sipp_counts(&stats)?;
    if !status.success() {
        eprintln!("sipp at {rate}/s: {status} ({failed} failed)");
    }
    let cpu = cpu1 - cpu0;
    Ok(Level {
        rate,
        attempted: total as u64,
        registered,
        failed,
        per_second: registered as f64 / elapsed,
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
    let mut file = String::from("SEQUENTIAL\n");
    for i in 0..USERS {
        let name = format!("phone{i}");
        let user = hodi::voice::registrar::sip_user(&org, "bench.example", &name, PASSWORD, None, None)?;
        server.running.hodi.store.put_sip_user(&user).await?;
        file.push_str(&format!("{name};{PASSWORD}\n"));
    }
    let users = server.dir.join("users.csv");
    std::fs::write(&users, file)?;
    let mut out = Vec::new();
    for &rate in rates {
        let l = level(&server, &users, rate, seconds).await?;
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
    let max = super::arg(args, "--rate", 8000.0)? as usize;
    let seconds = super::arg(args, "--seconds", 5.0)? as usize;
    let rates: Vec<usize> = [1000, 2500, 5000, 6500, 8000].into_iter().filter(|&r| r <= max).collect();
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
         sipp (a separate process) registers {USERS} provisioned phones over and over at each offered rate for {seconds} s:\n\
         every registration is a REGISTER challenged with 401 and a second one answering the MD5 digest (qop=auth), which\n\
         Hodi checks against the stored HA1 (a SQLite lookup per REGISTER) before it updates the phone's binding. Hodi's\n\
         CPU is its process's (100% = one core; the machine has 2 and sipp uses the other); per REGISTER counts the\n\
         challenged request too.\n\n\
         | offered /s | attempted | registered | failed | registered /s | Hodi CPU | CPU per registration |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- registrar` (`--rate N` caps the levels, `--seconds S`).\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## SIP registrations", &section)
}
