//! Everything GetCustomerState shows about one customer, read in one statement.
//!
//! Owns that one read. The state is twelve kinds of rows (tags, secondary ids, metadata, numbers,
//! activity sessions and activities, the latest messages, messaging sessions, consents, the latest
//! transactions, wallets and what is held on them). Reading them with a statement each cost a
//! round trip each — on SQLite a hand-off to the connection's worker thread and back, most of a
//! request's CPU — and gave a state stitched together from twelve moments. One `UNION ALL` of the
//! twelve reads costs one round trip and sees one snapshot on both backends.
//!
//! Every branch fills the same generic columns: `kind` says which branch a row came from,
//! `o1..o3` what its rows are shown in order of (sorted here, not by the statement), `t1..t6` are
//! texts, `i1..i6` integers and `b1..b2` bytes; each branch's [`Branch`] says which of its columns
//! go where, and its reader below takes them back out by the same position. Unused columns are
//! typed NULLs: the first branch's types are what PostgreSQL resolves the union's columns to.
//!
//! Must not decide what the state means (which channel is in session, what is pending): that is
//! [`crate::customer`], [`crate::messaging::state`] and [`crate::payment::state`].

use std::sync::LazyLock;

use anyhow::{bail, Result};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::activity::{StoredActivity, StoredSession};
use super::customers::StoredNumber;
use super::identity::{Index, MetaValue};
use super::messaging::{ConsentRow, SessionRow};
use super::payments::Account;
use super::{now_ms, Store};

/// Messages, transactions, activity sessions and activities shown in the state (the latest of
/// each): an app may record any number of them, a reply must stay bounded.
pub const LATEST: i64 = 100;

/// A message as the state shows it: where it went, its status, and the stored `ChannelMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMessage {
    pub channel: i32,
    pub channel_number: String,
    pub status: i32,
    pub body: Vec<u8>,
}

/// A payment transaction as the state shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTransaction {
    pub id: String,
    pub app_id: Option<String>,
    pub debit_party: Vec<u8>,
    pub credit_party: Vec<u8>,
    pub currency: String,
    pub amount: i64,
    pub status: i32,
    pub provider_transaction_id: Option<String>,
    pub narration: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Money a pending transaction holds on one of the customer's wallets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub account_id: String,
    pub transaction_id: String,
    pub amount: i64,
    pub created_at: i64,
}

/// One customer's state as stored, each list in the order the state shows it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CustomerSnapshot {
    pub tags: Vec<Index>,
    pub secondary_ids: Vec<Index>,
    pub metadata: Vec<(String, MetaValue)>,
    /// Oldest first.
    pub numbers: Vec<StoredNumber>,
    /// The latest [`LATEST`] sessions, oldest first, each with those of the latest [`LATEST`]
    /// activities that are in it, in order.
    pub activity: Vec<StoredSession>,
    /// The latest [`LATEST`], oldest first.
    pub messages: Vec<StateMessage>,
    /// Open and ended, oldest first.
    pub sessions: Vec<SessionRow>,
    pub consents: Vec<ConsentRow>,
    /// The latest [`LATEST`] (either side), oldest first.
    pub transactions: Vec<StateTransaction>,
    /// By wallet id, then currency.
    pub wallets: Vec<Account>,
    /// Oldest first.
    pub holds: Vec<Hold>,
}

/// The kinds of rows, in the order they are read back (activity sessions before activities); a
/// row's `kind` is its branch's index in [`BRANCHES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
enum Kind {
    Tag,
    SecondaryId,
    Metadata,
    Number,
    ActivitySession,
    Activity,
    Message,
    MessagingSession,
    Consent,
    Transaction,
    Wallet,
    Hold,
}

const TEXTS: usize = 6;
const INTS: usize = 6;
const BLOBS: usize = 2;

/// One branch of the union: which columns of `from` fill the generic ones, in which order.
struct Branch {
    kind: Kind,
    texts: &'static [&'static str],
    ints: &'static [&'static str],
    blobs: &'static [&'static str],
    from: &'static str,
    /// What the rows of this kind are shown in order of: an integer, then two texts (compared
    /// bytewise, as SQLite's BINARY and PostgreSQL's "C" collations do).
    order: [&'static str; 3],
}

