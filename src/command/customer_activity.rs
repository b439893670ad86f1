//! CustomerActivity: records an activity in the customer's activity session (opened on first use)
//! and queues a `customer_activity` notification, in one transaction.

use hodi_rsocket::RemoteError;
use prost::Message;

use super::internal;
use crate::context::Hodi;
use crate::convert::{stored_number, wire_number};
use crate::socket::Session;
use crate::store::activity::StoredActivity;
use crate::store::now_ms;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::server_to_app_customer_notification::Entry as Notification;
use crate::wire::{
    CustomerActivity, CustomerActivityCommand, CustomerActivityNotification, CustomerActivityReply,
    ServerToAppCustomerNotification,
};

fn reply(status: bool, description: impl Into<String>, customer_id: Option<String>) -> Entry {
    Entry::CustomerActivity(CustomerActivityReply { status, description: description.into(), customer_id })
}

#[derive(Debug)]
pub struct RecordActivity {
    command: CustomerActivityCommand,
}

impl RecordActivity {
    pub fn from_proto(command: CustomerActivityCommand) -> Self {
        RecordActivity { command }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let c = self.command;
        let Some(number) = c.customer_number.as_ref() else {
            return Ok(reply(false, "customer_number is required", None));
        };
        let number = match stored_number(number) {
            Ok(n) => n,
            Err(why) => return Ok(reply(false, why, None)),
        };
        for (field, value) in [("source", &c.source), ("session_id", &c.session_id), ("key", &c.key)] {
            if value.trim().is_empty() {
                return Ok(reply(false, format!("{field} is required"), None));
            }
        }
        let (customer, _) = hodi.store.customer_by_number(&session.org_id, &number).await.map_err(internal)?;
        if customer.decommissioned {
            return Ok(reply(false, format!("customer {} is decommissioned", customer.id), Some(customer.id)));
        }
        let activity = StoredActivity {
            key: c.key.clone(),
            properties: c.properties.clone().into_iter().collect(),
            created_at: now_ms(),
        };
        let notification = ServerToAppCustomerNotification {
            entry: Some(Notification::CustomerActivity(CustomerActivityNotification {
                customer_number: Some(wire_number(&number)),
                source: c.source.clone(),
                session_id: c.session_id.clone(),
                activity: Some(CustomerActivity {
                    key: c.key,
                    properties: c.properties,
                    created_at: Some(crate::convert::timestamp(activity.created_at)),
                }),
            })),
            ..Default::default()
        };
        hodi.store
            .record_activity(
                &session.org_id,
                &session.app_id,
                &customer.id,
                &number,
                &c.source,
                &c.session_id,
                &activity,
                &notification.encode_to_vec(),
            )
            .await
            .map_err(internal)?;
        Ok(reply(true, "activity recorded", Some(customer.id)))
    }
}
