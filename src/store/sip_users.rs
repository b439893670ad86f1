//! SIP users an org provisions for its phones (see migration 0016): who may register with Hodi's
//! registrar, with what digest secret, and which voice number's app handles the calls they place.
//!
//! Owns the rows; the digest arithmetic (and so what `ha1_*` hold) is
//! [`crate::voice::registrar::digest`]'s, done by the caller.

use anyhow::{bail, Result};
use sqlx::Row;

use super::{now_ms, Store};

/// A provisioned SIP user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUser {
    pub org_id: String,
    pub domain: String,
    pub username: String,
    pub extension: Option<String>,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    /// The org's voice number whose app handles the calls this user places.
    pub number: Option<String>,
}

const COLUMNS: &str = "org_id, domain, username, extension, ha1_md5, ha1_sha256, number";

fn row(r: &sqlx::any::AnyRow) -> Result<SipUser> {
    Ok(SipUser {
        org_id: r.try_get("org_id")?,
        domain: r.try_get("domain")?,
        username: r.try_get("username")?,
        extension: r.try_get("extension")?,
        ha1_md5: r.try_get("ha1_md5")?,
        ha1_sha256: r.try_get("ha1_sha256")?,
        number: r.try_get("number")?,
    })
}

impl Store {
    /// Creates the user, or changes its password, extension and number when it exists (in the
    /// same org). Refused when another org owns the domain, or the extension is another user's.
    pub async fn put_sip_user(&self, user: &SipUser) -> Result<()> {
        let owner = sqlx::query("SELECT org_id FROM sip_users WHERE domain = $1 LIMIT 1")
            .bind(&user.domain)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(owner) = owner {
            let owner: String = owner.try_get("org_id")?;
            if owner != user.org_id {
                bail!("SIP domain {} belongs to another org", user.domain);
            }
        }
        if let Some(ext) = &user.extension {
            let taken = sqlx::query("SELECT username FROM sip_users WHERE domain = $1 AND extension = $2")
                .bind(&user.domain)
                .bind(ext)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(taken) = taken {
                let by: String = taken.try_get("username")?;
                if by != user.username {
                    bail!("extension {ext} in {} is {by}'s", user.domain);
                }
            }
        }
        if let Some(number) = &user.number {
            let ours =
                sqlx::query("SELECT 1 FROM channel_numbers WHERE org_id = $1 AND channel = 'voice' AND number = $2")
                    .bind(&user.org_id)
                    .bind(number)
                    .fetch_optional(&self.pool)
                    .await?;
            if ours.is_none() {
                bail!("{number} is not a voice number of org {} (hodi provision channel --channel voice)", user.org_id);
            }
        }
        sqlx::query(
            "INSERT INTO sip_users (org_id, domain, username, extension, ha1_md5, ha1_sha256, number, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (domain, username) DO UPDATE SET extension = excluded.extension,
                 ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256, number = excluded.number",
        )
        .bind(&user.org_id)
        .bind(&user.domain)
        .bind(&user.username)
        .bind(&user.extension)
        .bind(&user.ha1_md5)
        .bind(&user.ha1_sha256)
        .bind(&user.number)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user `username` of `domain` (domains are stored in lower case).
    pub async fn sip_user(&self, domain: &str, username: &str) -> Result<Option<SipUser>> {
        let sql = format!("SELECT {COLUMNS} FROM sip_users WHERE domain = $1 AND username = $2");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(domain).bind(username).fetch_optional(&self.pool).await?;
        r.as_ref().map(row).transpose()
    }

    /// The org's user whose name or extension is `name` (the first by domain when several
    /// domains of the org have one).
    pub async fn sip_user_in_org(&self, org_id: &str, name: &str) -> Result<Option<SipUser>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sip_users WHERE org_id = $1 AND (username = $2 OR extension = $2)
             ORDER BY domain, username LIMIT 1"
        );
        let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org_id).bind(name).fetch_optional(&self.pool).await?;
        r.as_ref().map(row).transpose()
    }

    /// The user of `domain` whose name is `name`, or else whose extension is (`sip:101@domain`
    /// as a phone's transfer or a dial names it).
    pub async fn sip_user_in_domain(&self, domain: &str, name: &str) -> Result<Option<SipUser>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sip_users WHERE domain = $1 AND (username = $2 OR extension = $2)
             ORDER BY CASE WHEN username = $2 THEN 0 ELSE 1 END, username LIMIT 1"
        );
        let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(domain).bind(name).fetch_optional(&self.pool).await?;
        r.as_ref().map(row).transpose()
    }

    /// Whether any org has users in `domain`.
    pub async fn sip_domain_known(&self, domain: &str) -> Result<bool> {
        let r = sqlx::query("SELECT 1 FROM sip_users WHERE domain = $1 LIMIT 1")
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.is_some())
    }

    /// The org's SIP users, by domain then name.
    pub async fn sip_users(&self, org_id: &str) -> Result<Vec<SipUser>> {
        let sql = format!("SELECT {COLUMNS} FROM sip_users WHERE org_id = $1 ORDER BY domain, username");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org_id).fetch_all(&self.pool).await?;
        rows.iter().map(row).collect()
    }
}