/// `$1` customer id, `$2` now (ms), `$3` how many of the latest messages, transactions, activity
/// sessions and activities ([`LATEST`]), `$4` org id.
const BRANCHES: [Branch; 12] = [
    Branch {
        kind: Kind::Tag,
        texts: &["key", "value"],
        ints: &["expires_at"],
        blobs: &[],
        from: "customer_tags WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        order: ["0", "key", "''"],
    },
    Branch {
        kind: Kind::SecondaryId,
        texts: &["key", "value"],
        ints: &["expires_at"],
        blobs: &[],
        from: "customer_secondary_ids WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        order: ["0", "key", "value"],
    },
    Branch {
        kind: Kind::Metadata,
        texts: &["key", "text_value"],
        ints: &[],
        blobs: &["bytes_value"],
        from: "customer_metadata WHERE customer_id = $1",
        order: ["0", "key", "''"],
    },
    Branch {
        kind: Kind::Number,
        texts: &["number", "partition"],
        ints: &["provider"],
        blobs: &[],
        from: "customer_numbers WHERE customer_id = $1",
        order: ["created_at", "number", "''"],
    },
    Branch {
        kind: Kind::ActivitySession,
        texts: &["source", "session_id", "app_id", "number", "partition"],
        ints: &["provider", "created_at", "updated_at"],
        blobs: &[],
        from:
            "(SELECT * FROM activity_sessions WHERE customer_id = $1 ORDER BY created_at DESC, session_id DESC LIMIT $3)
               AS latest_sessions",
        order: ["created_at", "session_id", "''"],
    },
    Branch {
        kind: Kind::Activity,
        texts: &["source", "session_id", "key", "properties"],
        ints: &["created_at"],
        blobs: &[],
        from: "(SELECT * FROM activities WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT $3)
               AS latest_activities",
        order: ["created_at", "id", "''"],
    },
    Branch {
        kind: Kind::Message,
        texts: &["channel_number"],
        ints: &["channel", "status"],
        blobs: &["body"],
        from: "(SELECT id, channel, channel_number, status, body, created_at FROM messages WHERE customer_id = $1
                ORDER BY created_at DESC, id DESC LIMIT $3) AS latest_messages",
        order: ["created_at", "id", "''"],
    },
    Branch {
        kind: Kind::MessagingSession,
        texts: &["id", "org_id", "channel_number", "number", "partition", "app_id"],
        ints: &["channel", "provider", "started_at", "expires_at", "ended_at", "end_reason"],
        blobs: &[],
        from: "messaging_sessions WHERE customer_id = $1",
        order: ["started_at", "id", "''"],
    },
    Branch {
        kind: Kind::Consent,
        texts: &["channel_number"],
        ints: &["channel", "blocked", "updated_at"],
        blobs: &[],
        from: "messaging_consent WHERE customer_id = $1",
        order: ["channel", "channel_number", "''"],
    },
    Branch {
        kind: Kind::Transaction,
        texts: &["id", "app_id", "currency", "provider_transaction_id", "narration"],
        ints: &["amount", "status", "created_at", "updated_at"],
        blobs: &["debit_party", "credit_party"],
        // The latest of each side first (each an index range read backwards), so a customer with
        // a long history costs no more than one with a short one.
        from: "(SELECT * FROM (SELECT id, app_id, currency, provider_transaction_id, narration, amount, status,
                                      created_at, updated_at, debit_party, credit_party
                               FROM payment_transactions WHERE debit_customer_id = $1
                               ORDER BY created_at DESC, id DESC LIMIT $3) AS debits
                UNION
                SELECT * FROM (SELECT id, app_id, currency, provider_transaction_id, narration, amount, status,
                                      created_at, updated_at, debit_party, credit_party
                               FROM payment_transactions WHERE credit_customer_id = $1
                               ORDER BY created_at DESC, id DESC LIMIT $3) AS credits
                ORDER BY created_at DESC, id DESC LIMIT $3) AS latest_transactions",
        order: ["created_at", "id", "''"],
    },
    Branch {
        kind: Kind::Wallet,
        texts: &["id", "wallet_id", "currency"],
        ints: &["balance", "held", "sequence_nr"],
        blobs: &[],
        // org_id first: the accounts' unique index leads with it.
        from: "payment_accounts WHERE org_id = $4 AND kind = 'wallet' AND owner = $1",
        order: ["0", "wallet_id", "currency"],
    },
    Branch {
        kind: Kind::Hold,
        texts: &["t.debit_account", "t.id"],
        ints: &["t.amount", "t.created_at"],
        blobs: &[],
        // A hold on a wallet is a pending debit of its owner: found through the partial index of
        // held debits by customer (migration 0010), not by reading the customer's whole history.
        from: "payment_transactions t JOIN payment_accounts a ON a.id = t.debit_account
               WHERE t.debit_customer_id = $1 AND t.held = 1 AND a.kind = 'wallet' AND a.owner = $1",
        order: ["t.created_at", "t.id", "''"],
    },
];

