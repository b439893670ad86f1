//! The recipes in `deploy/`, checked as far as this machine can (no Docker daemon, no systemd as
//! PID 1): the systemd unit passes `systemd-analyze verify` against the real binary and the
//! example configuration; that configuration loads without a warning; the Dockerfile's
//! environment is configuration Hodi accepts, and it exposes every port that configuration
//! listens on; the compose file's nodes are set up for one PostgreSQL and one Redis under distinct
//! names, with one shared certificate, and refer only to services and volumes it defines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use hodi::config::Config;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("reading deploy/{file}: {e}"))
}

/// Loads the configuration `env` makes (on top of defaults), failing on any warning.
fn config_from(file: Option<&std::path::Path>, env: &BTreeMap<String, String>) -> Config {
    let loaded = Config::load_from(file, env.clone()).unwrap_or_else(|e| panic!("{env:?}: {e:#}"));
    assert!(loaded.warnings.is_empty(), "warnings: {:?}", loaded.warnings);
    loaded.config
}

fn port(address: &str) -> &str {
    address.rsplit(':').next().unwrap_or_default()
}

#[test]
fn the_systemd_unit_verifies_against_the_real_binary_and_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hodi.toml");
    std::fs::copy(deploy("hodi.toml"), &config).expect("config copied");
    let unit = read("hodi.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/hodi serve --config /etc/hodi/hodi.toml"), "{unit}");
    for hardening in
        ["NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/hodi", "Restart=on-failure"]
    {
        assert!(unit.contains(hardening), "the unit lacks {hardening}");
    }
    let here = unit
        .replace("/usr/local/bin/hodi", env!("CARGO_BIN_EXE_hodi"))
        .replace("/etc/hodi/hodi.toml", &config.display().to_string());
    let path = dir.path().join("hodi.service");
    std::fs::write(&path, here).expect("unit written");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (the systemd package; ./scripts/test installs it)");
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "systemd-analyze verify failed: {said}");
    assert!(!said.contains("hodi.service"), "systemd-analyze verify has something to say: {said}");
}

#[test]
fn the_example_configuration_loads_without_a_warning() {
    let config = config_from(Some(&deploy("hodi.toml")), &BTreeMap::new());
    assert!(!config.dev.provision, "a server provisions no dev tenant");
    assert_eq!(config.listen.http, "0.0.0.0:8090");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/hodi"));
}

