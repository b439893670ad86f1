//! Conferences: sipp (a separate process) places N calls that each talk (a looped μ-law tone)
//! and listen for 45 s; an app written with hodi-sdk puts every five answered calls in a room
//! of their own (`dial` to `conference:<room>`). Measured over 10 s once all N are seated:
//! Hodi's CPU per participant (its receive, mix and send) and how late the rooms' 20 ms ticks
//! ran.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hodi::voice::media::stream::SEND_TIMING;
use hodi_sdk::model::message;
use hodi_sdk::wire::VoiceCallStatus;
use hodi_sdk::{Credentials, Elarian, Endpoint, Event, Options, Reply};

/// People per room.
const ROOM: usize = 5;

struct Level {
    participants: usize,
    seated: usize,
    rooms: usize,
    cpu_percent: f64,
    per_participant_percent: f64,
    p50_ms: usize,
    p99_ms: usize,
    late_percent: f64,
}

async fn level(server: &super::BenchServer, audio: &std::path::Path, n: usize) -> Result<Level> {
    let sip_addr = server.running.bound.sip.context("SIP listener")?;
    let sip = server.running.sip.clone().context("voice executor")?;
    let scenario = super::workspace_root().join("bench/sip/uac_talk.xml");
    let mut sipp = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-s", "+254711082000", &sip_addr.to_string(), "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &super::free_udp_port()?.to_string(), "-mp", &super::free_udp_port()?.to_string()])
        .args(["-r", "100", "-l", &n.to_string(), "-m", &n.to_string(), "-nostdin", "-timeout", "120s"])
        .args(["-inf", "callers.csv"])
        // The scenario streams `talk.ulaw` from sipp's working directory (sipp does not put
        // `-key` values into an rtp_stream's file name).
        .current_dir(audio.parent().context("the audio file's folder")?)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("sipp (apt install sip-tester)")?;
    let deadline = Instant::now() + Duration::from_secs(40);
    while sip.conferences.totals().1 < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rooms, seated) = sip.conferences.totals();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu0, hist0, t0) = (super::cpu_seconds(), SEND_TIMING.snapshot(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu1, hist1, elapsed) = (super::cpu_seconds(), SEND_TIMING.snapshot(), t0.elapsed().as_secs_f64());
    let hist: Vec<u64> = hist1.iter().zip(hist0.iter()).map(|(a, b)| a - b).collect();
    let ticks: u64 = hist.iter().sum();
    let late: u64 = hist[10..].iter().sum();
    let _ = tokio::time::timeout(Duration::from_secs(90), sipp.wait()).await;
    let idle = Instant::now() + Duration::from_secs(30);
    while sip.live() > 0 && Instant::now() < idle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu_percent = (cpu1 - cpu0) / elapsed * 100.0;
    Ok(Level {
        participants: n,
        seated,
        rooms,
        cpu_percent,
        per_participant_percent: cpu_percent / seated.max(1) as f64,
        p50_ms: super::quantile_ms(&hist, 0.5),
        p99_ms: super::quantile_ms(&hist, 0.99),
        late_percent: late as f64 / ticks.max(1) as f64 * 100.0,
    })
}

async fn run(levels: &[usize]) -> Result<Vec<Level>> {
    let server = super::BenchServer::start("conferences", |c| {
        c.voice.sip_udp = "127.0.0.1:0".into();
        c.voice.sip_tcp.clear();
        c.voice.recordings_http.clear();
        c.voice.max_calls = 5000;
        c.voice.max_calls_per_address = 5000;
    })
    .await?;
    // What every participant says: a 440 Hz tone, raw μ-law, 8 s (sipp loops it).
    let audio = server.dir.join("talk.ulaw"); // the name bench/sip/uac_talk.xml streams
    let tone: Vec<u8> = (0..64_000u32)
        .map(|i| {
            let s = (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0).sin() * 6000.0;
            hodi::voice::media::g711::ulaw_encode(s as i16)
        })
        .collect();
    std::fs::write(&audio, tone)?;
    // Who calls (sipp's injection file, beside the audio: sipp runs in that folder).
    super::write_callers(&server.dir, 1000)?;
    let mut options = Options::new(
        Endpoint::Tcp(server.addr.clone()),
        &server.dev.org_id,
        &server.dev.app_id,
        Credentials::ApiKey(server.dev.api_key.clone()),
    );
    options.notification_window = 64;
    let app = Elarian::connect(options);
    app.connected(Duration::from_secs(10)).await?;
    let answered = Arc::new(AtomicUsize::new(0));
    app.on("voiceCall", move |n| {
        let answered = answered.clone();
        async move {
            let Event::ReceivedMessage(m) = &n.event else { return };
            if m.voice().is_none_or(|v| v.status != VoiceCallStatus::Answered as i32) {
                return;
            }
            let room = answered.fetch_add(1, Ordering::Relaxed) / ROOM;
            let dial = hodi_sdk::wire::VoiceCallAction {
                entry: Some(hodi_sdk::wire::voice_call_action::Entry::Dial(hodi_sdk::wire::DialCallAction {
                    customer_numbers: vec![hodi_sdk::model::cellular(format!("conference:bench-{room}"))],
                    record: false,
                    sequential: false,
                    ringback_tone: None,
                    caller_id: None,
                    max_duration: Some(50),
                })),
            };
            let _ = n.reply(Reply::message(message::voice(vec![dial]))).await;
        }
    })?;
    let mut out = Vec::new();
    for &n in levels {
        let l = level(&server, &audio, n).await?;
        eprintln!(
            "{n} participants ({} seated in {} rooms): CPU {:.1}% ({:.3}%/participant), tick lateness p50 {} ms p99 {} ms, {:.2}% ≥10 ms",
            l.seated, l.rooms, l.cpu_percent, l.per_participant_percent, l.p50_ms, l.p99_ms, l.late_percent
        );
        out.push(l);
    }
    app.disconnect();
    server.stop();
    Ok(out)
}

pub fn main(args: &[String]) -> Result<()> {
    let max = super::arg(args, "--participants", 800.0)? as usize;
    let levels: Vec<usize> = [100, 200, 400, 600, 800].into_iter().filter(|&n| n <= max).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = runtime.block_on(run(&levels))?;
    let mut table = String::new();
    for l in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.1}% | {:.3}% | {} ms | {} ms | {:.2}% |\n",
            l.participants,
            l.seated,
            l.rooms,
            l.cpu_percent,
            l.per_participant_percent,
            l.p50_ms,
            l.p99_ms,
            l.late_percent
        ));
    }
    let section = format!(
        "## Conferences (`hodi-bench conferences`)\n\n\
         sipp (a separate process, 100 new calls/s) places N calls that each send a looped 440 Hz μ-law tone and listen;\n\
         an app written with hodi-sdk puts every {ROOM} answered calls in a room of their own (`dial` to\n\
         `conference:<room>`). Every 20 ms each room's mixer takes each participant's frame, mixes everyone but\n\
         themselves, and each participant's frame is encoded and sent on its own stream. Measured over 10 s once all N\n\
         are seated: Hodi's process CPU (100% = one core; the machine has 2, sipp uses the other) and how late the\n\
         rooms' ticks ran against their 20 ms schedule (≥ 10 ms counts as a missed deadline).\n\n\
         | participants | seated | rooms | Hodi CPU | per participant | tick lateness p50 | p99 | ≥ 10 ms late |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n{table}\n\
         Measured by `cargo run --release -p hodi-bench -- conferences` (`--participants N` caps the levels).\n"
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Conferences", &section)
}
