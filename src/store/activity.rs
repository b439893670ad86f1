//! Customer activity: sessions per (customer, source, session id) and the activities in them.

use std::collections::BTreeMap;

use anyhow::Result;
use sqlx::AnyConnection;

use super::customers::StoredNumber;
use super::{new_id, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredActivity {
    pub key: String,
    pub properties: BTreeMap<String, String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub number: StoredNumber,
    pub source: String,
    pub session_id: String,
    pub app_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub activities: Vec<StoredActivity>,
}

/// Records one activity, opening its session if new. Call inside the transaction that also queues
/// the `customer_activity` notification.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    conn: &mut AnyConnection,
    app_id: &str,
    customer_id: &str,
    number: &StoredNumber,
    source: &str,
    session_id: &str,
    activity: &StoredActivity,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO activity_sessions (customer_id, source, session_id, app_id, provider, number, partition, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (customer_id, source, session_id) DO UPDATE SET updated_at = $8",
    )
    .bind(customer_id)
    .bind(source)
    .bind(session_id)
    .bind(app_id)
    .bind(number.provider)
    .bind(&number.number)
    .bind(&number.partition)
    .bind(activity.created_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO activities (id, customer_id, source, session_id, key, properties, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id("act_"))
    .bind(customer_id)
    .bind(source)
    .bind(session_id)
    .bind(&activity.key)
    .bind(serde_json::to_string(&activity.properties)?)
    .bind(activity.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {}

impl Store {
    /// Records an activity and queues its notification (`entry`) in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_activity(
        &self,
        org_id: &str,
        app_id: &str,
        customer_id: &str,
        number: &StoredNumber,
        source: &str,
        session_id: &str,
        activity: &StoredActivity,
        entry: &[u8],
    ) -> Result<()> {
        let mut tx = self.write().await?;
        record(&mut tx, app_id, customer_id, number, source, session_id, activity).await?;
        let item = super::outbox::NewNotification { org_id, app_id, customer_id, entry };
        super::outbox::insert_many(&mut tx, &[item]).await?;
        tx.commit().await?;
        Ok(())
    }
}
