//! Real providers' side of the store: which provider a channel number sends through, the durable
//! queue of messages waiting for a provider, and the ids providers gave the parts they accepted.
//!
//! A message bound for a provider is stored QUEUED together with its queue row in one transaction,
//! so a message the app was told is QUEUED survives a restart. Provider workers claim due rows for
//! a while (`claimed_until`); a row leaves the queue in the same transaction that marks the
//! message SENT or FAILED and queues the app's `message_status`. A worker that dies holding a
//! claim loses it when the claim runs out (at start-up every claim is released: one node owns the
//! queue), so a message is sent again only when the provider accepted it and we did not live to
//! record that.

use std::collections::HashMap;

use anyhow::{bail, Result};
use sqlx::Row;

use super::messaging::MessageRow;
use super::outbox::{insert_many, NewNotification};
use super::{list_placeholders, now_ms, row_placeholders, rows_per_statement, Backend, Store};

/// A durable queue providers are fed from: its table, the column naming its rows, and the index
/// its due rows are found by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Queue {
    table: &'static str,
    id: &'static str,
    due_index: &'static str,
}

/// Messages waiting for a provider.
const QUEUE_MESSAGES: Queue = Queue { table: "provider_queue", id: "message_id", due_index: "provider_queue_due" };
/// Payment requests waiting for a provider ([`super::payment_requests`]).
pub(super) const QUEUE_PAYMENTS: Queue =
    Queue { table: "payment_requests", id: "transaction_id", due_index: "payment_requests_due" };

/// A message waiting for its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedSend {
    pub message_id: String,
    pub provider: String,
    pub org_id: String,
    pub app_id: String,
    pub customer_id: String,
    /// MessagingChannel.
    pub channel: i32,
    /// Our number: the sender.
    pub channel_number: String,
    /// The customer's number or address: the recipient.
    pub customer_number: String,
    /// The encoded OutboundMessage.
    pub message: Vec<u8>,
    pub attempts: i64,
    pub expires_at: i64,
}

/// One part a provider accepted, under the id it gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedPart {
    pub provider_message_id: String,
    pub part: i64,
    pub parts: i64,
}

/// What a delivery receipt did to its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptOutcome {
    pub message_id: String,
    /// The message's status now (MessageDeliveryStatus), when the receipt changed it.
    pub changed_to: Option<i32>,
}

/// A queued message's outcome: SENT with the parts the provider accepted, or FAILED / EXPIRED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub message_id: String,
    pub provider: String,
    pub parts: Vec<AcceptedPart>,
    /// MessageDeliveryStatus.
    pub status: i32,
}

/// A delivery receipt for one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub provider: String,
    pub provider_message_id: String,
    /// MessageDeliveryStatus.
    pub status: i32,
}

/// Status codes this module must know (MessageDeliveryStatus); the wire enum lives above the store.
const DELIVERED: i32 = 300;
/// Statuses from here up are failures (FAILED 400, NO_CONSENT, …, EXPIRED 403, REJECTED 415).
const FIRST_FAILURE: i32 = 400;

impl Store {
    /// Binds a provisioned channel number to `provider` (a `[providers.<name>]`), or back to the
    /// simulator with `None`.
    pub async fn bind_channel_provider(
        &self,
        org_id: &str,
        channel: &str,
        number: &str,
        provider: Option<&str>,
    ) -> Result<()> {
        let done =
            sqlx::query("UPDATE channel_numbers SET provider = $1 WHERE org_id = $2 AND channel = $3 AND number = $4")
                .bind(provider)
                .bind(org_id)
                .bind(channel)
                .bind(number)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if done == 0 {
            bail!("org {org_id} has no {channel} number {number}");
        }
        Ok(())
    }

