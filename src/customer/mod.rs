//! Customer state rules that are more than one query: the state a GetCustomerState returns, leases
//! that wait for each other, and the sweep of expired identity indexes.
//!
//! Owns those rules; SQL stays in [`crate::store`], command parsing in [`crate::command`].

pub mod identity;
pub mod summary;

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use crate::context::Hodi;
use crate::convert::timestamp;
use crate::convert::wire_number;
use crate::store::app_data::{AppDataValue, LeaseHeld};
use crate::store::customer_state::CustomerSnapshot;
use crate::store::identity::{Index, MetaValue};
use crate::store::{now_ms, Store};
use crate::wire::{
    data_map_value, ActivitySessionState, ActivityState, CustomerActivity, CustomerIndex, CustomerStateReplyData,
    DataMapValue, IdentityState, IndexMapping,
};

/// A wire index (tag or secondary id). The SDK reads `expires_at.seconds` unconditionally, so an
/// index that never expires carries timestamp 0, as the SDK itself sends it.
pub fn wire_index(i: &Index) -> CustomerIndex {
    CustomerIndex {
        mapping: Some(IndexMapping { key: i.key.clone(), value: Some(i.value.clone()) }),
        expires_at: Some(i.expires_at.map(timestamp).unwrap_or_default()),
    }
}

/// The full state of a customer, as GetCustomerState returns it.
/// One statement reads it all ([`crate::store::customer_state`]), so the parts agree with each other.
pub async fn state(store: &Store, org_id: &str, customer_id: &str) -> anyhow::Result<CustomerStateReplyData> {
    let CustomerSnapshot {
        tags,
        secondary_ids,
        metadata,
        numbers,
        activity: sessions,
        messages,
        sessions: messaging_sessions,
        consents,
        transactions,
        wallets,
        holds,
    } = store.customer_snapshot(org_id, customer_id).await?;
    let number = numbers.first().map(wire_number);
    Ok(CustomerStateReplyData {
        customer_id: customer_id.to_string(),
        identity_state: Some(IdentityState {
            tags: tags.iter().map(wire_index).collect(),
            secondary_ids: secondary_ids.iter().map(wire_index).collect(),
            metadata: metadata
                .into_iter()
                .map(|(k, v)| {
                    let value = match v {
                        MetaValue::Text(t) => data_map_value::Value::StringVal(t),
                        MetaValue::Bytes(b) => data_map_value::Value::BytesVal(b),
                    };
                    (k, DataMapValue { value: Some(value) })
                })
                .collect(),
        }),
        messaging_state: Some(crate::messaging::state::state(number, &messages, &messaging_sessions, &consents)),
        payment_state: Some(crate::payment::state::state(&transactions, &wallets, &holds)),
        activity_state: Some(ActivityState {
            sessions: sessions
                .into_iter()
                .map(|s| ActivitySessionState {
                    customer_number: Some(wire_number(&s.number)),
                    source: s.source,
                    session_id: s.session_id,
                    app_id: s.app_id,
                    activities: s
                        .activities
                        .into_iter()
                        .map(|a| CustomerActivity {
                            key: a.key,
                            properties: a.properties.into_iter().collect(),
                            created_at: Some(timestamp(a.created_at)),
                        })
                        .collect(),
                    created_at: Some(timestamp(s.created_at)),
                    updated_at: Some(timestamp(s.updated_at)),
                })
                .collect(),
            customer_numbers: numbers.iter().map(wire_number).collect(),
        }),
    })
}

/// Leases app data for `owner`, waiting up to `customer.lease_wait_ms` for another holder to let go.
pub async fn lease(
    hodi: &Hodi,
    app_id: &str,
    customer_id: &str,
    owner: &str,
) -> anyhow::Result<Result<Option<AppDataValue>, LeaseHeld>> {
    let wait = Duration::from_millis(hodi.config.customer.lease_wait_ms);
    let started = tokio::time::Instant::now();
    loop {
        let until = now_ms().saturating_add(i64::try_from(hodi.config.customer.lease_secs * 1000).unwrap_or(i64::MAX));
        match hodi.store.lease_app_data(app_id, customer_id, owner, until).await? {
            Ok(value) => return Ok(Ok(value)),
            Err(held) if started.elapsed() >= wait => return Ok(Err(held)),
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// Deletes expired tags and secondary ids now and then, so they also free their index entries.
pub async fn sweep_expired(hodi: Arc<Hodi>, shutdown: tokio_util::sync::CancellationToken) {
    let every = Duration::from_secs(hodi.config.customer.expiry_sweep_secs.max(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match hodi.store.sweep_expired().await {
            Ok(0) => {}
            Ok(n) => debug!(deleted = n, "expired tags and secondary ids swept"),
            Err(e) => warn!(error = %e, "sweeping expired tags and secondary ids"),
        }
    }
}
