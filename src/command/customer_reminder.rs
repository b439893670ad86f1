//! AddCustomerReminder / CancelCustomerReminder: reminders per (app, customer, key).
//!
//! The SDK reads both replies as `UpdateCustomerAppDataReply` (reply field 4), so that is what
//! they return.

use hodi_rsocket::RemoteError;

use super::customer_ref::CustomerRef;
use super::internal;
use crate::context::Hodi;
use crate::reminder::spec::ReminderSpec;
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{AddCustomerReminderCommand, CancelCustomerReminderCommand, UpdateCustomerAppDataReply};

fn reply(status: bool, description: impl Into<String>, customer_id: Option<String>) -> Entry {
    Entry::UpdateCustomerAppData(UpdateCustomerAppDataReply { status, description: description.into(), customer_id })
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
