//! AddCustomerReminderTag / CancelCustomerReminderTag: a reminder for every customer carrying a tag
//! at the time. The reply carries the work id at once; the work runs in the background
//! ([`crate::work`]), and each reminder it sets remembers the tag and work id for its notification.

use std::sync::Arc;

use hodi_rsocket::RemoteError;

use super::internal;
use crate::context::Hodi;
use crate::reminder::spec::ReminderSpec;
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{AddCustomerReminderTagCommand, CancelCustomerReminderTagCommand, IndexMapping, TagCommandReply};

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
    Add { tag: Result<(String, String), String>, reminder: Result<ReminderSpec, String> },
    Cancel { tag: Result<(String, String), String>, key: String },
}

impl ReminderTagCommand {
    pub fn add(c: AddCustomerReminderTagCommand) -> Self {
        ReminderTagCommand::Add { tag: tag(c.tag), reminder: ReminderSpec::parse(c.reminder) }
    }

    pub fn cancel(c: CancelCustomerReminderTagCommand) -> Self {
        ReminderTagCommand::Cancel { tag: tag(c.tag), key: c.key }
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let session = session.clone();
        let started = match self {
            ReminderTagCommand::Add { tag, reminder } => {
                let (tag, spec) = match (tag, reminder) {
                    (Ok(t), Ok(s)) => (t, s),
                    (Err(why), _) | (_, Err(why)) => return Ok(reply(false, why, None)),
                };
                let tag_for_reminders = tag.clone();
                crate::work::start(
                    hodi.clone(),
                    &session.org_id.clone(),
                    &session.app_id.clone(),
                    "add_reminder_by_tag",
                    tag,
                    move |hodi, work_id, customers| {
                        let reminders: Vec<_> = customers
                            .iter()
                            .map(|c| {
                                let mut r = spec.for_customer(&session, c);
                                r.tag = Some(tag_for_reminders.clone());
                                r.work_id = Some(work_id.clone());
                                r
                            })
                            .collect();
                        async move { hodi.store.upsert_reminders(&reminders).await }
                    },
                )
                .await
            }
            ReminderTagCommand::Cancel { tag, key } => {
                let tag = match tag {
                    Ok(t) => t,
                    Err(why) => return Ok(reply(false, why, None)),
                };
                if key.is_empty() {
                    return Ok(reply(false, "reminder key is required", None));
                }
                let app_id = session.app_id.clone();
                crate::work::start(
                    hodi.clone(),
                    &session.org_id,
                    &session.app_id,
                    "cancel_reminder_by_tag",
                    tag,
                    move |hodi, _work, customers| {
                        let (app_id, key) = (app_id.clone(), key.clone());
                        async move {
                            hodi.store.delete_reminders(&app_id, &customers, &key).await?;
                            Ok(())
                        }
                    },
                )
                .await
            }
        };
        match started.map_err(internal)? {
            Ok(work_id) => Ok(reply(true, "work started", Some(work_id))),
            Err(why) => Ok(reply(false, why, None)),
        }
    }
}