fn columns(out: &mut String, names: &[&str], width: usize, prefix: char, sql_type: &str) {
    for i in 0..width {
        match names.get(i) {
            Some(name) => out.push_str(&format!(", {name} AS {prefix}{}", i + 1)),
            None => out.push_str(&format!(", CAST(NULL AS {sql_type}) AS {prefix}{}", i + 1)),
        }
    }
}

/// The statement, built once from [`BRANCHES`]. Portable: SQLite takes any type name in a CAST,
/// so `BYTEA` serves both.
static SQL: LazyLock<String> = LazyLock::new(|| {
    let branches = BRANCHES.iter().map(|b| {
        let [o1, o2, o3] = b.order;
        let mut select = format!(
            "SELECT {} AS kind, CAST({o1} AS BIGINT) AS o1, CAST({o2} AS TEXT) AS o2, CAST({o3} AS TEXT) AS o3",
            b.kind as i64
        );
        columns(&mut select, b.texts, TEXTS, 't', "TEXT");
        columns(&mut select, b.ints, INTS, 'i', "BIGINT");
        columns(&mut select, b.blobs, BLOBS, 'b', "BYTEA");
        select.push_str(" FROM ");
        select.push_str(b.from);
        select
    });
    branches.collect::<Vec<_>>().join("\nUNION ALL\n")
});

/// Reads one row's generic columns by position within its kind (`text(1)` is `t1`), by ordinal:
/// `kind`, `o1..o3`, then the texts, the integers and the bytes, as [`SQL`] lists them.
struct Columns<'r>(&'r AnyRow);

const FIRST_TEXT: usize = 4;
const FIRST_INT: usize = FIRST_TEXT + TEXTS;
const FIRST_BLOB: usize = FIRST_INT + INTS;

impl Columns<'_> {
    fn text(&self, n: usize) -> Result<String> {
        Ok(self.0.try_get(FIRST_TEXT + n - 1)?)
    }
    fn text_or_null(&self, n: usize) -> Result<Option<String>> {
        Ok(self.0.try_get(FIRST_TEXT + n - 1)?)
    }
    fn int_or_null(&self, n: usize) -> Result<Option<i64>> {
        Ok(self.0.try_get(FIRST_INT + n - 1)?)
    }
    fn int(&self, n: usize) -> Result<i64> {
        match self.int_or_null(n)? {
            Some(v) => Ok(v),
            None => bail!("customer state: column i{n} is NULL"),
        }
    }
    fn small(&self, n: usize) -> Result<i32> {
        Ok(i32::try_from(self.int(n)?)?)
    }
    /// Bytes, a NULL as none (an empty blob may come back as either).
    fn bytes(&self, n: usize) -> Result<Vec<u8>> {
        Ok(self.0.try_get::<Option<Vec<u8>>, _>(FIRST_BLOB + n - 1)?.unwrap_or_default())
    }
}

impl Store {
    /// Everything GetCustomerState shows about `customer_id` of `org_id`, in one statement.
    pub async fn customer_snapshot(&self, org_id: &str, customer_id: &str) -> Result<CustomerSnapshot> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(SQL.as_str()))
            .bind(customer_id)
            .bind(now_ms())
            .bind(LATEST)
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        // Ordered here rather than by the statement: an ORDER BY over the union cost SQLite a
        // sorter per branch, several times the reads themselves.
        let mut order = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let key: (i64, i64, Option<String>, Option<String>) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            order.push((key, i));
        }
        order.sort_unstable();
        let mut s = CustomerSnapshot::default();
        for ((kind, ..), i) in order {
            let Some(kind) = BRANCHES.get(usize::try_from(kind)?).map(|b| b.kind) else {
                bail!("customer state: unknown kind {kind}")
            };
            read(&mut s, kind, customer_id, &Columns(&rows[i]))?;
        }
        Ok(s)
    }
}

