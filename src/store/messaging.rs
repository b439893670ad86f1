//! Messages (both directions), messaging sessions and consent.

use anyhow::Result;
use sqlx::{AnyConnection, Row};

use super::{list_placeholders, now_ms, row_placeholders, rows_per_statement, Backend, Store};

/// A stored message: the encoded `ChannelMessage` and the columns queries need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub org_id: String,
    pub customer_id: String,
    /// CustomerEventDirection: 1 inbound, 2 outbound.
    pub direction: i32,
    /// MessagingChannel.
    pub channel: i32,
    pub channel_number: String,
    pub session_id: Option<String>,
    /// MessageDeliveryStatus.
    pub status: i32,
    pub provider_message_id: Option<String>,
    pub body: Vec<u8>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub org_id: String,
    pub customer_id: String,
    pub channel: i32,
    pub channel_number: String,
    pub provider: i32,
    pub number: String,
    pub partition: String,
    pub app_id: String,
    pub started_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    /// MessagingSessionEndReason.
    pub end_reason: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub channel: i32,
    pub channel_number: String,
    pub blocked: bool,
    pub updated_at: i64,
}

fn message_row(r: &sqlx::any::AnyRow) -> Result<MessageRow> {
    Ok(MessageRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        customer_id: r.try_get("customer_id")?,
        direction: r.try_get("direction")?,
        channel: r.try_get("channel")?,
        channel_number: r.try_get("channel_number")?,
        session_id: r.try_get("session_id")?,
        status: r.try_get("status")?,
        provider_message_id: r.try_get("provider_message_id")?,
        body: r.try_get("body")?,
        created_at: r.try_get("created_at")?,
    })
}

fn session_row(r: &sqlx::any::AnyRow) -> Result<SessionRow> {
    Ok(SessionRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        customer_id: r.try_get("customer_id")?,
        channel: r.try_get("channel")?,
        channel_number: r.try_get("channel_number")?,
        provider: r.try_get("provider")?,
        number: r.try_get("number")?,
        partition: r.try_get("partition")?,
        app_id: r.try_get("app_id")?,
        started_at: r.try_get("started_at")?,
        expires_at: r.try_get("expires_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: r.try_get("end_reason")?,
    })
}

const MESSAGE_COLUMNS: &str =
    "id, org_id, customer_id, direction, channel, channel_number, session_id, status, provider_message_id, body, created_at";
const SESSION_COLUMNS: &str = "id, org_id, customer_id, channel, channel_number, provider, number, partition, app_id, started_at, expires_at, ended_at, end_reason";

/// Stores a message; a provider message id already stored for the org makes it a no-op (replays
/// import once). Returns whether it was stored.
pub async fn insert_message(conn: &mut AnyConnection, m: &MessageRow) -> Result<bool> {
    Ok(insert_many(conn, std::slice::from_ref(m)).await? == 1)
}

