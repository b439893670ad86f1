//! Prometheus metrics: the process's recorder, and every metric's name, help text and labels, so
//! the list an operator reads (`/metrics`, README) is in one file.
//!
//! Owns names and recording helpers only. Components record through these helpers (or the
//! `metrics` macros with these names); the operator's listener ([`crate::ops`]) renders them and
//! sets the gauges that are read from the store at scrape time. Labels take values from small
//! fixed sets (command names, outcomes, socket kinds) or provisioned ids (apps): never customer
//! ids or numbers.
//!
//! Must not import the rest of the server: everything may record metrics.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Sockets open now, by kind (`app`, `simplex_app`, `simulator`).
pub const SESSIONS: &str = "hodi_sessions";
/// SETUPs refused (wrong credentials, malformed metadata).
pub const SETUPS_REFUSED: &str = "hodi_setups_refused_total";
/// Commands answered, by socket, command and outcome (`ok`, `error`). An empty request (hodi-sdk's
/// proof that a connection works) is `empty`, one with no command this server knows `unknown`.
pub const COMMANDS: &str = "hodi_commands_total";
/// How long commands took, by command.
pub const COMMAND_SECONDS: &str = "hodi_command_duration_seconds";
/// Notifications the dispatcher sent, had answered, saw go unanswered, answered late, or sent again.
pub const NOTIFICATIONS: &str = "hodi_notifications_total";
/// Reminders fired.
pub const REMINDERS_FIRED: &str = "hodi_reminders_fired_total";
/// How far behind its time each reminder fired.
pub const REMINDER_LATENESS: &str = "hodi_reminder_lateness_seconds";
/// Reminders waiting to fire (read at scrape).
pub const REMINDERS_PENDING: &str = "hodi_reminders_pending";
/// Notifications queued per app, and the age of the oldest (read at scrape).
pub const OUTBOX_DEPTH: &str = "hodi_outbox_depth";
pub const OUTBOX_OLDEST: &str = "hodi_outbox_oldest_age_seconds";
/// Messages stored, by direction, channel and the status they were stored with.
pub const MESSAGES: &str = "hodi_messages_total";
/// Messages moved to a status after they were stored (delivery reports, hand-overs).
pub const MESSAGE_STATUS: &str = "hodi_message_status_changes_total";
/// Payments reaching a status (stored with it, or moved to it).
pub const PAYMENTS: &str = "hodi_payment_status_total";
/// SIP calls in progress now, by direction.
pub const CALLS_ACTIVE: &str = "hodi_calls_active";
/// SIP calls ended, by direction and how they ended; their RTP loss and jitter.
pub const CALLS: &str = "hodi_calls_total";
pub const CALL_LOSS: &str = "hodi_call_rtp_loss_ratio";
pub const CALL_JITTER: &str = "hodi_call_rtp_jitter_seconds";
/// Each call leg's mean opinion score (E-model, from loss, jitter and RTCP's round trip).
pub const CALL_MOS: &str = "hodi_call_mos";
/// How late each RTP packet Hodi plays went out against its 20 ms schedule.
pub const RTP_SEND_LATENESS: &str = "hodi_rtp_send_lateness_seconds";
/// Devices registered with the SIP registrar now (this node).
pub const SIP_REGISTRATIONS: &str = "hodi_sip_registrations";
/// SIP digest checks that failed, by reason (`wrong_password`, `unknown_user`, `locked_out`).
pub const SIP_AUTH_FAILURES: &str = "hodi_sip_auth_failures_total";
/// Whether Hodi's registration with its SIP trunk holds (1) or not (0), when it registers.
pub const SIP_TRUNK_REGISTERED: &str = "hodi_sip_trunk_registered";
/// By-tag works running (read at scrape).
pub const WORK_RUNNING: &str = "hodi_work_running";

