//! The payment ledger's SQL: accounts, transactions and their entries, and the outbox rows a
//! settlement queues, each change in one `BEGIN IMMEDIATE` transaction.
//!
//! The rules (which pairs are allowed, what a status means) live in [`crate::payment`]; this file
//! guarantees the bookkeeping: a settled transaction has exactly two entries summing to zero, the
//! account balances move with them, and a purse or wallet never goes below zero (the UPDATE that
//! takes the money checks the balance itself, so concurrent payments cannot overdraw).

use anyhow::{bail, Result};
use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, Row};

use super::outbox::{insert_many, insert_purse, NewNotification};
use super::payment_requests::{insert_payment_request, PaymentRequest};
use super::{new_id, now_ms, row_placeholders, rows_per_statement, Store, Write};

/// An account of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub kind: String,
    pub owner: String,
    pub wallet_id: String,
    pub currency: String,
    /// Actual balance, minor units.
    pub balance: i64,
    /// Reserved by pending debits; available = balance - held.
    pub held: i64,
    pub sequence_nr: i64,
}

impl Account {
    pub fn available(&self) -> i64 {
        self.balance - self.held
    }
}

/// What kind of account, and whose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKey {
    Purse(String),
    Wallet {
        customer_id: String,
        wallet_id: String,
    },
    /// The world outside Hodi under a name (`customer:+2547…`, `channel:cellular:525900`, `top-up`).
    External(String),
}

impl AccountKey {
    fn parts(&self) -> (&'static str, &str, &str) {
        match self {
            AccountKey::Purse(id) => ("purse", id, ""),
            AccountKey::Wallet { customer_id, wallet_id } => ("wallet", customer_id, wallet_id),
            AccountKey::External(name) => ("external", name, ""),
        }
    }
}

/// A transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub id: String,
    pub org_id: String,
    pub app_id: Option<String>,
    pub kind: String,
    pub debit_party: Vec<u8>,
    pub credit_party: Vec<u8>,
    pub debit_account: Option<String>,
    pub credit_account: Option<String>,
    pub debit_customer_id: Option<String>,
    pub credit_customer_id: Option<String>,
    pub purse_id: Option<String>,
    pub currency: String,
    pub amount: i64,
    pub status: i32,
    pub held: bool,
    pub provider_transaction_id: Option<String>,
    /// The provider it went through (`[providers.<name>]`), when a real one carries it.
    pub provider: Option<String>,
    pub narration: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Transaction {
    /// A new transaction of `kind` with a fresh id: no parties, accounts or customers yet, status
    /// unset (the start sets it). Callers fill in the rest with struct update syntax.
    pub fn draft(org_id: &str, app_id: &str, kind: &str, currency: &str, amount: i64, at: i64) -> Transaction {
        Transaction {
            id: new_id("txn_"),
            org_id: org_id.to_string(),
            app_id: Some(app_id.to_string()),
            kind: kind.to_string(),
            debit_party: Vec::new(),
            credit_party: Vec::new(),
            debit_account: None,
            credit_account: None,
            debit_customer_id: None,
            credit_customer_id: None,
            purse_id: None,
            currency: currency.to_string(),
            amount,
            status: 0,
            held: false,
            provider_transaction_id: None,
            provider: None,
            narration: String::new(),
            created_at: at,
            updated_at: at,
        }
    }
}

/// How a new transaction starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Both sides are inside Hodi: move the money now (status `settled`).
    SettleNow { settled: i32 },
    /// Take the amount from the debit account now (held) and wait for the outside to confirm.
    Hold { pending: i32 },
    /// Nothing to take yet (the money comes from outside): wait for confirmation.
    Await { pending: i32 },
    /// History: store the transaction with this status, move nothing.
    Record { status: i32 },
}

/// The outcome of [`Store::start_transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Stored with this status.
    Stored(i32),
    /// The debit account's available balance is short: stored as `insufficient`, nothing moved.
    Insufficient,
    /// A transaction with this provider id exists already: nothing stored.
    Duplicate(String),
}

