//! The payment providers' durable queue: requests (an STK push, a B2C payment, airtime) that a
//! pending transaction makes of its provider and that the provider has not accepted yet.
//!
//! A request is stored with its transaction ([`Store::start_transaction`]) and leaves the queue
//! when the provider accepts it (its reference is then kept on the transaction, where the result
//! callback finds it) or when the transaction ends ([`Store::finish_transaction`]). Claims work
//! as for messages ([`super::providers`]): a worker holds a row for a while; a restart releases
//! every claim.

use anyhow::Result;
use sqlx::{AnyConnection, Row};

use super::{now_ms, Store};

/// What a payment asks of its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub transaction_id: String,
    pub provider: String,
    pub kind: RequestKind,
    /// Ours: the short code, the airtime account.
    pub channel_number: String,
    /// The customer's number, or a channel payment's destination.
    pub destination: String,
    /// An account reference at the destination (a paybill account number).
    pub account: String,
    pub currency: String,
    /// Minor units.
    pub amount: i64,
    pub narration: String,
    pub attempts: i64,
    pub expires_at: i64,
}

/// Which way the money goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// From the customer to us (a checkout: an STK push).
    Collect,
    /// From us to the customer or a channel (a payout: B2C, airtime).
    Pay,
}

impl RequestKind {
    fn as_str(self) -> &'static str {
        match self {
            RequestKind::Collect => "collect",
            RequestKind::Pay => "pay",
        }
    }
}

/// Stores `request` (inside the transaction that stores its payment).
pub(super) async fn insert_payment_request(conn: &mut AnyConnection, request: &PaymentRequest) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO payment_requests (transaction_id, provider, kind, channel_number, destination, account, currency,
             amount, narration, attempts, next_attempt_at, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $10)",
    )
    .bind(&request.transaction_id)
    .bind(&request.provider)
    .bind(request.kind.as_str())
    .bind(&request.channel_number)
    .bind(&request.destination)
    .bind(&request.account)
    .bind(&request.currency)
    .bind(request.amount)
    .bind(&request.narration)
    .bind(now)
    .bind(request.expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Claims up to `limit` of `provider`'s due requests until `claim_until`, oldest first.
    pub async fn claim_payment_requests(
        &self,
        provider: &str,
        limit: i64,
        claim_until: i64,
    ) -> Result<Vec<PaymentRequest>> {
        let rows = self
            .claim_due(
                super::providers::QUEUE_PAYMENTS,
                provider,
                limit,
                claim_until,
                "transaction_id, provider, kind, channel_number, destination, account, currency, amount,
                 narration, attempts, expires_at, created_at",
            )
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok((
                    r.try_get::<i64, _>("created_at")?,
                    PaymentRequest {
                        transaction_id: r.try_get("transaction_id")?,
                        provider: r.try_get("provider")?,
                        kind: if kind == "collect" { RequestKind::Collect } else { RequestKind::Pay },
                        channel_number: r.try_get("channel_number")?,
                        destination: r.try_get("destination")?,
                        account: r.try_get("account")?,
                        currency: r.try_get("currency")?,
                        amount: r.try_get("amount")?,
                        narration: r.try_get("narration")?,
                        attempts: r.try_get("attempts")?,
                        expires_at: r.try_get("expires_at")?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // RETURNING gives no order; ask in the order they were made.
        out.sort_by(|a, b| (a.0, &a.1.transaction_id).cmp(&(b.0, &b.1.transaction_id)));
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    /// A transient failure: the request is made again at `retry_at` (`counts`: whether it used
    /// up an attempt; a throttled one does not). Claims are released at start-up with the
    /// messages' ([`Store::release_provider_claims`]).
    pub async fn payment_request_retry(&self, id: &str, retry_at: i64, error: &str, counts: bool) -> Result<()> {
        self.queue_retry(super::providers::QUEUE_PAYMENTS, id, retry_at, error, counts).await
    }

    /// The provider took the request and calls it `reference`: the request leaves the queue and
    /// the transaction keeps the reference, in one transaction. False when the request was no
    /// longer queued (the transaction ended meanwhile).
    pub async fn payment_request_accepted(&self, id: &str, reference: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let gone = sqlx::query("DELETE FROM payment_requests WHERE transaction_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE payment_transactions SET provider_transaction_id = $1, updated_at = $2 WHERE id = $3")
            .bind(reference)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
