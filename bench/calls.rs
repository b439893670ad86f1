//! Concurrent SIP calls: sipp places N calls that each listen for 45 s while Hodi plays a prompt
//! to every one (20 ms G.711 packets); measured over 10 s once all N are up: Hodi's CPU per call
//! and how late its packets leave against their 20 ms schedule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hodi::voice::media::stream::SEND_TIMING;
use hodi_sdk::model::{message, voice};
use hodi_sdk::wire::VoiceCallStatus;
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Options, Reply};

struct Level {
    calls: usize,
    up: usize,
    cpu_percent: f64,
    per_call_percent: f64,
    packets_per_second: f64,
    p50_ms: usize,
    p99_ms: usize,
    max_ms: usize,
    late_percent: f64,
}

async fn level(server: &super::BenchServer, n: usize) -> Result<Level> {
    let sip_addr = server.running.bound.sip.context("SIP listener")?;
    let sip = server.running.sip.clone().context("voice executor")?;
    let scenario = super::workspace_root().join("bench/sip/uac_listen.xml");
    let mut sipp = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-s", "+254711082000", &sip_addr.to_string(), "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &super::free_udp_port()?.to_string(), "-mp", &super::free_udp_port()?.to_string()])
        .args(["-r", "200", "-l", &n.to_string(), "-m", &n.to_string(), "-nostdin", "-timeout", "120s"])
        .arg("-inf")
        .arg(super::write_callers(&server.dir, n)?)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("sipp (apt install sip-tester)")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sip.live() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let up = sip.live();
    tokio::time::sleep(Duration::from_secs(1)).await; // every prompt started
    let (cpu0, hist0, t0) = (super::cpu_seconds(), SEND_TIMING.snapshot(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu1, hist1, elapsed) = (super::cpu_seconds(), SEND_TIMING.snapshot(), t0.elapsed().as_secs_f64());
    let hist: Vec<u64> = hist1.iter().zip(hist0.iter()).map(|(a, b)| a - b).collect();
    let packets: u64 = hist.iter().sum();
    let late: u64 = hist[10..].iter().sum();
    let _ = tokio::time::timeout(Duration::from_secs(90), sipp.wait()).await;
    let wait_idle = Instant::now() + Duration::from_secs(30);
    while sip.live() > 0 && Instant::now() < wait_idle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu_percent = (cpu1 - cpu0) / elapsed * 100.0;
    Ok(Level {
        calls: n,
        up,
        cpu_percent,
        per_call_percent: cpu_percent / up.max(1) as f64,
        packets_per_second: packets as f64 / elapsed,
        p50_ms: super::quantile_ms(&hist, 0.5),
        p99_ms: super::quantile_ms(&hist, 0.99),
        max_ms: hist.iter().rposition(|&c| c > 0).unwrap_or(0),
        late_percent: late as f64 / packets.max(1) as f64 * 100.0,
    })
}

async fn run(levels: &[usize]) -> Result<Vec<Level>> {
    let server = super::BenchServer::start("calls", |c| {
        c.voice.sip_udp = "127.0.0.1:0".into();
        c.voice.sip_tcp.clear();
        c.voice.recordings_http.clear();
        c.voice.max_calls = 5000;
    })
    .await?;
    // A 10 s prompt at 8 kHz, played four times per call (decoded once, shared by every call).
    let prompt = server.dir.join("prompt.wav");
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&prompt, spec)?;
        for i in 0..80_000u32 {
            w.write_sample(((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0).sin() * 8000.0) as i16)?;
        }
        w.finalize()?;
    }
    let url = format!("file://{}", prompt.display());
    let mut options = Options::new(
        Endpoint::Tcp(server.addr.clone()),
        &server.dev.org_id,
        &server.dev.app_id,
        Credentials::ApiKey(server.dev.api_key.clone()),
    );
    options.notification_window = 64;
    let app = Elarian::connect(options);
    app.connected(Duration::from_secs(10)).await?;
    let play = Arc::new(url);
    app.on("voiceCall", move |n| {
        let play = play.clone();
        async move {
            let answered = matches!(&n.event, Event::ReceivedMessage(m) if m.voice().is_some_and(|v| v.status == VoiceCallStatus::Answered as i32));
            if answered {
                let actions = (0..4).map(|_| voice::play(play.as_str())).collect();
                let _ = n.reply(Reply::message(message::voice(actions))).await;
            }
        }
    })?;
    let mut out = Vec::new();
    for &n in levels {
        let l = level(&server, n).await?;
        eprintln!(
            "{n} calls ({} up): CPU {:.1}% ({:.3}%/call), {:.0} packets/s, lateness p50 {} ms p99 {} ms max {} ms, {:.2}% ≥10 ms",
            l.up, l.cpu_percent, l.per_call_percent, l.packets_per_second, l.p50_ms, l.p99_ms, l.max_ms, l.late_percent
        );
        out.push(l);
    }
    app.disconnect();
    server.stop();
    Ok(out)
}

pub fn main(args: &[String]) -> Result<()> {
    let max = super::arg(args, "--calls", 2000.0)? as usize;
    let levels: Vec<usize> = [100, 500, 1000, 1500, 2000].into_iter().filter(|&n| n <= max).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = runtime.block_on(run(&levels))?;
    let mut table = String::new();
    for l in &rows {
        table.push_str(&format!(
            "| {} | {} | {:.1}% | {:.3}% | {:.0} | {} ms | {} ms | {} ms | {:.2}% |\n",
            l.calls,
            l.up,
            l.cpu_percent,
            l.per_call_percent,
            l.packets_per_second,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            l.late_percent
        ));
    }
    let section = format!(
        "## Concurrent calls (`hodi-bench calls`)\n\n\
         sipp (a separate process, 200 new calls/s) calls Hodi's SIP listener; an app written with hodi-sdk answers each\n\
         call with four plays of a 10 s WAV prompt, so Hodi sends a 20 ms PCMU packet per call every 20 ms. Measured over\n\
         10 s once the calls are up: Hodi's process CPU (100% = one core; the machine has 2, sipp uses the other) and how\n\
         late packets left against their 20 ms schedule (tokio interval; ≥ 10 ms late counts as a missed deadline).\n\n\
         | calls | up | Hodi CPU | per call | packets/s | lateness p50 | p99 | max | ≥ 10 ms late |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- calls` (`--calls N` caps the levels).\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Concurrent calls", &section)
}
