//! AddCustomerReminder / CancelCustomerReminder: reminders per (app, customer, key).
//!
//! The SDK reads both replies as `UpdateCustomerAppDataReply` (reply field 4), so that is what
//! they return.

use hodi_rsocket::RemoteError;

use super::customer_ref::CustomerRef;
use super::internal;
use crate::context::Hodi;
use crate::socket::Session;
use crate::store::reminders::StoredReminder;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{
    AddCustomerReminderCommand, CancelCustomerReminderCommand, CustomerReminder, UpdateCustomerAppDataReply,
};

fn reply(status: bool, description: impl Into<String>, customer_id: Option<String>) -> Entry {
    Entry::UpdateCustomerAppData(UpdateCustomerAppDataReply { status, description: description.into(), customer_id })
}

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
        StoredReminder {
            org_id: session.org_id.clone(),
            app_id: session.app_id.clone(),
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

#[derive(Debug)]
pub struct AddCustomerReminder {
    customer: CustomerRef,
    reminder: Result<ReminderSpec, String>,
}

impl AddCustomerReminder {
    pub fn from_proto(c: AddCustomerReminderCommand) -> Self {
        AddCustomerReminder { customer: c.customer.into(), reminder: ReminderSpec::parse(c.reminder) }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let spec = match self.reminder {
            Ok(s) => s,
            Err(why) => return Ok(reply(false, why, None)),
        };
        let customer = match self.customer.resolve_live(&hodi.store, &session.org_id).await.map_err(internal)? {
            Ok(c) => c,
            Err(why) => return Ok(reply(false, why, None)),
        };
        hodi.store.upsert_reminder(&spec.for_customer(session, &customer.id)).await.map_err(internal)?;
        hodi.reminders_changed.notify_one();
        Ok(reply(true, "reminder set", Some(customer.id)))
    }
}

#[derive(Debug)]
pub struct CancelCustomerReminder {
    customer: CustomerRef,
    key: String,
}

impl CancelCustomerReminder {
    pub fn from_proto(c: CancelCustomerReminderCommand) -> Self {
        CancelCustomerReminder { customer: c.customer.into(), key: c.key }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        if self.key.is_empty() {
            return Ok(reply(false, "reminder key is required", None));
        }
        let customer = match self.customer.resolve_live(&hodi.store, &session.org_id).await.map_err(internal)? {
            Ok(c) => c,
            Err(why) => return Ok(reply(false, why, None)),
        };
        let existed = hodi.store.delete_reminder(&session.app_id, &customer.id, &self.key).await.map_err(internal)?;
        Ok(if existed {
            reply(true, "reminder cancelled", Some(customer.id))
        } else {
            reply(false, format!("no reminder with key {:?} for this customer", self.key), Some(customer.id))
        })
    }
}