    /// Whether `number` is provisioned on `channel` for the org (`None` when not), and the
    /// provider it sends through, if it is bound to one: one read for both.
    pub async fn channel_binding(&self, org_id: &str, channel: &str, number: &str) -> Result<Option<Option<String>>> {
        let row = sqlx::query(
            "SELECT provider FROM channel_numbers
                 WHERE org_id = $1 AND channel = $2 AND number = $3 AND disabled_at IS NULL",
        )
        .bind(org_id)
        .bind(channel)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("provider")).transpose().map_err(Into::into)
    }

    /// The org a number on `channel` bound to `provider` belongs to, and that org's oldest app
    /// (who hears of inbound messages to it).
    pub async fn provider_number_owner(
        &self,
        provider: &str,
        channel: &str,
        number: &str,
    ) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT c.org_id, a.id AS app_id FROM channel_numbers c JOIN apps a ON a.org_id = c.org_id
             WHERE c.provider = $1 AND c.channel = $2 AND c.number = $3
               AND c.disabled_at IS NULL AND a.disabled_at IS NULL
             ORDER BY c.created_at, a.created_at LIMIT 1",
        )
        .bind(provider)
        .bind(channel)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("org_id")?, r.try_get("app_id")?)),
            None => None,
        })
    }

    /// Stores an outbound message (QUEUED) and its queue row in one transaction.
    pub async fn queue_for_provider(&self, message: &MessageRow, send: &QueuedSend) -> Result<()> {
        self.queue_many_for_provider(&[(message.clone(), send.clone())]).await
    }

    /// Stores many outbound messages (QUEUED) and their queue rows in one transaction.
    pub async fn queue_many_for_provider(&self, messages: &[(MessageRow, QueuedSend)]) -> Result<()> {
        let rows: Vec<MessageRow> = messages.iter().map(|(m, _)| m.clone()).collect();
        let mut tx = self.write().await?;
        super::messaging::insert_many(&mut tx, &rows).await?;
        for chunk in messages.chunks(rows_per_statement(12)) {
            let sql = format!(
                "INSERT INTO provider_queue (message_id, provider, org_id, app_id, customer_id, channel, channel_number,
                     customer_number, message, next_attempt_at, expires_at, created_at) VALUES {}",
                row_placeholders(chunk.len(), 12)
            );
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql));
            for (message, send) in chunk {
                query = query
                    .bind(&send.message_id)
                    .bind(&send.provider)
                    .bind(&send.org_id)
                    .bind(&send.app_id)
                    .bind(&send.customer_id)
                    .bind(send.channel)
                    .bind(&send.channel_number)
                    .bind(&send.customer_number)
                    .bind(&send.message)
                    .bind(message.created_at)
                    .bind(send.expires_at)
                    .bind(message.created_at);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` of `provider`'s due rows until `claim_until`, oldest due first.
    pub async fn claim_provider_sends(&self, provider: &str, limit: i64, claim_until: i64) -> Result<Vec<QueuedSend>> {
        let rows = self
            .claim_due(
                QUEUE_MESSAGES,
                provider,
                limit,
                claim_until,
                "message_id, provider, org_id, app_id, customer_id, channel, channel_number, customer_number,
                 message, attempts, expires_at",
            )
            .await?;
        let mut out: Vec<QueuedSend> = rows
            .iter()
            .map(|r| {
                Ok(QueuedSend {
                    message_id: r.try_get("message_id")?,
                    provider: r.try_get("provider")?,
                    org_id: r.try_get("org_id")?,
                    app_id: r.try_get("app_id")?,
                    customer_id: r.try_get("customer_id")?,
                    channel: r.try_get("channel")?,
                    channel_number: r.try_get("channel_number")?,
                    customer_number: r.try_get("customer_number")?,
                    message: r.try_get("message")?,
                    attempts: r.try_get("attempts")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect::<Result<_>>()?;
        // RETURNING gives no order; send in the order they were queued.
        out.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        Ok(out)
    }

    /// Releases every claim on both providers' queues, messages and payment requests (start-up:
    /// no worker holds one yet).
    pub async fn release_provider_claims(&self) -> Result<u64> {
        let mut tx = self.write().await?;
        let mut done = 0;
        for queue in [QUEUE_MESSAGES, QUEUE_PAYMENTS] {
            let sql = format!("UPDATE {} SET claimed_until = 0 WHERE claimed_until > 0", queue.table);
            done += sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Releases the claims of nodes that are not up (no `cluster_nodes` row, or one past its
    /// expiry) on both queues, so their rows are sent by a live node without waiting for the
    /// claims to run out. A live node's claims are left alone.
    pub async fn release_claims_of_dead_nodes(&self) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut done = 0;
        for queue in [QUEUE_MESSAGES, QUEUE_PAYMENTS] {
            let sql = format!(
                "UPDATE {} SET claimed_until = 0 WHERE claimed_until > 0 AND claimed_until > $1
                 AND claimed_by NOT IN (SELECT id FROM cluster_nodes WHERE expires_at > $1)",
                queue.table
            );
            done += sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(done)
    }

    /// A transient failure: the message is tried again at `retry_at` (`counts` says whether it
    /// used up an attempt; a throttled send does not).
    pub async fn provider_send_retry(&self, message_id: &str, retry_at: i64, error: &str, counts: bool) -> Result<()> {
        self.queue_retry(QUEUE_MESSAGES, message_id, retry_at, error, counts).await
    }

    /// Claims up to `limit` of `provider`'s due rows of `queue` until `claim_until`, oldest due
    /// first (the order is not kept by RETURNING: callers sort); the `returning` columns of each.
    pub(super) async fn claim_due(
        &self,
        queue: Queue,
        provider: &str,
        limit: i64,
        claim_until: i64,
        returning: &str,
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        let Queue { table, id, due_index } = queue;
        let hint = self.backend.indexed_by(due_index);
        // On PostgreSQL, rows another process is claiming right now are passed over, not waited for.
        let skip_locked = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let mut tx = self.write().await?;
        let sql = format!(
            "UPDATE {table} SET claimed_until = $1, claimed_by = $5 WHERE {id} IN (
                 SELECT {id} FROM {table}{hint}
                 WHERE provider = $2 AND next_attempt_at <= $3 AND claimed_until <= $3
                 ORDER BY next_attempt_at LIMIT $4{skip_locked})
             RETURNING {returning}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(claim_until)
            .bind(provider)
            .bind(now_ms())
            .bind(limit)
            .bind(&*self.node_id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// A transient failure of a row of `queue`, tried again at `retry_at`.
    pub(super) async fn queue_retry(
        &self,
        queue: Queue,
        id: &str,
        retry_at: i64,
        error: &str,
        counts: bool,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let sql = format!(
            "UPDATE {} SET next_attempt_at = $1, claimed_until = 0, last_error = $2, attempts = attempts + $3
             WHERE {} = $4",
            queue.table, queue.id
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(retry_at)
            .bind(error)
            .bind(i64::from(counts))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Settles queued messages in one transaction: each leaves the queue, the ids of the parts
    /// the provider accepted (none when it failed) are kept for the receipts, the message becomes
    /// its status (SENT, FAILED, EXPIRED), and `notification(message_id, status)` is queued for
    /// the app that sent it. A message no longer queued (settled already) is skipped. Returns how
    /// many were settled.
    pub async fn settle_provider_sends(
        &self,
        settled: &[Settlement],
        notification: impl Fn(&str, i32) -> Vec<u8>,
    ) -> Result<usize> {
        let now = now_ms();
        let mut tx = self.write().await?;
        // Leave the queue; what left says who sent each (a message settled already is skipped).
        let mut senders: HashMap<String, (String, String, String)> = HashMap::with_capacity(settled.len());
        for chunk in settled.chunks(rows_per_statement(1)) {
            let sql = format!(
                "DELETE FROM provider_queue WHERE message_id IN ({}) RETURNING message_id, org_id, app_id, customer_id",
                list_placeholders(chunk.len())
            );
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql));
            for s in chunk {
                query = query.bind(&s.message_id);
            }
            for row in query.fetch_all(&mut *tx).await? {
                let id: String = row.try_get("message_id")?;
                senders.insert(id, (row.try_get("org_id")?, row.try_get("app_id")?, row.try_get("customer_id")?));
            }
        }
        let settled: Vec<&Settlement> = settled.iter().filter(|s| senders.contains_key(&s.message_id)).collect();
        // The parts' ids, for the receipts.
        let parts: Vec<(&Settlement, &AcceptedPart)> =
            settled.iter().flat_map(|s| s.parts.iter().map(move |p| (*s, p))).collect();
        for chunk in parts.chunks(rows_per_statement(8)) {
            let sql = format!(
                "INSERT INTO provider_parts (provider, provider_message_id, message_id, app_id, part, parts, status,
                     created_at) VALUES {}
                 ON CONFLICT (provider, provider_message_id) DO UPDATE SET message_id = excluded.message_id,
                     app_id = excluded.app_id, part = excluded.part, parts = excluded.parts,
                     status = excluded.status, created_at = excluded.created_at",
                row_placeholders(chunk.len(), 8)
            );
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql));
            for (s, p) in chunk {
                let app_id = senders.get(&s.message_id).map(|(_, app, _)| app.as_str()).unwrap_or_default();
                query = query
                    .bind(&s.provider)
                    .bind(&p.provider_message_id)
                    .bind(&s.message_id)
                    .bind(app_id)
                    .bind(p.part)
                    .bind(p.parts)
                    .bind(s.status)
                    .bind(now);
            }
            query.execute(&mut *tx).await?;
        }
        // The first part's id is the one an app sees; a provider's ids may repeat across orgs,
        // where the unique index refuses it (skipped: the status below is set regardless). SQLite
        // says so with OR IGNORE; PostgreSQL, which has no such clause, by asking first.
        let firsts: Vec<(&str, &str)> = settled
            .iter()
            .filter_map(|s| s.parts.first().map(|p| (s.message_id.as_str(), p.provider_message_id.as_str())))
            .collect();
        for chunk in firsts.chunks(rows_per_statement(2)) {
            let sql = match self.backend {
                Backend::Sqlite => format!(
                    "UPDATE OR IGNORE messages SET provider_message_id = v.column2 FROM (VALUES {}) AS v
                     WHERE messages.id = v.column1",
                    row_placeholders(chunk.len(), 2)
                ),
                Backend::Postgres => format!(
                    "UPDATE messages SET provider_message_id = v.column2 FROM (VALUES {}) AS v
                     WHERE messages.id = v.column1 AND NOT EXISTS (SELECT 1 FROM messages t
                         WHERE t.org_id = messages.org_id AND t.provider_message_id = v.column2)",
                    row_placeholders(chunk.len(), 2)
                ),
            };
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql));
            for (id, provider_id) in chunk {
                query = query.bind(*id).bind(*provider_id);
            }
            query.execute(&mut *tx).await?;
        }
        let mut by_status: HashMap<i32, Vec<&str>> = HashMap::new();
        for s in &settled {
            by_status.entry(s.status).or_default().push(&s.message_id);
        }
        for (status, ids) in &by_status {
            for chunk in ids.chunks(rows_per_statement(1)) {
                let sql = format!(
                    "UPDATE messages SET status = ?, updated_at = ? WHERE id IN ({})",
                    list_placeholders(chunk.len())
                );
                // Built from placeholders only; every value is bound.
                let mut query = sqlx::query(self.backend.bulk(sql)).bind(*status).bind(now);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(&mut *tx).await?;
            }
            crate::metrics::message_status_changed(*status, ids.len());
        }
        let entries: Vec<Vec<u8>> = settled.iter().map(|s| notification(&s.message_id, s.status)).collect();
        let items: Vec<NewNotification<'_>> = settled
            .iter()
            .zip(&entries)
            .filter_map(|(s, entry)| {
                let (org_id, app_id, customer_id) = senders.get(&s.message_id)?;
                Some(NewNotification { org_id, app_id, customer_id, entry })
            })
            .collect();
        insert_many(&mut tx, &items).await?;
        tx.commit().await?;
        Ok(settled.len())
    }

    /// Delivery receipts, one per part, in one transaction: each records its part's status and
    /// says what the whole message became. A message is DELIVERED when every part is; a part that
    /// failed or expired decides the message at once; a message that already failed stays so.
    /// When a message changes, `notification(message_id, status)` is queued for the app that sent
    /// it. A receipt for no part we know (unknown, or past the receipt window) gives `None`.
    pub async fn provider_receipts(
        &self,
        receipts: &[Receipt],
        notification: impl Fn(&str, i32) -> Vec<u8>,
    ) -> Result<Vec<Option<ReceiptOutcome>>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut out = Vec::with_capacity(receipts.len());
        for r in receipts {
            let part = sqlx::query(
                "UPDATE provider_parts SET status = $1 WHERE provider = $2 AND provider_message_id = $3
                 RETURNING message_id, app_id, parts",
            )
            .bind(r.status)
            .bind(&r.provider)
            .bind(&r.provider_message_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(part) = part else {
                out.push(None);
                continue;
            };
            let message_id: String = part.try_get("message_id")?;
            let parts: i64 = part.try_get("parts")?;
            let app_id: String = part.try_get("app_id")?;
            let sql = format!(
                "SELECT COUNT(*) AS n FROM provider_parts{} WHERE message_id = $1 AND status = $2",
                self.backend.indexed_by("provider_parts_by_message")
            );
            let delivered: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&message_id)
                .bind(DELIVERED)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            let message = sqlx::query("SELECT org_id, customer_id, status FROM messages WHERE id = $1")
                .bind(&message_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(message) = message else {
                out.push(None);
                continue;
            };
            let current: i32 = message.try_get("status")?;
            let becomes = if r.status != DELIVERED {
                Some(r.status)
            } else if delivered >= parts {
                Some(DELIVERED)
            } else {
                None
            };
            let changed_to = becomes.filter(|b| *b != current && current < FIRST_FAILURE);
            if let Some(to) = changed_to {
                sqlx::query("UPDATE messages SET status = $1, updated_at = $2 WHERE id = $3")
                    .bind(to)
                    .bind(now)
                    .bind(&message_id)
                    .execute(&mut *tx)
                    .await?;
                crate::metrics::message_status_changed(to, 1);
                let (org_id, customer_id): (String, String) =
                    (message.try_get("org_id")?, message.try_get("customer_id")?);
                let entry = notification(&message_id, to);
                let item =
                    NewNotification { org_id: &org_id, app_id: &app_id, customer_id: &customer_id, entry: &entry };
                insert_many(&mut tx, &[item]).await?;
            }
            out.push(Some(ReceiptOutcome { message_id, changed_to }));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Forgets part ids older than `before` (their receipts will not come any more).
    pub async fn forget_provider_parts(&self, before: i64, limit: i64) -> Result<u64> {
        let mut tx = self.write().await?;
        let (row_id, hint) = (self.backend.row_id(), self.backend.indexed_by("provider_parts_by_age"));
        let sql = format!(
            "DELETE FROM provider_parts WHERE {row_id} IN (
                 SELECT {row_id} FROM provider_parts{hint} WHERE created_at < $1 LIMIT $2)"
        );
        let done =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before).bind(limit).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(done)
    }
}