/// The Dockerfile's instructions, continuation lines joined: (instruction, arguments), per stage.
fn dockerfile() -> Vec<Vec<(String, String)>> {
    let text = read("Dockerfile");
    let joined = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let joined = joined.replace("\\\n", " ");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for line in joined.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (instruction, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let known = [
            "FROM",
            "RUN",
            "COPY",
            "WORKDIR",
            "ENV",
            "EXPOSE",
            "VOLUME",
            "USER",
            "HEALTHCHECK",
            "ENTRYPOINT",
            "CMD",
            "STOPSIGNAL",
        ];
        assert!(known.contains(&instruction), "not a Dockerfile instruction we use: {line}");
        if instruction == "FROM" {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("FROM first").push((instruction.to_string(), args.trim().to_string()));
    }
    stages
}

fn dockerfile_env() -> BTreeMap<String, String> {
    let stages = dockerfile();
    let last = stages.last().expect("a stage");
    last.iter()
        .filter(|(i, _)| i == "ENV")
        .flat_map(|(_, args)| args.split_whitespace().map(|kv| kv.split_once('=').expect("ENV KEY=value")))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_dockerfile_builds_hodi_runs_it_unprivileged_and_exposes_what_it_listens_on() {
    let stages = dockerfile();
    assert_eq!(stages.len(), 2, "a build stage and a slim run stage");
    let build = &stages[0];
    assert!(build.iter().any(|(i, a)| i == "RUN" && a.contains("cargo build --release --locked --bin hodi")));
    let run = &stages[1];
    let has = |instruction: &str, args: &str| run.iter().any(|(i, a)| i == instruction && a == args);
    assert!(has("ENTRYPOINT", "[\"hodi\"]") && has("CMD", "[\"serve\"]") && has("USER", "hodi"), "{run:?}");
    assert!(run.iter().any(|(i, a)| i == "COPY" && a.contains("target/release/hodi /usr/local/bin/hodi")));

    let config = config_from(None, &dockerfile_env());
    let exposed: Vec<String> =
        run.iter().filter(|(i, _)| i == "EXPOSE").flat_map(|(_, a)| a.split_whitespace()).map(String::from).collect();
    for (key, address) in [
        ("listen.tls", &config.listen.tls),
        ("listen.wss", &config.listen.wss),
        ("listen.ws", &config.listen.ws),
        ("listen.http", &config.listen.http),
        ("webhooks.listen", &config.webhooks.listen),
        ("voice.recordings_http", &config.voice.recordings_http),
    ] {
        assert!(address.starts_with("0.0.0.0:"), "{key} = {address}: a container listens on every address");
        assert!(exposed.contains(&port(address).to_string()), "{key} ({address}) is not exposed: {exposed:?}");
    }
    let sip = port(&config.voice.sip_udp);
    assert!(exposed.contains(&format!("{sip}/udp")) && exposed.contains(&format!("{sip}/tcp")), "{exposed:?}");
    let health = run.iter().find(|(i, _)| i == "HEALTHCHECK").map(|(_, a)| a.clone()).expect("a health check");
    assert!(health.contains(&format!("http://127.0.0.1:{}/readyz", port(&config.listen.http))), "{health}");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/hodi"));
    assert!(run.iter().any(|(i, a)| i == "VOLUME" && a == "/var/lib/hodi"));
}

fn compose() -> Yaml {
    YamlLoader::load_from_str(&read("compose.yaml")).expect("compose.yaml is YAML").remove(0)
}

fn string_map(yaml: &Yaml) -> BTreeMap<String, String> {
    yaml.as_hash()
        .map(|h| h.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

#[test]
fn the_compose_nodes_share_one_postgres_one_redis_and_one_certificate_under_distinct_names() {
    let compose = compose();
    let services = compose["services"].as_hash().expect("services");
    let names: Vec<String> = services.keys().filter_map(|k| k.as_str().map(String::from)).collect();
    for wanted in ["postgres", "redis", "hodi-1", "hodi-2"] {
        assert!(names.iter().any(|n| n == wanted), "no {wanted} service: {names:?}");
    }
    let volumes: Vec<String> =
        compose["volumes"].as_hash().expect("volumes").keys().filter_map(|k| k.as_str().map(String::from)).collect();
    let mut node_ids = Vec::new();
    let mut certificates = Vec::new();
    for node in ["hodi-1", "hodi-2"] {
        let service = &compose["services"][node];
        assert_eq!(service["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"));
        let mut env = dockerfile_env();
        env.extend(string_map(&service["environment"]));
        let config = config_from(None, &env);
        let database = config.database_url.clone().expect("a database URL");
        assert!(database.starts_with("postgres://") && database.contains("@postgres:5432/"), "{node}: {database}");
        assert!(config.cluster.redis_url.starts_with("redis://redis:"), "{node}: {}", config.cluster.redis_url);
        node_ids.push(config.cluster.node_id.clone());
        certificates.push((config.tls.cert.clone(), config.tls.key.clone()));
        for depends in service["depends_on"].as_hash().expect("depends_on").keys() {
            let depends = depends.as_str().expect("a service name");
            assert!(names.iter().any(|n| n == depends), "{node} depends on unknown {depends}");
        }
        for mount in service["volumes"].as_vec().expect("volumes") {
            let volume = mount.as_str().and_then(|m| m.split(':').next()).expect("name:path");
            assert!(volumes.iter().any(|v| v == volume), "{node} mounts undefined volume {volume}");
        }
    }
    assert_ne!(node_ids[0], node_ids[1], "each node has its own name");
    assert!(node_ids.iter().all(|n| !n.is_empty()));
    assert_eq!(certificates[0], certificates[1], "the nodes behind one name share its certificate");
    assert!(certificates[0].0.is_some());
}
