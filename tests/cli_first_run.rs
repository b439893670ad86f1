//! What a new user meets first, with the real `hodi` binary: environment variables shared with
//! the SDK, config errors that say where they came from, a second server on the same data,
//! commands run in the wrong directory, SIGTERM, and logs fit for files and log collectors.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Hodi;

/// Runs `hodi <args>` to completion with `HODI_DATA_DIR` and extra variables.
fn hodi(data_dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hodi"));
    cmd.args(args).env("HODI_DATA_DIR", data_dir).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Bounded: `serve` runs would not end by themselves; these are commands that must refuse.
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("hodi");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("hodi {args:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Every listener on a port of the OS's choosing, voice off (later variables override these).
const ON_FREE_PORTS: &[(&str, &str)] = &[
    ("HODI_LISTEN__TLS", "127.0.0.1:0"),
    ("HODI_LISTEN__TCP", "127.0.0.1:0"),
    ("HODI_LISTEN__WS", "127.0.0.1:0"),
    ("HODI_LISTEN__WSS", "127.0.0.1:0"),
    ("HODI_VOICE__SIP_UDP", ""),
    ("HODI_VOICE__RECORDINGS_HTTP", ""),
    ("HODI_WEBHOOKS__LISTEN", ""),
    ("HODI_LISTEN__HTTP", "127.0.0.1:0"),
];

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_sdks_variables_are_ignored_and_a_typo_in_a_known_section_is_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(
        dir.path(),
        &[
            ("HODI_SDK_ENDPOINT", "127.0.0.1:1"),
            ("HODI_SDK_API_KEY", "hodi_key_x"),
            ("HODI_SDK_DEV_CREDENTIALS", "/nowhere"),
            ("HODI_LISTEN__TSL", "0.0.0.0:1"),
        ],
    );
    assert!(hodi.stdout.contains("Hodi ") && hodi.stdout.contains("apiKey"), "{}", hodi.stdout);
    let log = hodi.stderr();
    assert!(log.contains("HODI_LISTEN__TSL") && log.contains("ignored"), "{log}");
    assert!(!log.contains("HODI_SDK"), "the SDK's variables are not ours: {log}");
    // Written to a file, not a terminal: no colour codes.
    assert!(!log.contains('\u{1b}'), "no ANSI escapes in a log file: {log}");
}

#[test]
fn a_bad_value_names_the_variable_and_a_busy_port_names_the_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = hodi(dir.path(), &["serve"], &[("HODI_NOTIFY__REPLY_TIMEOUT_MS", "soon")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("HODI_NOTIFY__REPLY_TIMEOUT_MS") && err.contains("notify.reply_timeout_ms"), "{err}");

    let first_dir = tempfile::tempdir().expect("tempdir");
    let first = Hodi::start(first_dir.path(), &[]);
    let taken = first.listening.tcp.clone().expect("tcp");
    let other = tempfile::tempdir().expect("tempdir");
    let out = hodi(other.path(), &["serve"], &[ON_FREE_PORTS, &[("HODI_LISTEN__TCP", taken.as_str())]].concat());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("listen.tcp") && err.contains(&taken), "{err}");
}

#[test]
fn a_second_server_on_the_same_data_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = Hodi::start(dir.path(), &[]);
    let out = hodi(dir.path(), &["serve"], ON_FREE_PORTS);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("another hodi serve"), "{err}");
}

#[test]
fn commands_other_than_serve_refuse_a_directory_without_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [&["calls"][..], &["purse", "balance", "--purse", "prs_x"], &["provision", "org", "--name", "A"]] {
        let out = hodi(dir.path(), args, &[]);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains("no Hodi database"), "{args:?}: {}", stderr(&out));
    }
    assert!(!dir.path().join("hodi.db").exists(), "no empty database left behind");
}

#[test]
fn sigterm_shuts_down_cleanly_and_json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hodi = Hodi::start(dir.path(), &[("HODI_LOG_FORMAT", "json")]);
    let pid = hodi.pid().expect("pid").to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(sent.success());
    let status = hodi.wait_exit(Duration::from_secs(15)).expect("exited after SIGTERM");
    assert!(status.success(), "a clean exit: {status:?}");
    let log = hodi.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{line}");
    }
    assert!(log.contains("SIGTERM") && log.contains("shutting down"), "{log}");
}

/// The default caps (10,000 connections per listener, four listeners) exceeded the default
/// descriptor limit. At start Hodi raises the soft limit to the hard one and fits the caps to it,
/// and says so; caps an operator chose that do not fit are a warning.
#[test]
fn connection_caps_are_fitted_to_the_descriptor_limit_and_said_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listening = dir.path().join("listening.toml");
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=1024:1024", env!("CARGO_BIN_EXE_hodi"), "serve"])
        .env("HODI_DATA_DIR", dir.path())
        .env("HODI_RSOCKET__MAX_CONNECTIONS", "5000")
        .env("HODI_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).expect("stderr file"));
    for (k, v) in ON_FREE_PORTS {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("prlimit runs hodi (util-linux)");
    let started = std::time::Instant::now();
    while !listening.exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
    assert!(listening.exists(), "hodi did not start under a 1,024 descriptor limit:\n{log}");
    let line = log.lines().find(|l| l.contains("file-descriptor limit is too low")).unwrap_or_else(|| {
        panic!("no warning that the chosen caps were lowered:\n{log}");
    });
    let event: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    let fields = &event["fields"];
    assert_eq!(fields["fd_limit"], 1024, "{line}");
    assert_eq!(fields["configured"], 5000, "{line}");
    let (established, pending) = (fields["max_connections"].as_u64(), fields["max_pending_setups"].as_u64());
    let (established, pending) = (established.expect("max_connections"), pending.expect("max_pending_setups"));
    // (1,024 − 256 reserved) / 4 listeners, voice off.
    assert!((established + pending) * 4 <= 1024 - 256, "{line}");
    assert!(established >= 16 && pending >= 16, "{line}");
}