/// Command latencies from 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Reminder lateness from 10 ms to 10 min (the scheduler looks at least every second).
const LATENESS_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0];
/// RTP loss from none to a third of the packets.
const LOSS_BUCKETS: &[f64] = &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.33];
/// RTP jitter from 1 ms to 200 ms.
const JITTER_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2];
/// MOS from "bad" to the best G.711 can score (4.4), finer where calls usually land.
const MOS_BUCKETS: &[f64] = &[1.0, 2.0, 2.6, 3.1, 3.6, 4.0, 4.2, 4.3, 4.4, 4.5];
/// Send lateness from half a millisecond (on time) to 100 ms (an audible gap).
const SEND_LATENESS_BUCKETS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and describes
/// every metric. None if another recorder was installed first (then nothing is rendered).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(COMMAND_SECONDS.into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(CALL_LOSS.into()), LOSS_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(CALL_JITTER.into()), JITTER_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(CALL_MOS.into()), MOS_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(RTP_SEND_LATENESS.into()), SEND_LATENESS_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(REMINDER_LATENESS.into()), LATENESS_BUCKETS));
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: histogram buckets refused; metrics are off");
                    return None;
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("metrics: another recorder is installed in this process; /metrics shows nothing");
                return None;
            }
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_gauge!(
        SESSIONS,
        "RSocket sockets open now, by kind: app (takes notifications as requests), simplex_app (commands only, or a hodi-sdk subscription), simulator."
    );
    describe_counter!(SETUPS_REFUSED, "SETUP frames refused: wrong credentials or metadata.");
    describe_counter!(
        COMMANDS,
        "Commands answered, by socket (app, simulator), command (empty: a connection check) and outcome (ok, error)."
    );
    describe_histogram!(COMMAND_SECONDS, Unit::Seconds, "Time to answer a command, by socket and command.");
    describe_counter!(
        NOTIFICATIONS,
        "Notifications by what happened: sent, answered, unanswered (reply timeout), late (answered after it), redelivered."
    );
    describe_counter!(REMINDERS_FIRED, "Reminders fired (each queues a notification).");
    describe_gauge!(REMINDERS_PENDING, "Reminders waiting to fire.");
    describe_histogram!(REMINDER_LATENESS, Unit::Seconds, "How far behind its time each reminder fired.");
    describe_gauge!(OUTBOX_DEPTH, "Notifications queued for an app and not yet answered, by app.");
    describe_gauge!(OUTBOX_OLDEST, Unit::Seconds, "Age of the oldest notification queued for an app, by app.");
    describe_counter!(
        MESSAGES,
        "Messages stored, by direction (inbound, outbound), channel and the status stored with."
    );
    describe_counter!(MESSAGE_STATUS, "Messages moved to a status after they were stored, by status.");
    describe_counter!(PAYMENTS, "Payments reaching a status: stored with it or moved to it, by status.");
    describe_gauge!(CALLS_ACTIVE, "SIP calls in progress now, by direction (inbound, outbound).");
    describe_counter!(
        CALLS,
        "SIP calls ended, by direction (inbound, outbound) and ending (customer_hung_up, rejected, …)."
    );
    describe_histogram!(CALL_LOSS, "Share of a call's RTP packets lost (received side), per call.");
    describe_histogram!(
        CALL_MOS,
        "Each call leg's mean opinion score, 1 to 4.5 (ITU-T G.107 E-model from loss, jitter and the RTCP round trip)."
    );
    describe_histogram!(
        CALL_JITTER,
        Unit::Seconds,
        "A call's RTP interarrival jitter (RFC 3550) at its end, per call."
    );
    describe_gauge!(SIP_REGISTRATIONS, "Devices (contacts) registered with this node's SIP registrar now.");
    describe_counter!(
        SIP_AUTH_FAILURES,
        "SIP digest authentications refused, by reason: wrong_password, unknown_user, locked_out (an address with too many failures)."
    );
    describe_gauge!(
        SIP_TRUNK_REGISTERED,
        "1 while the SIP trunk accepts Hodi's REGISTER (voice.trunk_register), else 0."
    );
    describe_gauge!(WORK_RUNNING, "By-tag works running (this node or any, on a shared database).");
    describe_histogram!(
        RTP_SEND_LATENESS,
        Unit::Seconds,
        "How late each RTP packet Hodi played was sent against its 20 ms schedule (a loaded node shows here first)."
    );
}

/// How often histogram samples are folded into their buckets. The exporter keeps each sample
/// until then, so without this a node nobody scrapes would hold every command's timing forever.
const UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds histogram samples into buckets every [`UPKEEP`] until `shutdown`, so what the exporter
/// holds between scrapes is bounded by five seconds of samples.
pub fn start_upkeep(shutdown: tokio_util::sync::CancellationToken) {
    let Some(handle) = install() else { return };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => handle.run_upkeep(),
            }
        }
    });
}

/// The RTP send-lateness histogram, taken once per played prompt.
pub fn rtp_send_lateness() -> metrics::Histogram {
    metrics::histogram!(RTP_SEND_LATENESS)
}