/// Takes one row back out of the generic columns, by the positions its [`Branch`] put them in.
fn read(s: &mut CustomerSnapshot, kind: Kind, customer_id: &str, c: &Columns) -> Result<()> {
    match kind {
        Kind::Tag | Kind::SecondaryId => {
            let index = Index { key: c.text(1)?, value: c.text(2)?, expires_at: c.int_or_null(1)? };
            if kind == Kind::Tag { &mut s.tags } else { &mut s.secondary_ids }.push(index);
        }
        Kind::Metadata => {
            let value = match c.text_or_null(2)? {
                Some(text) => MetaValue::Text(text),
                None => MetaValue::Bytes(c.bytes(1)?),
            };
            s.metadata.push((c.text(1)?, value));
        }
        Kind::Number => {
            s.numbers.push(StoredNumber { number: c.text(1)?, partition: c.text(2)?, provider: c.small(1)? });
        }
        Kind::ActivitySession => s.activity.push(StoredSession {
            source: c.text(1)?,
            session_id: c.text(2)?,
            app_id: c.text(3)?,
            number: StoredNumber { number: c.text(4)?, partition: c.text(5)?, provider: c.small(1)? },
            created_at: c.int(2)?,
            updated_at: c.int(3)?,
            activities: Vec::new(),
        }),
        Kind::Activity => {
            // Sessions come before activities (kind order), so each finds its session here.
            let (source, session_id) = (c.text(1)?, c.text(2)?);
            if let Some(session) = s.activity.iter_mut().find(|a| a.source == source && a.session_id == session_id) {
                session.activities.push(StoredActivity {
                    key: c.text(3)?,
                    properties: serde_json::from_str(&c.text(4)?)?,
                    created_at: c.int(1)?,
                });
            }
        }
        Kind::Message => s.messages.push(StateMessage {
            channel_number: c.text(1)?,
            channel: c.small(1)?,
            status: c.small(2)?,
            body: c.bytes(1)?,
        }),
        Kind::MessagingSession => s.sessions.push(SessionRow {
            id: c.text(1)?,
            org_id: c.text(2)?,
            customer_id: customer_id.to_string(),
            channel_number: c.text(3)?,
            number: c.text(4)?,
            partition: c.text(5)?,
            app_id: c.text(6)?,
            channel: c.small(1)?,
            provider: c.small(2)?,
            started_at: c.int(3)?,
            expires_at: c.int(4)?,
            ended_at: c.int_or_null(5)?,
            end_reason: c.int_or_null(6)?.map(i32::try_from).transpose()?,
        }),
        Kind::Consent => s.consents.push(ConsentRow {
            channel_number: c.text(1)?,
            channel: c.small(1)?,
            blocked: c.int(2)? != 0,
            updated_at: c.int(3)?,
        }),
        Kind::Transaction => s.transactions.push(StateTransaction {
            id: c.text(1)?,
            app_id: c.text_or_null(2)?,
            currency: c.text(3)?,
            provider_transaction_id: c.text_or_null(4)?,
            narration: c.text(5)?,
            amount: c.int(1)?,
            status: c.small(2)?,
            created_at: c.int(3)?,
            updated_at: c.int(4)?,
            debit_party: c.bytes(1)?,
            credit_party: c.bytes(2)?,
        }),
        Kind::Wallet => s.wallets.push(Account {
            id: c.text(1)?,
            kind: "wallet".into(),
            owner: customer_id.to_string(),
            wallet_id: c.text(2)?,
            currency: c.text(3)?,
            balance: c.int(1)?,
            held: c.int(2)?,
            sequence_nr: c.int(3)?,
        }),
        Kind::Hold => s.holds.push(Hold {
            account_id: c.text(1)?,
            transaction_id: c.text(2)?,
            amount: c.int(1)?,
            created_at: c.int(2)?,
        }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_branch_fits_the_generic_columns_and_kinds_are_in_order() {
        for (i, b) in BRANCHES.iter().enumerate() {
            assert_eq!(b.kind as usize, i, "branch {i} is out of kind order");
            // How `customer_snapshot` turns a row's kind back into a Kind.
            assert_eq!(BRANCHES.get(b.kind as usize).map(|x| x.kind), Some(b.kind));
            assert!(b.texts.len() <= TEXTS && b.ints.len() <= INTS && b.blobs.len() <= BLOBS, "{:?}", b.kind);
        }
        assert_eq!(SQL.matches("UNION ALL").count(), BRANCHES.len() - 1);
        // The ordinals Columns reads by are the ones the statement lists.
        let first = SQL.split("\nUNION ALL\n").next().expect("a branch");
        // An alias is what follows " AS " up to a comma or space; a CAST's type ends in ')'.
        let names: Vec<&str> = first
            .split(" AS ")
            .skip(1)
            .map(|c| c.split([',', ' ']).next().unwrap_or(""))
            .filter(|n| !n.ends_with(')'))
            .collect();
        assert_eq!(names.iter().position(|n| *n == "t1"), Some(FIRST_TEXT), "{names:?}");
        assert_eq!(names.iter().position(|n| *n == "i1"), Some(FIRST_INT), "{names:?}");
        assert_eq!(names.iter().position(|n| *n == "b1"), Some(FIRST_BLOB), "{names:?}");
    }
}