pub async fn insert_session(conn: &mut AnyConnection, s: &SessionRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO messaging_sessions (id, org_id, customer_id, channel, channel_number, provider, number, partition,
             app_id, started_at, expires_at, ended_at, end_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&s.id)
    .bind(&s.org_id)
    .bind(&s.customer_id)
    .bind(s.channel)
    .bind(&s.channel_number)
    .bind(s.provider)
    .bind(&s.number)
    .bind(&s.partition)
    .bind(&s.app_id)
    .bind(s.started_at)
    .bind(s.expires_at)
    .bind(s.ended_at)
    .bind(s.end_reason)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn renew_session(conn: &mut AnyConnection, id: &str, expires_at: i64) -> Result<()> {
    sqlx::query("UPDATE messaging_sessions SET expires_at = $1 WHERE id = $2 AND ended_at IS NULL")
        .bind(expires_at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a session if still open; returns whether it was.
pub async fn end_session(conn: &mut AnyConnection, id: &str, reason: i32, at: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE messaging_sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL")
            .bind(at)
            .bind(reason)
            .bind(id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    pub async fn message_by_provider_id(&self, org_id: &str, provider_message_id: &str) -> Result<Option<MessageRow>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE org_id = $1 AND provider_message_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(provider_message_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_row).transpose()
    }

    /// Stores a session unless one with the same id exists; returns whether stored.
    pub async fn insert_session_once(&self, s: &SessionRow) -> Result<bool> {
        if self.session(&s.id).await?.is_some() {
            return Ok(false);
        }
        let mut conn = self.pool.acquire().await?;
        insert_session(&mut conn, s).await?;
        Ok(true)
    }

    /// Whether `number` is provisioned on `channel` (its lower-case name) for `org_id`.
    pub async fn channel_provisioned(&self, org_id: &str, channel: &str, number: &str) -> Result<bool> {
        Ok(self.channel_binding(org_id, channel, number).await?.is_some())
    }

    /// Who answers calls to a voice number: the org that provisioned it first, and that org's
    /// oldest app.
    pub async fn voice_number_owner(&self, number: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT c.org_id, a.id AS app_id FROM channel_numbers c JOIN apps a ON a.org_id = c.org_id
             WHERE c.channel = 'voice' AND c.number = $1 AND c.disabled_at IS NULL AND a.disabled_at IS NULL
             ORDER BY c.created_at, a.created_at LIMIT 1",
        )
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("org_id")?, r.try_get("app_id")?)),
            None => None,
        })
    }

    pub async fn message(&self, id: &str) -> Result<Option<MessageRow>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(message_row).transpose()
    }

    /// The customer's latest outbound message on a channel number, if any.
    pub async fn last_sent_message(
        &self,
        customer_id: &str,
        channel: i32,
        channel_number: &str,
    ) -> Result<Option<MessageRow>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE customer_id = $1 AND direction = $2 AND channel = $3
               AND channel_number = $4 ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(customer_id)
            .bind(crate::wire::CustomerEventDirection::Outbound as i32)
            .bind(channel)
            .bind(channel_number)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_row).transpose()
    }

    /// Stores a sent message's new body (with a reaction added) and queues the notification that
    /// tells its app, in one transaction.
    pub async fn record_reaction(
        &self,
        id: &str,
        body: &[u8],
        notification: &super::outbox::NewNotification<'_>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE messages SET body = $1, updated_at = $2 WHERE id = $3")
            .bind(body)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        super::outbox::insert_many(&mut tx, std::slice::from_ref(notification)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A customer's latest messages, oldest first.
    pub async fn messages_for(&self, customer_id: &str, limit: i64) -> Result<Vec<MessageRow>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM (SELECT * FROM messages WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2) AS latest
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(customer_id).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(message_row).collect()
    }

    /// The channel of the customer's latest inbound message.
    pub async fn last_inbound_channel(&self, customer_id: &str) -> Result<Option<(i32, String)>> {
        let row = sqlx::query(
            "SELECT channel, channel_number FROM messages WHERE customer_id = $1 AND direction = 1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("channel")?, r.try_get("channel_number")?))).transpose()
    }

    /// See [`insert_message`].
    pub async fn insert_message(&self, m: &MessageRow) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        insert_message(&mut conn, m).await
    }

    /// Moves messages to `status` (the `status` column is the truth; bodies keep what was sent).
    pub async fn set_messages_status(&self, ids: &[String], status: i32) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        for chunk in ids.chunks(rows_per_statement(1)) {
            let sql = format!(
                "UPDATE messages SET status = ?, updated_at = ? WHERE id IN ({})",
                list_placeholders(chunk.len())
            );
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql)).bind(status).bind(now);
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        crate::metrics::message_status_changed(status, ids.len());
        Ok(())
    }

    /// Replaces a message's body and status (replays of status and reaction updates).
    pub async fn set_message_body(&self, id: &str, status: i32, body: &[u8]) -> Result<()> {
        sqlx::query("UPDATE messages SET status = $1, body = $2, updated_at = $3 WHERE id = $4")
            .bind(status)
            .bind(body)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores many messages, a hundred rows per statement.
    pub async fn insert_messages(&self, rows: &[MessageRow]) -> Result<()> {
        let mut tx = self.write().await?;
        insert_many(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Of `customers`, those who blocked `channel_number`.
    pub async fn blocked_among(&self, customers: &[String], channel: i32, channel_number: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for chunk in customers.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT customer_id FROM messaging_consent WHERE channel = ? AND channel_number = ? AND blocked <> 0 AND customer_id IN ({})",
                list_placeholders(chunk.len())
            );
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql)).bind(channel).bind(channel_number);
            for c in chunk {
                query = query.bind(c);
            }
            for row in query.fetch_all(&self.pool).await? {
                out.push(row.try_get("customer_id")?);
            }
        }
        Ok(out)
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM messaging_sessions WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(session_row).transpose()
    }

    /// The open (not ended, not expired) session of a customer on a channel number, if any.
    pub async fn open_session(
        &self,
        customer_id: &str,
        channel: i32,
        channel_number: &str,
    ) -> Result<Option<SessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM messaging_sessions
             WHERE customer_id = $1 AND channel = $2 AND channel_number = $3 AND ended_at IS NULL AND expires_at > $4
             ORDER BY started_at DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(customer_id)
            .bind(channel)
            .bind(channel_number)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_row).transpose()
    }

    /// Open sessions whose window has passed.
    pub async fn lapsed_sessions(&self, now: i64, limit: i64) -> Result<Vec<SessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM messaging_sessions WHERE ended_at IS NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(session_row).collect()
    }

    pub async fn set_consent(
        &self,
        customer_id: &str,
        channel: i32,
        channel_number: &str,
        blocked: bool,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO messaging_consent (customer_id, channel, channel_number, blocked, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (customer_id, channel, channel_number) DO UPDATE SET blocked = $4, updated_at = $5",
        )
        .bind(customer_id)
        .bind(channel)
        .bind(channel_number)
        .bind(i64::from(blocked))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn consent_blocked(&self, customer_id: &str, channel: i32, channel_number: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT blocked FROM messaging_consent WHERE customer_id = $1 AND channel = $2 AND channel_number = $3",
        )
        .bind(customer_id)
        .bind(channel)
        .bind(channel_number)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("blocked").map(|b| b != 0)).transpose()?.unwrap_or(false))
    }

    /// Stores an inbound message with its session changes and queued notifications, atomically.
    /// False, and nothing stored, when the org has the message's provider id already.
    pub async fn record_inbound(
        &self,
        message: &MessageRow,
        new_session: Option<&SessionRow>,
        renew: Option<(&str, i64)>,
        end: Option<(&str, i32)>,
        notifications: &[super::outbox::NewNotification<'_>],
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        // A provider's id already stored for the org: the same message again, and nothing changes.
        if !insert_message(&mut tx, message).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(s) = new_session {
            insert_session(&mut tx, s).await?;
        }
        if let Some((id, expires)) = renew {
            renew_session(&mut tx, id, expires).await?;
        }
        if let Some((id, reason)) = end {
            end_session(&mut tx, id, reason, message.created_at).await?;
        }
        super::outbox::insert_many(&mut tx, notifications).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends a session and queues its notifications, atomically; a session already ended queues
    /// nothing.
    pub async fn close_session(
        &self,
        id: &str,
        reason: i32,
        notifications: &[super::outbox::NewNotification<'_>],
    ) -> Result<()> {
        let mut tx = self.write().await?;
        if end_session(&mut tx, id, reason, now_ms()).await? {
            super::outbox::insert_many(&mut tx, notifications).await?;
        }
        tx.commit().await
    }
}

/// Stores many messages, as many rows per statement as SQLite takes; one whose provider message
/// id the org already has is skipped. How many were stored.
pub async fn insert_many(conn: &mut AnyConnection, rows: &[MessageRow]) -> Result<u64> {
    let mut stored = 0;
    for chunk in rows.chunks(rows_per_statement(12)) {
        let sql = format!(
            "INSERT INTO messages (id, org_id, customer_id, direction, channel, channel_number, session_id, status,
                 provider_message_id, body, created_at, updated_at) VALUES {}
             ON CONFLICT (org_id, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING",
            row_placeholders(chunk.len(), 12)
        );
        // Built from placeholders only; every value is bound.
        let mut query = sqlx::query(Backend::of(conn).bulk(sql));
        for m in chunk {
            query = query
                .bind(&m.id)
                .bind(&m.org_id)
                .bind(&m.customer_id)
                .bind(m.direction)
                .bind(m.channel)
                .bind(&m.channel_number)
                .bind(&m.session_id)
                .bind(m.status)
                .bind(&m.provider_message_id)
                .bind(&m.body)
                .bind(m.created_at)
                .bind(m.created_at);
        }
        stored += query.execute(&mut *conn).await?.rows_affected();
    }
    // Counted when every row was new; a replay of history already imported is not new traffic.
    if stored as usize == rows.len() {
        crate::metrics::messages_stored(rows.iter().map(|m| (m.direction, m.channel, m.status)));
    }
    Ok(stored)
}
