//! AddCustomerReminder / CancelCustomerReminder: reminders per (app, customer, key).
//!
//! The SDK reads both replies as `UpdateCustomerAppDataReply` (reply field 4), so that is what
//! they return.

use hodi_rsocket::RemoteError;

use super::customer_ref::CustomerRef;
use super::internal;
use crate::server::Hodi;
use crate::session::Session;
use crate::store::customers::CustomerRecord;
use crate::store::reminders::StoredReminder;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{
    AddCustomerReminderCommand, CancelCustomerReminderCommand, CustomerReminder, UpdateCustomerAppDataReply,
};

fn reply(status: bool, description: impl Into<String>, customer_id: Option<String>) -> Entry {
    Entry::UpdateCustomerAppData(UpdateCustomerAppDataReply { status, description: description.into(), customer_id })
}

async fn live_customer(
    hodi: &Hodi,
    session: &Session,
    customer: &CustomerRef,
) -> Result<Result<CustomerRecord, Entry>, RemoteError> {
    Ok(match customer.resolve(&hodi.store, &session.org_id).await.map_err(internal)? {
        Err(why) => Err(reply(false, why, None)),
        Ok(c) if c.decommissioned => Err(reply(false, format!("customer {} is decommissioned", c.id), Some(c.id))),
        Ok(c) => Ok(c),
    })
}

#[derive(Debug)]
pub struct AddCustomerReminder {
    customer: CustomerRef,
    reminder: Option<CustomerReminder>,
}

impl AddCustomerReminder {
    pub fn from_proto(c: AddCustomerReminderCommand) -> Self {
        AddCustomerReminder { customer: c.customer.into(), reminder: c.reminder }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let Some(reminder) = self.reminder else {
            return Ok(reply(false, "reminder is required", None));
        };
        if reminder.key.is_empty() {
            return Ok(reply(false, "reminder key is required", None));
        }
        let Some(at) = reminder.remind_at else {
            return Ok(reply(false, "reminder remind_at is required", None));
        };
        if at.seconds < 0 {
            return Ok(reply(false, "reminder remind_at is before 1970", None));
        }
        let interval = reminder.interval.map(|d| d.seconds);
        if interval.is_some_and(|s| s < 0) {
            return Ok(reply(false, "reminder interval is negative", None));
        }
        let customer = match live_customer(hodi, session, &self.customer).await? {
            Ok(c) => c,
            Err(refused) => return Ok(refused),
        };
        let stored = StoredReminder {
            org_id: session.org_id.clone(),
            app_id: session.app_id.clone(),
            customer_id: customer.id.clone(),
            key: reminder.key,
            remind_at: at
                .seconds
                .saturating_mul(1000)
                .saturating_add(i64::from(at.nanos.clamp(0, 999_999_999) / 1_000_000)),
            interval_secs: interval.filter(|s| *s > 0),
            payload: reminder.payload,
        };
        hodi.store.upsert_reminder(&stored).await.map_err(internal)?;
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
        let customer = match live_customer(hodi, session, &self.customer).await? {
            Ok(c) => c,
            Err(refused) => return Ok(refused),
        };
        let existed = hodi.store.delete_reminder(&session.app_id, &customer.id, &self.key).await.map_err(internal)?;
        Ok(if existed {
            reply(true, "reminder cancelled", Some(customer.id))
        } else {
            reply(false, format!("no reminder with key {:?} for this customer", self.key), Some(customer.id))
        })
    }
}
