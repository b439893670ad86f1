//! `hodi-bench --help` once ran every benchmark and rewrote docs/benchmarks.md. Asking for help
//! runs nothing and writes nothing; neither does a benchmark without `--write`.

use std::process::Command;
use std::time::{Duration, Instant};

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hodi-bench")).args(args).output().expect("hodi-bench runs")
}

fn report() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.md");
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn help_lists_the_benchmarks_and_runs_none() {
    let before = report();
    let started = Instant::now();
    for args in [&["--help"][..], &["hostile", "--help"][..], &["-h"][..]] {
        let out = bench(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: hodi-bench"), "{args:?}: {text}");
    }
    let help = String::from_utf8_lossy(&bench(&["--help"]).stdout).into_owned();
    for name in ["rsocket", "reminders", "messaging", "payments", "notifications", "calls", "hostile", "--write"] {
        assert!(help.contains(name), "--help does not mention {name}: {help}");
    }
    assert!(started.elapsed() < Duration::from_secs(30), "help took {:?}: did it run something?", started.elapsed());
    assert_eq!(report(), before, "asking for help changed docs/benchmarks.md");
}

#[test]
fn an_unknown_benchmark_is_an_error_not_a_run() {
    let out = bench(&["nonsense"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"), "{out:?}");
}