/// A command answered: its socket kind, name, time and whether it failed.
pub fn command(socket: &'static str, name: &'static str, took: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!(COMMANDS, "socket" => socket, "command" => name, "outcome" => outcome).increment(1);
    metrics::histogram!(COMMAND_SECONDS, "socket" => socket, "command" => name).record(took.as_secs_f64());
}

/// Messages stored: (direction, channel, status) of each.
pub fn messages_stored(rows: impl Iterator<Item = (i32, i32, i32)>) {
    use hodi_wire::{CustomerEventDirection, MessageDeliveryStatus, MessagingChannel};
    for (direction, channel, status) in rows {
        let direction = crate::wire::label(
            CustomerEventDirection::try_from(direction).ok().map(|d| d.as_str_name()),
            "CUSTOMER_EVENT_DIRECTION_",
        );
        let channel =
            crate::wire::label(MessagingChannel::try_from(channel).ok().map(|c| c.as_str_name()), "MESSAGING_CHANNEL_");
        let status = crate::wire::label(
            MessageDeliveryStatus::try_from(status).ok().map(|s| s.as_str_name()),
            "MESSAGE_DELIVERY_STATUS_",
        );
        metrics::counter!(MESSAGES, "direction" => direction, "channel" => channel, "status" => status).increment(1);
    }
}

/// `count` messages moved to `status`.
pub fn message_status_changed(status: i32, count: usize) {
    let name = hodi_wire::MessageDeliveryStatus::try_from(status).ok().map(|s| s.as_str_name());
    let status = crate::wire::label(name, "MESSAGE_DELIVERY_STATUS_");
    metrics::counter!(MESSAGE_STATUS, "status" => status).increment(count as u64);
}

/// A payment reached `status`.
pub fn payment_status(status: i32) {
    let name = hodi_wire::PaymentStatus::try_from(status).ok().map(|s| s.as_str_name());
    metrics::counter!(PAYMENTS, "status" => crate::wire::label(name, "PAYMENT_STATUS_")).increment(1);
}

/// A call ended: `direction` and `ending` come from fixed sets (the voice executor's names).
pub fn call_ended(direction: &str, ending: &str, received: i64, lost: i64, jitter: Duration, mos: Option<f64>) {
    let (direction, ending) = (direction.to_string(), ending.to_string());
    metrics::counter!(CALLS, "direction" => direction, "ending" => ending).increment(1);
    let expected = received + lost;
    if expected > 0 {
        metrics::histogram!(CALL_LOSS).record(lost.max(0) as f64 / expected as f64);
        metrics::histogram!(CALL_JITTER).record(jitter.as_secs_f64());
    }
    if let Some(mos) = mos.filter(|m| m.is_finite()) {
        metrics::histogram!(CALL_MOS).record(mos);
    }
}

/// A SIP digest check failed for `reason` (a fixed set: see [`SIP_AUTH_FAILURES`]).
pub fn sip_auth_failed(reason: &'static str) {
    metrics::counter!(SIP_AUTH_FAILURES, "reason" => reason).increment(1);
}

/// Hodi's registration with its trunk holds now, or not.
pub fn sip_trunk_registered(yes: bool) {
    metrics::gauge!(SIP_TRUNK_REGISTERED).set(if yes { 1.0 } else { 0.0 });
}

/// Devices registered now.
pub fn sip_registrations(count: usize) {
    metrics::gauge!(SIP_REGISTRATIONS).set(count as f64);
}

/// A reminder fired `late_ms` after its time.
pub fn reminder_late(late_ms: i64) {
    metrics::histogram!(REMINDER_LATENESS).record(late_ms as f64 / 1000.0);
}

/// A call in `direction` began; the returned guard counts it ended when dropped.
pub fn call_started(direction: &'static str) -> Active {
    Active::start(metrics::gauge!(CALLS_ACTIVE, "direction" => direction))
}

/// One of something in progress in a gauge, counted out when dropped.
pub struct Active(metrics::Gauge);

impl Active {
    fn start(gauge: metrics::Gauge) -> Active {
        gauge.increment(1.0);
        Active(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A socket of `kind` opened on `listener` (tls, tcp, ws, wss); the returned guard counts it
/// closed when dropped.
pub fn session_opened(kind: &'static str, listener: &'static str) -> Active {
    Active::start(metrics::gauge!(SESSIONS, "kind" => kind, "listener" => listener))
}
