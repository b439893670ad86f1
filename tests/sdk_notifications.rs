//! Notification delivery with the official Elarian JS SDK (npm elarian@0.2.25) as the app: handlers
//! that never call back, call back late or at once, and the per-customer window, against a real
//! `hodi serve`. What the app saw comes from the script; what the server did (nothing left in the
//! outbox, no redelivery logged) from its store and its log.

mod common;

use common::Hodi;

fn json_number(out: &str, key: &str) -> f64 {
    let pattern = format!("\"{key}\":");
    let rest = out.split(&pattern).nth(1).unwrap_or_else(|| panic!("{key} in {out}"));
    rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect::<String>().parse().expect(key)
}

/// Every notification was answered (none waits to be sent again) and none was sent twice.
fn assert_answered_once(hodi: &Hodi) {
    let left = tokio::runtime::Runtime::new().expect("runtime").block_on(async {
        let store = hodi.store().await;
        store.outbox_len().await.expect("outbox")
    });
    assert_eq!(left, 0, "every notification answered");
    let log = hodi.stderr();
    assert!(!log.contains("notification sent again"), "no redelivery:\n{}", log_lines(&log, "notification"));
    assert!(!log.contains("notification unanswered"), "no timeout:\n{}", log_lines(&log, "notification"));
}

fn log_lines(log: &str, needle: &str) -> String {
    log.lines().filter(|l| l.contains(needle)).take(20).collect::<Vec<_>>().join("\n")
}

#[test]
fn handlers_that_never_call_back_get_each_of_20_reminders_and_20_sms_exactly_once_and_promptly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("notify_e2e.js", &["never-callback"], &[]);
    assert_eq!(json_number(&out, "received"), 40.0, "{out}");
    // 40 at once for one customer: 32 (the window) go at once, the rest as the SDK answers the
    // first ones by itself after 5 s.
    let lateness = json_number(&out, "maxLatenessMs");
    assert!(lateness < 9_000.0, "every notification within a few seconds of being due: {out}");
    assert_answered_once(&hodi);
}

#[test]
fn a_handler_calling_back_after_7_s_gets_each_reminder_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("notify_e2e.js", &["late-callback"], &[]);
    assert_eq!(json_number(&out, "received"), 3.0, "{out}");
    assert_answered_once(&hodi);
}

#[test]
fn a_handler_answering_at_once_gets_one_customers_sms_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hodi = Hodi::start(dir.path(), &[]);
    let out = hodi.node_ok("notify_e2e.js", &["at-once"], &[]);
    assert_eq!(json_number(&out, "received"), 30.0, "{out}");
    assert_answered_once(&hodi);
}

#[test]
fn window_1_waits_for_each_answer_while_the_default_window_sends_them_together() {
    let strict_dir = tempfile::tempdir().expect("tempdir");
    let strict = Hodi::start(strict_dir.path(), &[("HODI_NOTIFY__PER_CUSTOMER_WINDOW", "1")]);
    let default_dir = tempfile::tempdir().expect("tempdir");
    let default = Hodi::start(default_dir.path(), &[]);
    let strict_out = strict.node_ok("notify_e2e.js", &["spacing"], &[]);
    let default_out = default.node_ok("notify_e2e.js", &["spacing"], &[]);
    // Window 1: each SMS waits for the SDK's own answer to the one before (5 s after its handler).
    let strict_span = json_number(&strict_out, "spanMs");
    assert!(strict_span >= 9_000.0, "window 1: one at a time: {strict_out}");
    // The default window: all three are out before the SDK answers the first.
    let default_span = json_number(&default_out, "spanMs");
    assert!(default_span < 4_500.0, "default window: together: {default_out}");
    assert_answered_once(&strict);
    assert_answered_once(&default);
}
