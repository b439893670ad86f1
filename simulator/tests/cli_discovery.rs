//! `hodi-simulator` finds a local server the way hodi-sdk does (the data directory's
//! `listening.toml` and `dev-credentials.toml`) and, when nothing answers there, says which
//! address it tried and why.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_server_that_is_not_there_is_named_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join(".hodi");
    std::fs::create_dir_all(&data).expect("data dir");
    // A port nothing listens on: bound, read, released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    std::fs::write(data.join("listening.toml"), format!("tcp = \"127.0.0.1:{port}\"\n")).expect("listening.toml");
    std::fs::write(
        data.join("dev-credentials.toml"),
        "org_id = \"dev-org\"\napp_id = \"dev-app\"\napi_key = \"hodi_key_x\"\npurse_id = \"prs_x\"\n",
    )
    .expect("credentials");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hodi-simulator"))
        .args(["--number", "+254700000001", "--script", "/dev/null"])
        .current_dir(dir.path())
        .env_remove("HODI_SDK_ENDPOINT")
        .env_remove("HODI_SDK_DATA_DIR")
        .env_remove("HODI_SDK_DEV_CREDENTIALS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hodi-simulator");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("hodi-simulator did not give up within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "names the address from listening.toml: {err}");
    assert!(err.to_lowercase().contains("refused"), "and why: {err}");
}
