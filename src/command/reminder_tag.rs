//! AddCustomerReminderTag / CancelCustomerReminderTag: a reminder for every customer carrying a tag
//! at the time. The reply carries the work id at once; the work runs in the background
//! ([`crate::work`]), and each reminder it sets remembers the tag and work id for its notification.
//! Both are idempotent per customer, so a resumed work that repeats a page changes nothing.

use std::sync::Arc;

use hodi_rsocket::RemoteError;
use prost::Message;

use super::internal;
use crate::context::Hodi;
use crate::reminder::spec::ReminderSpec;
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{AddCustomerReminderTagCommand, CancelCustomerReminderTagCommand, IndexMapping, TagCommandReply};
use crate::work::{Action, WorkOrder};

/// The kinds of work these commands start.
pub const ADD_KIND: &str = "add_reminder_by_tag";
pub const CANCEL_KIND: &str = "cancel_reminder_by_tag";

fn reply(status: bool, description: impl Into<String>, work_id: Option<String>) -> Entry {
    Entry::TagCommand(TagCommandReply { status, description: description.into(), work_id })
}

fn tag(mapping: Option<IndexMapping>) -> Result<(String, String), String> {
    let mapping = mapping.ok_or("tag is required")?;
    if mapping.key.is_empty() {
        return Err("tag key is required".into());
    }
    Ok((mapping.key, mapping.value.unwrap_or_default()))
}

#[derive(Debug)]
pub enum ReminderTagCommand {
    /// `encoded` is the command as it came, kept with the work so that it can be resumed.
    Add {
        tag: Result<(String, String), String>,
        reminder: Result<ReminderSpec, String>,
        encoded: Vec<u8>,
    },
    Cancel {
        tag: Result<(String, String), String>,
        key: String,
        encoded: Vec<u8>,
    },
}

/// Sets the reminder for each page of customers, remembering the tag and the work.
fn add_action(order: &WorkOrder, spec: ReminderSpec) -> Action {
    let (org_id, app_id, tag) = (order.org_id.clone(), order.app_id.clone(), order.tag.clone());
    crate::work::action(move |hodi, work_id, customers| {
        let reminders: Vec<_> = customers
            .iter()
            .map(|c| {
                let mut r = spec.for_customer_of(&org_id, &app_id, c);
                r.tag = Some(tag.clone());
                r.work_id = Some(work_id.clone());
                r
            })
            .collect();
        async move { hodi.store.upsert_reminders(&reminders).await }
    })
}

/// Deletes the reminder `key` of each page of customers.
fn cancel_action(order: &WorkOrder, key: String) -> Action {
    let app_id = order.app_id.clone();
    crate::work::action(move |hodi, _work, customers| {
        let (app_id, key) = (app_id.clone(), key.clone());
        async move {
            hodi.store.delete_reminders(&app_id, &customers, &key).await?;
            Ok(())
        }
    })
}

/// The action of a work these commands started, from its order (resuming it on another node).
pub fn resume(order: &WorkOrder) -> Result<Action, String> {
    let bytes = order.command.as_slice();
    match order.kind.as_str() {
        ADD_KIND => {
            let command = AddCustomerReminderTagCommand::decode(bytes).map_err(|e| e.to_string())?;
            Ok(add_action(order, ReminderSpec::parse(command.reminder)?))
        }
        CANCEL_KIND => {
            let command = CancelCustomerReminderTagCommand::decode(bytes).map_err(|e| e.to_string())?;
            Ok(cancel_action(order, command.key))
        }
        other => Err(format!("{other} is not reminder work")),
    }
}

impl ReminderTagCommand {
    pub fn add(c: AddCustomerReminderTagCommand) -> Self {
        let encoded = c.encode_to_vec();
        ReminderTagCommand::Add { tag: tag(c.tag), reminder: ReminderSpec::parse(c.reminder), encoded }
    }

    pub fn cancel(c: CancelCustomerReminderTagCommand) -> Self {
        let encoded = c.encode_to_vec();
        ReminderTagCommand::Cancel { tag: tag(c.tag), key: c.key, encoded }
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let order = |kind: &str, tag: (String, String), command: Vec<u8>| WorkOrder {
            org_id: session.org_id.clone(),
            app_id: session.app_id.clone(),
            kind: kind.into(),
            tag,
            command,
        };
        let (order, action) = match self {
            ReminderTagCommand::Add { tag, reminder, encoded } => {
                let (tag, spec) = match (tag, reminder) {
                    (Ok(t), Ok(s)) => (t, s),
                    (Err(why), _) | (_, Err(why)) => return Ok(reply(false, why, None)),
                };
                let order = order(ADD_KIND, tag, encoded);
                let action = add_action(&order, spec);
                (order, action)
            }
            ReminderTagCommand::Cancel { tag, key, encoded } => {
                let tag = match tag {
                    Ok(t) => t,
                    Err(why) => return Ok(reply(false, why, None)),
                };
                if key.is_empty() {
                    return Ok(reply(false, "reminder key is required", None));
                }
                let order = order(CANCEL_KIND, tag, encoded);
                let action = cancel_action(&order, key);
                (order, action)
            }
        };
        match crate::work::start(hodi.clone(), order, action).await.map_err(internal)? {
            Ok(work_id) => Ok(reply(true, "work started", Some(work_id))),
            Err(why) => Ok(reply(false, why, None)),
        }
    }
}
