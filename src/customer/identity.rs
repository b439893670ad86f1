//! Identity rules: tags, secondary ids and metadata of one customer — what a change may carry
//! (key and value sizes, expiries between now and 2200, no empty keys) and how it is stored. A
//! secondary id belongs to one customer of the org at a time.
//!
//! Owns those rules; parsing the identity commands is [`crate::command`]'s, SQL the store's.

use std::collections::HashMap;

use crate::context::Hodi;
use crate::convert::{bounds, expiry};
use crate::store::identity::{Index, MetaValue};
use crate::store::now_ms;
use crate::wire::{data_map_value, CustomerIndex, DataMapValue, IndexMapping};

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

/// Applies `change` to a live customer: Ok(Ok(what was done)), Ok(Err(why not)) when the change
/// breaks a rule, Err when the store fails or refuses (the customer would hold more than the
/// allowances: [`crate::store::identity::OverAllowance`]).
pub async fn apply(
    hodi: &Hodi,
    org_id: &str,
    customer_id: &str,
    change: Change,
) -> anyhow::Result<Result<String, String>> {
    let store = &hodi.store;
    let done = |description: String| Ok(Ok(description));
    match change {
        Change::UpdateTags(updates) => match indexes("tag", updates) {
            Err(why) => Ok(Err(why)),
            Ok(tags) => match store.upsert_tags(org_id, customer_id, &tags).await {
                Ok(()) => done(format!("{} tag(s) set", tags.len())),
                Err(e) => Err(e),
            },
        },
        Change::DeleteTags(keys) => {
            if keys.is_empty() {
                return Ok(Err("no tag keys given".into()));
            }
            let n = store.delete_tags(customer_id, &keys).await?;
            done(format!("{n} tag(s) deleted"))
        }
        Change::UpdateSecondaryIds(updates) => match indexes("secondary id", updates) {
            Err(why) => Ok(Err(why)),
            Ok(ids) => {
                let upserted = match store.upsert_secondary_ids(org_id, customer_id, &ids).await {
                    Ok(upserted) => upserted,
                    Err(e) => return Err(e),
                };
                match upserted {
                    Ok(()) => done(format!("{} secondary id(s) set", ids.len())),
                    Err(taken) => Ok(Err(format!(
                        "secondary id {:?}={:?} belongs to another customer ({})",
                        taken.key, taken.value, taken.owner
                    ))),
                }
            }
        },
        Change::DeleteSecondaryIds(deletions) => {
            if deletions.is_empty() {
                return Ok(Err("no secondary ids given".into()));
            }
            let pairs: Vec<(String, String)> =
                deletions.into_iter().map(|m| (m.key, m.value.unwrap_or_default())).collect();
            let n = store.delete_secondary_ids(org_id, customer_id, &pairs).await?;
            done(format!("{n} secondary id(s) deleted"))
        }
        Change::UpdateMetadata(updates) => {
            if updates.is_empty() {
                return Ok(Err("no metadata given".into()));
            }
            let mut entries = Vec::with_capacity(updates.len());
            for (key, value) in updates {
                // The same rule as tags: an empty key names nothing an app could read back.
                if key.trim().is_empty() {
                    return Ok(Err("a metadata entry has an empty key".into()));
                }
                let (len, value) = match value.value {
                    Some(data_map_value::Value::StringVal(s)) => (s.len(), MetaValue::Text(s)),
                    Some(data_map_value::Value::BytesVal(b)) => (b.len(), MetaValue::Bytes(b)),
                    None => return Ok(Err(format!("metadata {key:?} has no value"))),
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
                    return Ok(Err(why));
                }
                entries.push((key, value));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            match store.upsert_metadata(customer_id, &entries).await {
                Ok(()) => done(format!("{} metadata key(s) set", entries.len())),
                Err(e) => Err(e),
            }
        }
        Change::DeleteMetadata(keys) => {
            if keys.is_empty() {
                return Ok(Err("no metadata keys given".into()));
            }
            let n = store.delete_metadata(customer_id, &keys).await?;
            done(format!("{n} metadata key(s) deleted"))
        }
    }
}
