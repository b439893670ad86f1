//! Identity commands: UpdateCustomerTag, DeleteCustomerTag, UpdateCustomerSecondaryId,
//! DeleteCustomerSecondaryId, UpdateCustomerMetadata, DeleteCustomerMetadata.
//!
//! All reply with `UpdateCustomerStateReply`. Tags and secondary ids may carry an expiry; an expiry
//! already in the past is refused rather than silently stored invisible.

use std::collections::HashMap;

use hodi_rsocket::RemoteError;

use super::customer_ref::CustomerRef;
use super::{internal, refusal};
use crate::context::Hodi;
use crate::convert::bounds;
use crate::convert::expiry;
use crate::socket::Session;
use crate::store::identity::{Index, MetaValue};
use crate::store::now_ms;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{data_map_value, CustomerIndex, DataMapValue, IndexMapping, UpdateCustomerStateReply};

pub fn reply(status: bool, description: impl Into<String>, customer_id: Option<String>) -> Entry {
    Entry::UpdateCustomerState(UpdateCustomerStateReply { status, description: description.into(), customer_id })
}

/// Which identity change a command asks for.
#[derive(Debug)]
pub enum Change {
    UpdateTags(Vec<CustomerIndex>),
    DeleteTags(Vec<String>),
    UpdateSecondaryIds(Vec<CustomerIndex>),
    DeleteSecondaryIds(Vec<IndexMapping>),
    UpdateMetadata(HashMap<String, DataMapValue>),
    DeleteMetadata(Vec<String>),
}

#[derive(Debug)]
pub struct IdentityCommand {
    customer: CustomerRef,
    change: Change,
}

/// Longest key of a tag, secondary id or metadata entry, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest value of a tag or secondary id, in bytes.
pub const MAX_INDEX_VALUE_BYTES: usize = 1024;
/// Longest value of one metadata entry, in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 64 * 1024;

fn bounded(what: &str, part: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("a {what} {part} is {} bytes; the limit is {max}", text.len()));
    }
    Ok(())
}

/// Validated indexes, or why not.
fn indexes(what: &str, updates: Vec<CustomerIndex>) -> Result<Vec<Index>, String> {
    if updates.is_empty() {
        return Err(format!("no {what}s given"));
    }
    let now = now_ms();
    updates
        .into_iter()
        .map(|u| {
            let mapping = u.mapping.ok_or_else(|| format!("a {what} has no key"))?;
            if mapping.key.trim().is_empty() {
                return Err(format!("a {what} has an empty key"));
            }
            bounded(what, "key", &mapping.key, MAX_KEY_BYTES)?;
            let value = mapping.value.ok_or_else(|| format!("{what} {:?} has no value", mapping.key))?;
            bounded(what, "value", &value, MAX_INDEX_VALUE_BYTES)?;
            let expires_at = expiry(&u.expires_at);
            if expires_at.is_some_and(|e| e <= now) {
                return Err(format!("{what} {:?} has an expiry in the past", mapping.key));
            }
            if expires_at.is_some_and(|e| e > bounds::LATEST_MS) {
                return Err(format!("{what} {:?} expires after {}", mapping.key, bounds::LATEST));
            }
            Ok(Index { key: mapping.key, value, expires_at })
        })
        .collect()
}

impl IdentityCommand {
    pub fn new(customer: CustomerRef, change: Change) -> Self {
        IdentityCommand { customer, change }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let store = &hodi.store;
        let customer = match self.customer.resolve_live(store, &session.org_id).await.map_err(internal)? {
            Ok(c) => c,
            Err(why) => return Ok(reply(false, why, None)),
        };
        let id = Some(customer.id.clone());
        let done = |description: String| Ok(reply(true, description, id.clone()));
        match self.change {
            Change::UpdateTags(updates) => match indexes("tag", updates) {
                Err(why) => Ok(reply(false, why, id)),
                Ok(tags) => match store.upsert_tags(&session.org_id, &customer.id, &tags).await {
                    Ok(()) => done(format!("{} tag(s) set", tags.len())),
                    Err(e) => Ok(reply(false, refusal(e)?, id)),
                },
            },
            Change::DeleteTags(keys) => {
                if keys.is_empty() {
                    return Ok(reply(false, "no tag keys given", id));
                }
                let n = store.delete_tags(&customer.id, &keys).await.map_err(internal)?;
                done(format!("{n} tag(s) deleted"))
            }
            Change::UpdateSecondaryIds(updates) => match indexes("secondary id", updates) {
                Err(why) => Ok(reply(false, why, id)),
                Ok(ids) => {
                    let upserted = match store.upsert_secondary_ids(&session.org_id, &customer.id, &ids).await {
                        Ok(upserted) => upserted,
                        Err(e) => return Ok(reply(false, refusal(e)?, id)),
                    };
                    match upserted {
                        Ok(()) => done(format!("{} secondary id(s) set", ids.len())),
                        Err(taken) => Ok(reply(
                            false,
                            format!(
                                "secondary id {:?}={:?} belongs to another customer ({})",
                                taken.key, taken.value, taken.owner
                            ),
                            id,
                        )),
                    }
                }
            },
            Change::DeleteSecondaryIds(deletions) => {
                if deletions.is_empty() {
                    return Ok(reply(false, "no secondary ids given", id));
                }
                let pairs: Vec<(String, String)> =
                    deletions.into_iter().map(|m| (m.key, m.value.unwrap_or_default())).collect();
                let n = store.delete_secondary_ids(&session.org_id, &customer.id, &pairs).await.map_err(internal)?;
                done(format!("{n} secondary id(s) deleted"))
            }
            Change::UpdateMetadata(updates) => {
                if updates.is_empty() {
                    return Ok(reply(false, "no metadata given", id));
                }
                let mut entries = Vec::with_capacity(updates.len());
                for (key, value) in updates {
                    // The same rule as tags: an empty key names nothing an app could read back.
                    if key.trim().is_empty() {
                        return Ok(reply(false, "a metadata entry has an empty key", id));
                    }
                    let (len, value) = match value.value {
                        Some(data_map_value::Value::StringVal(s)) => (s.len(), MetaValue::Text(s)),
                        Some(data_map_value::Value::BytesVal(b)) => (b.len(), MetaValue::Bytes(b)),
                        None => return Ok(reply(false, format!("metadata {key:?} has no value"), id)),
                    };
                    let checked = bounded("metadata", "key", &key, MAX_KEY_BYTES).and_then(|()| {
                        if len > MAX_METADATA_VALUE_BYTES {
                            return Err(format!(
                                "metadata {key:?} is {len} bytes; the limit is {MAX_METADATA_VALUE_BYTES}"
                            ));
                        }
                        Ok(())
                    });
                    if let Err(why) = checked {
                        return Ok(reply(false, why, id));
                    }
                    entries.push((key, value));
                }
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                match store.upsert_metadata(&customer.id, &entries).await {
                    Ok(()) => done(format!("{} metadata key(s) set", entries.len())),
                    Err(e) => Ok(reply(false, refusal(e)?, id)),
                }
            }
            Change::DeleteMetadata(keys) => {
                if keys.is_empty() {
                    return Ok(reply(false, "no metadata keys given", id));
                }
                let n = store.delete_metadata(&customer.id, &keys).await.map_err(internal)?;
                done(format!("{n} metadata key(s) deleted"))
            }
        }
    }
}
