//! What a reminder must be before it is stored: a key, a time, an optional repeat interval and
//! payload, each within bounds. Parsed once from the wire (`CustomerReminder`) by the commands that
//! set reminders (one customer, or every customer with a tag), then tied to each customer.

use crate::socket::Session;
use crate::store::reminders::StoredReminder;
use crate::wire::CustomerReminder;

/// Longest reminder payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A validated reminder, not yet tied to a customer.
#[derive(Debug, Clone)]
pub struct ReminderSpec {
    pub key: String,
    pub remind_at: i64,
    pub interval_secs: Option<i64>,
    pub payload: Option<String>,
}

impl ReminderSpec {
    pub fn parse(reminder: Option<CustomerReminder>) -> Result<ReminderSpec, String> {
        let reminder = reminder.ok_or("reminder is required")?;
        if reminder.key.is_empty() {
            return Err("reminder key is required".into());
        }
        if reminder.key.len() > crate::customer::identity::MAX_KEY_BYTES {
            return Err(format!(
                "reminder key is {} bytes; the limit is {}",
                reminder.key.len(),
                crate::customer::identity::MAX_KEY_BYTES
            ));
        }
        if reminder.payload.as_ref().is_some_and(|p| p.len() > MAX_PAYLOAD_BYTES) {
            return Err(format!("reminder payload is over {MAX_PAYLOAD_BYTES} bytes"));
        }
        let at = reminder.remind_at.ok_or("reminder remind_at is required")?;
        let remind_at = crate::convert::bounds::time("reminder remind_at", &at)?;
        let interval = reminder.interval.map(|d| d.seconds);
        if interval.is_some_and(|s| s < 0) {
            return Err("reminder interval is negative".into());
        }
        if interval.is_some_and(|s| s > crate::convert::bounds::MAX_INTERVAL_SECS) {
            return Err(format!(
                "reminder interval is over {} s (ten years)",
                crate::convert::bounds::MAX_INTERVAL_SECS
            ));
        }
        Ok(ReminderSpec {
            key: reminder.key,
            remind_at,
            interval_secs: interval.filter(|s| *s > 0),
            payload: reminder.payload,
        })
    }

    pub fn for_customer(&self, session: &Session, customer_id: &str) -> StoredReminder {
        self.for_customer_of(&session.org_id, &session.app_id, customer_id)
    }

    /// For a customer of `app_id` (by-tag work, which may run after its socket is gone).
    pub fn for_customer_of(&self, org_id: &str, app_id: &str, customer_id: &str) -> StoredReminder {
        StoredReminder {
            org_id: org_id.to_string(),
            app_id: app_id.to_string(),
            customer_id: customer_id.to_string(),
            key: self.key.clone(),
            remind_at: self.remind_at,
            interval_secs: self.interval_secs,
            payload: self.payload.clone(),
            tag: None,
            work_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn wire(key: &str, remind_at: Option<prost_types::Timestamp>, interval: Option<i64>) -> Option<CustomerReminder> {
        Some(CustomerReminder {
            key: key.into(),
            remind_at,
            interval: interval.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
            payload: Some("p".into()),
        })
    }

    #[test]
    fn a_reminder_keeps_its_time_in_millis_and_repeats_only_with_a_positive_interval() {
        let spec = ReminderSpec::parse(wire("pay", at(1_700_000_000), Some(60))).expect("valid");
        assert_eq!((spec.key.as_str(), spec.remind_at, spec.interval_secs), ("pay", 1_700_000_000_000, Some(60)));
        assert_eq!(spec.payload.as_deref(), Some("p"));
        let once = ReminderSpec::parse(wire("pay", at(1_700_000_000), Some(0))).expect("valid");
        assert_eq!(once.interval_secs, None, "an interval of 0 is a one-shot reminder");
    }

    #[test]
    fn each_bad_field_is_named() {
        let refused = |r| ReminderSpec::parse(r).expect_err("refused");
        assert_eq!(refused(None), "reminder is required");
        assert_eq!(refused(wire("", at(1), None)), "reminder key is required");
        assert!(refused(wire(&"k".repeat(crate::customer::identity::MAX_KEY_BYTES + 1), at(1), None)).contains("limit"));
        assert_eq!(refused(wire("k", None, None)), "reminder remind_at is required");
        assert_eq!(refused(wire("k", at(1), Some(-1))), "reminder interval is negative");
        assert!(refused(wire("k", at(1), Some(crate::convert::bounds::MAX_INTERVAL_SECS + 1))).contains("ten years"));
        let mut big = wire("k", at(1), None);
        if let Some(r) = big.as_mut() {
            r.payload = Some("x".repeat(MAX_PAYLOAD_BYTES + 1));
        }
        assert!(refused(big).contains("payload"));
    }
}