/// How [`Store::finish_transaction`] ends a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// The final status.
    pub status: i32,
    /// Move the money (success) or release what is held (anything else).
    pub settle: bool,
}

/// A notification to queue with a settlement.
#[derive(Debug, Clone)]
pub enum Notice {
    Customer { app_id: String, customer_id: String, entry: Vec<u8> },
    Purse { app_id: String, purse_id: String, entry: Vec<u8> },
}

const TRANSACTION_COLUMNS: &str = "id, org_id, app_id, kind, debit_party, credit_party, debit_account, credit_account,
    debit_customer_id, credit_customer_id, purse_id, currency, amount, status, held, provider_transaction_id,
    provider, narration, created_at, updated_at";

fn transaction(r: &sqlx::any::AnyRow) -> Result<Transaction> {
    Ok(Transaction {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        app_id: r.try_get("app_id")?,
        kind: r.try_get("kind")?,
        debit_party: r.try_get("debit_party")?,
        credit_party: r.try_get("credit_party")?,
        debit_account: r.try_get("debit_account")?,
        credit_account: r.try_get("credit_account")?,
        debit_customer_id: r.try_get("debit_customer_id")?,
        credit_customer_id: r.try_get("credit_customer_id")?,
        purse_id: r.try_get("purse_id")?,
        currency: r.try_get("currency")?,
        amount: r.try_get("amount")?,
        status: r.try_get("status")?,
        held: r.try_get::<i64, _>("held")? != 0,
        provider_transaction_id: r.try_get("provider_transaction_id")?,
        provider: r.try_get("provider")?,
        narration: r.try_get("narration")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const ACCOUNT_COLUMNS: &str = "id, kind, owner, wallet_id, currency, balance, held, sequence_nr";

fn account(r: &sqlx::any::AnyRow) -> Result<Account> {
    Ok(Account {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        owner: r.try_get("owner")?,
        wallet_id: r.try_get("wallet_id")?,
        currency: r.try_get("currency")?,
        balance: r.try_get("balance")?,
        held: r.try_get("held")?,
        sequence_nr: r.try_get("sequence_nr")?,
    })
}

/// Finds or creates the account `key` in `currency`; returns its id.
pub async fn ensure_account(
    conn: &mut AnyConnection,
    org_id: &str,
    key: &AccountKey,
    currency: &str,
) -> Result<String> {
    let (kind, owner, wallet_id) = key.parts();
    sqlx::query(
        "INSERT INTO payment_accounts (id, org_id, kind, owner, wallet_id, currency, overdraft, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id, kind, owner, wallet_id, currency) DO NOTHING",
    )
    .bind(new_id("acc_"))
    .bind(org_id)
    .bind(kind)
    .bind(owner)
    .bind(wallet_id)
    .bind(currency)
    .bind(i64::from(kind == "external"))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    let id = sqlx::query_scalar(
        "SELECT id FROM payment_accounts WHERE org_id = $1 AND kind = $2 AND owner = $3 AND wallet_id = $4 AND currency = $5",
    )
    .bind(org_id)
    .bind(kind)
    .bind(owner)
    .bind(wallet_id)
    .bind(currency)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Takes a held `amount` from an account (the hold and the balance together). False when less is
/// held, which a pending transaction's own hold rules out.
async fn take_held(conn: &mut AnyConnection, account_id: &str, amount: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payment_accounts SET balance = balance - $1, held = held - $1, sequence_nr = sequence_nr + 1
         WHERE id = $2 AND held >= $1",
    )
    .bind(amount)
    .bind(account_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn give(conn: &mut AnyConnection, account_id: &str, amount: i64) -> Result<()> {
    sqlx::query("UPDATE payment_accounts SET balance = balance + $1, sequence_nr = sequence_nr + 1 WHERE id = $2")
        .bind(amount)
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves the money of `t` and writes its two entries. False when the debit account is short; the
/// caller must then roll back (the credit may already be written).
async fn settle(conn: &mut AnyConnection, t: &Transaction, at: i64) -> Result<bool> {
    if !move_money(conn, t).await? {
        return Ok(false);
    }
    write_entries(conn, t, at).await?;
    Ok(true)
}

/// Moves the money of `t` between its two accounts, or nothing when the debit account is short
/// (false). A held amount is taken from the hold; otherwise the guarded debit and the credit are
/// one statement.
async fn move_money(conn: &mut AnyConnection, t: &Transaction) -> Result<bool> {
    let (Some(debit), Some(credit)) = (&t.debit_account, &t.credit_account) else {
        bail!("transaction {} has no accounts to settle", t.id);
    };
    if t.held {
        if !take_held(conn, debit, t.amount).await? {
            return Ok(false);
        }
        give(conn, credit, t.amount).await?;
        return Ok(true);
    }
    // Both sides in one statement (one round trip fewer per payment): the debit row only
    // matches when it can pay, so two rows changed means both moved, and fewer means neither.
    let moved = sqlx::query(
        "UPDATE payment_accounts SET balance = balance + CASE WHEN id = $1 THEN -$3 ELSE $3 END,
             sequence_nr = sequence_nr + 1
         WHERE (id = $1 AND (overdraft = 1 OR balance - held >= $3)) OR id = $2",
    )
    .bind(debit)
    .bind(credit)
    .bind(t.amount)
    .execute(&mut *conn)
    .await?;
    match moved.rows_affected() {
        2 => Ok(true),
        1 => {
            // Only the credit matched: undo it so that nothing moved.
            give(conn, credit, -t.amount).await?;
            Ok(false)
        }
        _ => Ok(false),
    }
}

/// The two entries of a settled `t` (its row must be stored).
async fn write_entries(conn: &mut AnyConnection, t: &Transaction, at: i64) -> Result<()> {
    let (Some(debit), Some(credit)) = (&t.debit_account, &t.credit_account) else {
        bail!("transaction {} has no accounts to settle", t.id);
    };
    sqlx::query(
        "INSERT INTO payment_entries (transaction_id, account_id, amount, created_at) VALUES ($1, $2, $3, $4), ($1, $5, $6, $4)",
    )
    .bind(&t.id)
    .bind(debit)
    .bind(-t.amount)
    .bind(at)
    .bind(credit)
    .bind(t.amount)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// [`Store::start_transaction`]'s work, in the caller's transaction. Nothing is written for a
/// payment before its money has moved (or been held), so a refusal needs no rollback: it stores
/// the refused transaction instead.
async fn start_in(
    tx: &mut Write,
    mut t: Transaction,
    start: Start,
    insufficient: i32,
    notices: Vec<Notice>,
    request: Option<PaymentRequest>,
) -> Result<Started> {
    if let Some(provider_id) = &t.provider_transaction_id {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM payment_transactions WHERE org_id = $1 AND provider_transaction_id = $2",
        )
        .bind(&t.org_id)
        .bind(provider_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = existing {
            return Ok(Started::Duplicate(id));
        }
    }
    let status = match start {
        Start::SettleNow { settled } => {
            if !move_money(tx, &t).await? {
                return refused(tx, t, insufficient).await;
            }
            t.status = settled;
            if t.provider_transaction_id.is_none() {
                // The transfer's rows go in with the rest of its transaction's, a few statements
                // for a whole group commit. Only rows without a provider id: those are looked up
                // by it (the duplicate check above), which a deferred row would not answer yet.
                let at = t.created_at;
                queue(tx, &t.org_id, &notices).await?;
                tx.deferred_payments.push(Deferred { t, entries_at: Some(at) });
                return Ok(Started::Stored(settled));
            }
            insert_transaction(tx, &t).await?;
            write_entries(tx, &t, t.created_at).await?;
            settled
        }
        Start::Hold { pending } => {
            let Some(debit) = t.debit_account.clone() else { bail!("a held transaction needs a debit account") };
            let held = sqlx::query(
                "UPDATE payment_accounts SET held = held + $1, sequence_nr = sequence_nr + 1
                 WHERE id = $2 AND (overdraft = 1 OR balance - held >= $1)",
            )
            .bind(t.amount)
            .bind(&debit)
            .execute(&mut **tx)
            .await?;
            if held.rows_affected() != 1 {
                return refused(tx, t, insufficient).await;
            }
            t.status = pending;
            t.held = true;
            insert_transaction(tx, &t).await?;
            pending
        }
        Start::Await { pending } => {
            t.status = pending;
            insert_transaction(tx, &t).await?;
            pending
        }
        Start::Record { status } => {
            t.status = status;
            insert_transaction(tx, &t).await?;
            status
        }
    };
    queue(tx, &t.org_id, &notices).await?;
    if let (Some(request), Start::Hold { .. } | Start::Await { .. }) = (&request, start) {
        insert_payment_request(tx, request).await?;
    }
    Ok(Started::Stored(status))
}

/// Stores a transaction refused for funds, so it shows in the log; moves nothing.
async fn refused(tx: &mut Write, mut t: Transaction, insufficient: i32) -> Result<Started> {
    t.status = insufficient;
    t.held = false;
    if t.provider_transaction_id.is_none() {
        tx.deferred_payments.push(Deferred { t, entries_at: None });
    } else {
        insert_transaction(tx, &t).await?;
    }
    Ok(Started::Insufficient)
}

/// A transaction's row, and its entries when it settled, to write at commit
/// ([`write_deferred`]).
#[derive(Debug)]
pub(crate) struct Deferred {
    t: Transaction,
    /// When the money moved: the two entries are written with this time.
    entries_at: Option<i64>,
}

/// Writes the deferred rows of `w` in bulk statements (the transaction rows first: entries point
/// at them). Called by [`Write::commit`].
pub(super) async fn write_deferred(w: &mut Write) -> Result<()> {
    if w.deferred_payments.is_empty() {
        return Ok(());
    }
    let deferred = std::mem::take(&mut w.deferred_payments);
    let backend = super::Backend::of(w);
    // A statement of each size would be a prepared statement of its own in the connection's
    // cache, pushing out the ones every request uses: only full-size chunks are kept prepared.
    let full = rows_per_statement(20);
    for chunk in deferred.chunks(full) {
        let sql = format!(
            "INSERT INTO payment_transactions ({TRANSACTION_COLUMNS}) VALUES {}",
            row_placeholders(chunk.len(), 20)
        );
        // Built from placeholders only; every value is bound.
        let mut query = sqlx::query(backend.bulk(sql)).persistent(chunk.len() == full);
        for Deferred { t, .. } in chunk {
            query = bind_transaction(query, t);
        }
        query.execute(&mut **w).await?;
    }
    let mut entries = Vec::new();
    for Deferred { t, entries_at } in &deferred {
        if let (Some(at), Some(debit), Some(credit)) = (entries_at, &t.debit_account, &t.credit_account) {
            entries.push((&t.id, debit, -t.amount, *at));
            entries.push((&t.id, credit, t.amount, *at));
        }
    }
    let full = rows_per_statement(4);
    for chunk in entries.chunks(full) {
        let sql = format!(
            "INSERT INTO payment_entries (transaction_id, account_id, amount, created_at) VALUES {}",
            row_placeholders(chunk.len(), 4)
        );
        // Built from placeholders only; every value is bound.
        let mut query = sqlx::query(backend.bulk(sql)).persistent(chunk.len() == full);
        for (id, account, amount, at) in chunk {
            query = query.bind(*id).bind(*account).bind(*amount).bind(*at);
        }
        query.execute(&mut **w).await?;
    }
    Ok(())
}

async fn queue(tx: &mut super::Write, org_id: &str, notices: &[Notice]) -> Result<()> {
    for n in notices {
        match n {
            Notice::Customer { app_id, customer_id, entry } => {
                insert_many(tx, &[NewNotification { org_id, app_id, customer_id, entry }]).await?
            }
            Notice::Purse { app_id, purse_id, entry } => insert_purse(tx, org_id, app_id, purse_id, entry).await?,
        }
    }
    Ok(())
}

async fn insert_transaction(conn: &mut AnyConnection, t: &Transaction) -> Result<()> {
    let sql = format!(
        "INSERT INTO payment_transactions ({TRANSACTION_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    );
    bind_transaction(sqlx::query(sqlx::AssertSqlSafe(sql)), t).execute(&mut *conn).await?;
    crate::metrics::payment_status(t.status);
    Ok(())
}

/// Binds `t`'s values in [`TRANSACTION_COLUMNS`] order.
fn bind_transaction<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    t: &'q Transaction,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(&t.id)
        .bind(&t.org_id)
        .bind(&t.app_id)
        .bind(&t.kind)
        .bind(&t.debit_party)
        .bind(&t.credit_party)
        .bind(&t.debit_account)
        .bind(&t.credit_account)
        .bind(&t.debit_customer_id)
        .bind(&t.credit_customer_id)
        .bind(&t.purse_id)
        .bind(&t.currency)
        .bind(t.amount)
        .bind(t.status)
        .bind(i64::from(t.held))
        .bind(&t.provider_transaction_id)
        .bind(&t.provider)
        .bind(&t.narration)
        .bind(t.created_at)
        .bind(t.updated_at)
}

impl Store {
    /// Stores a new transaction and starts it as `start` says, queuing `notices` with it when it
    /// is stored (not when it is refused for funds or as a duplicate), and `request` for its
    /// provider when it is stored pending. `t.status` and `t.held` are set here. `insufficient`
    /// is the status stored when the debit account is short. Group-committed ([`super::batch`]):
    /// the answer comes once the transaction holding it has committed.
    pub async fn start_transaction(
        &self,
        t: Transaction,
        start: Start,
        insufficient: i32,
        notices: &[Notice],
        request: Option<&PaymentRequest>,
    ) -> Result<Started> {
        let (notices, request) = (notices.to_vec(), request.cloned());
        // Unguarded: start_in writes nothing before the money has moved (see there).
        self.batched(super::batch::Guard::Transaction, move |w: &mut Write| -> BoxFuture<'_, Result<Started>> {
            Box::pin(start_in(w, t, start, insufficient, notices, request))
        })
        .await
    }

    /// Ends a pending transaction: `success` settles it (taking a held amount, or from an
    /// external account), anything else releases what it held. `notices` is called with the
    /// transaction and its final status and queued in the same database transaction. Returns the
    /// final status, or None when the transaction was not pending (`is_pending` says which are).
    pub async fn finish_transaction(
        &self,
        id: &str,
        finish: Finish,
        is_pending: impl Fn(i32) -> bool,
        notices: impl FnOnce(&Transaction, i32) -> Vec<Notice>,
    ) -> Result<Option<(Transaction, i32)>> {
        let mut tx = self.write().await?;
        let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM payment_transactions WHERE id = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let t = transaction(&row)?;
        if !is_pending(t.status) {
            return Ok(None);
        }
        let Finish { status, settle: success } = finish;
        let now = now_ms();
        let final_status = status;
        // Replayed history has no accounts: only its status changes. Pending debits are held or
        // external, so settling cannot come up short; if it ever did, nothing is committed.
        if success && t.debit_account.is_some() && t.credit_account.is_some() && !settle(&mut tx, &t, now).await? {
            bail!("transaction {id} could not settle: its debit account is short");
        }
        if !success {
            if let (true, Some(debit)) = (t.held, &t.debit_account) {
                sqlx::query(
                    "UPDATE payment_accounts SET held = held - $1, sequence_nr = sequence_nr + 1 WHERE id = $2",
                )
                .bind(t.amount)
                .bind(debit)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("UPDATE payment_transactions SET status = $1, held = 0, updated_at = $2 WHERE id = $3")
            .bind(final_status)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Ended before its provider took the request (an expiry, a refusal): it is not sent.
        sqlx::query("DELETE FROM payment_requests WHERE transaction_id = $1").bind(id).execute(&mut *tx).await?;
        queue(&mut tx, &t.org_id, &notices(&t, final_status)).await?;
        tx.commit().await?;
        crate::metrics::payment_status(final_status);
        Ok(Some((t, final_status)))
    }

    /// Sets the status of a transaction without moving money (replayed history).
    pub async fn set_transaction_status(&self, id: &str, status: i32, at: i64) -> Result<()> {
        sqlx::query("UPDATE payment_transactions SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        crate::metrics::payment_status(status);
        Ok(())
    }

    pub async fn transaction(&self, id: &str) -> Result<Option<Transaction>> {
        let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM payment_transactions WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(transaction).transpose()
    }

    pub async fn transaction_by_provider_id(&self, org_id: &str, provider_id: &str) -> Result<Option<Transaction>> {
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM payment_transactions WHERE org_id = $1 AND provider_transaction_id = $2"
        );
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org_id).bind(provider_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(transaction).transpose()
    }

    /// The transaction `provider` calls `reference`.
    pub async fn transaction_by_provider_ref(&self, provider: &str, reference: &str) -> Result<Option<Transaction>> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM payment_transactions WHERE provider = $1 AND provider_transaction_id = $2",
        )
        .bind(provider)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        match found {
            Some(id) => self.transaction(&id).await,
            None => Ok(None),
        }
    }

    /// Transactions that went through a provider, are still in one of `pending` and were made
    /// before `before`, oldest first.
    pub async fn pending_provider_payments(
        &self,
        before: i64,
        pending: &[crate::wire::PaymentStatus],
        limit: i64,
    ) -> Result<Vec<Transaction>> {
        let statuses = pending.iter().map(|s| (*s as i32).to_string()).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM payment_transactions
             WHERE provider IS NOT NULL AND status IN ({statuses}) AND created_at <= $1
             ORDER BY created_at, id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(transaction).collect()
    }

    /// An account by key and currency, if it exists.
    pub async fn account(&self, org_id: &str, key: &AccountKey, currency: &str) -> Result<Option<Account>> {
        let (kind, owner, wallet_id) = key.parts();
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM payment_accounts
             WHERE org_id = $1 AND kind = $2 AND owner = $3 AND wallet_id = $4 AND currency = $5"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(kind)
            .bind(owner)
            .bind(wallet_id)
            .bind(currency)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account).transpose()
    }

    /// Finds or creates an account; returns it.
    pub async fn open_account(&self, org_id: &str, key: &AccountKey, currency: &str) -> Result<Account> {
        let mut conn = self.pool.acquire().await?;
        ensure_account(&mut conn, org_id, key, currency).await?;
        drop(conn);
        match self.account(org_id, key, currency).await? {
            Some(a) => Ok(a),
            None => bail!("account vanished after creation"),
        }
    }

    /// A purse of `org_id`: its currency and its ledger account, if opened yet. One query.
    pub async fn purse_account(&self, org_id: &str, purse_id: &str) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT p.currency, a.id AS account FROM purses p
             LEFT JOIN payment_accounts a ON a.org_id = p.org_id AND a.kind = 'purse' AND a.owner = p.id
                  AND a.wallet_id = '' AND a.currency = p.currency
             WHERE p.id = $1 AND p.org_id = $2",
        )
        .bind(purse_id)
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("currency")?, r.try_get("account")?))).transpose()
    }

    /// A customer of `org_id` (whether decommissioned) with the accounts of one of its wallets, in
    /// one query; None when there is no such customer.
    pub async fn wallet_accounts(
        &self,
        org_id: &str,
        customer_id: &str,
        wallet_id: &str,
    ) -> Result<Option<(bool, Vec<Account>)>> {
        let rows = sqlx::query(
            "SELECT c.decommissioned_at, a.id, a.kind, a.owner, a.wallet_id, a.currency, a.balance, a.held, a.sequence_nr
             FROM customers c
             LEFT JOIN payment_accounts a ON a.kind = 'wallet' AND a.owner = c.id AND a.wallet_id = $3
             WHERE c.id = $1 AND c.org_id = $2",
        )
        .bind(customer_id)
        .bind(org_id)
        .bind(wallet_id)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let decommissioned = first.try_get::<Option<i64>, _>("decommissioned_at")?.is_some();
        let mut accounts = Vec::new();
        for r in &rows {
            if r.try_get::<Option<String>, _>("id")?.is_some() {
                accounts.push(account(r)?);
            }
        }
        Ok(Some((decommissioned, accounts)))
    }

    /// [`Store::wallet_accounts`] of two wallets in one query (a transfer's two sides).
    pub async fn wallet_accounts_pair(
        &self,
        org_id: &str,
        first: (&str, &str),
        second: (&str, &str),
    ) -> Result<[Option<(bool, Vec<Account>)>; 2]> {
        let side = |n: i64, customer: &str, wallet: &str| {
            format!(
                "SELECT {n} AS side, c.decommissioned_at, a.id, a.kind, a.owner, a.wallet_id, a.currency, a.balance,
                        a.held, a.sequence_nr
                 FROM customers c
                 LEFT JOIN payment_accounts a ON a.kind = 'wallet' AND a.owner = c.id AND a.wallet_id = {wallet}
                 WHERE c.id = {customer} AND c.org_id = $1"
            )
        };
        let sql = format!("{} UNION ALL {}", side(0, "$2", "$3"), side(1, "$4", "$5"));
        // Built from this function's literals; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(first.0)
            .bind(first.1)
            .bind(second.0)
            .bind(second.1)
            .fetch_all(&self.pool)
            .await?;
        let mut out: [Option<(bool, Vec<Account>)>; 2] = [None, None];
        for r in &rows {
            let slot = &mut out[usize::from(r.try_get::<i64, _>("side")? == 1)];
            let decommissioned = r.try_get::<Option<i64>, _>("decommissioned_at")?.is_some();
            let (_, accounts) = slot.get_or_insert_with(|| (decommissioned, Vec::new()));
            if r.try_get::<Option<String>, _>("id")?.is_some() {
                accounts.push(account(r)?);
            }
        }
        Ok(out)
    }

    /// Checkouts still waiting for the customer that were started before `before`.
    pub async fn stale_checkouts(&self, before: i64, status: i32, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM payment_transactions WHERE kind = 'checkout' AND status = $1 AND created_at < $2
             ORDER BY created_at LIMIT $3",
        )
        .bind(status)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A purse's org and currency.
    pub async fn purse(&self, purse_id: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT org_id, currency FROM purses WHERE id = $1")
            .bind(purse_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("org_id")?, r.try_get("currency")?))).transpose()
    }

    /// The org's oldest purse in `currency` (where payments into a channel number land).
    pub async fn org_purse(&self, org_id: &str, currency: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM purses WHERE org_id = $1 AND currency = $2 ORDER BY created_at, id LIMIT 1",
        )
        .bind(org_id)
        .bind(currency)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// How many ledger entries a transaction has: 2 once settled, 0 otherwise.
    pub async fn entry_count(&self, transaction_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM payment_entries WHERE transaction_id = $1")
            .bind(transaction_id)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Sums every entry and every balance: (sum of entries, sum of balances, unbalanced
    /// transactions). A sound ledger has (0, 0, 0).
    pub async fn ledger_check(&self) -> Result<(i64, i64, i64)> {
        let entries: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM payment_entries")
            .fetch_one(&self.pool)
            .await?;
        let balances: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM payment_accounts")
                .fetch_one(&self.pool)
                .await?;
        let unbalanced: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT transaction_id FROM payment_entries GROUP BY transaction_id
                 HAVING SUM(amount) != 0 OR COUNT(*) != 2) AS unbalanced",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((entries, balances, unbalanced))
    }
}
