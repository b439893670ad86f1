//! Provisioned resources: orgs, apps, API keys, purses, channel numbers.

use anyhow::{bail, Result};
use sqlx::Row;

use super::{hash_secret, new_id, new_secret, now_ms, Store};

/// An API key as created: the plaintext is only ever available here, at creation.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub org_id: String,
    pub key: String,
}

/// A provisioned channel number and the provider it sends through (None: simulator sockets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNumberRow {
    pub channel: String,
    pub number: String,
    pub provider: Option<String>,
    /// Disabled by the operator: treated as not provisioned until enabled again.
    pub disabled: bool,
}

/// An app as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    pub id: String,
    pub name: String,
    /// Disabled by the operator: its SETUPs are refused and its sockets closed.
    pub disabled: bool,
}

/// An API key as operators see it (never the key itself: only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Store {
    pub async fn org_exists(&self, org_id: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM orgs WHERE id = $1").bind(org_id).fetch_optional(&self.pool).await?.is_some())
    }

    pub async fn app_in_org(&self, org_id: &str, app_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM apps WHERE id = $1 AND org_id = $2")
            .bind(app_id)
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Whether app `app_id` is in `org_id` (None when not) and whether it is disabled.
    pub async fn app_state(&self, org_id: &str, app_id: &str) -> Result<Option<bool>> {
        let row = sqlx::query("SELECT disabled_at FROM apps WHERE id = $1 AND org_id = $2")
            .bind(app_id)
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get::<Option<i64>, _>("disabled_at")?.is_some())).transpose()
    }

    pub async fn count_orgs(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM orgs").fetch_one(&self.pool).await?.try_get("n")?)
    }

    pub async fn create_org(&self, id: Option<&str>, name: &str) -> Result<String> {
        let id = id.map(str::to_string).unwrap_or_else(|| new_id("org_"));
        if self.org_exists(&id).await? {
            bail!("org {id} already exists");
        }
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    pub async fn create_app(&self, org_id: &str, id: Option<&str>, name: &str) -> Result<String> {
        if !self.org_exists(org_id).await? {
            bail!("unknown org {org_id}");
        }
        let id = id.map(str::to_string).unwrap_or_else(|| new_id("app_"));
        sqlx::query("INSERT INTO apps (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(org_id)
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| anyhow::anyhow!("creating app {id}: {e}"))?;
        Ok(id)
    }

    pub async fn create_api_key(&self, org_id: &str) -> Result<NewApiKey> {
        if !self.org_exists(org_id).await? {
            bail!("unknown org {org_id}");
        }
        let key = new_secret("hodi_key_");
        let id = new_id("key_");
        sqlx::query("INSERT INTO api_keys (id, org_id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(org_id)
            .bind(hash_secret(&key))
            .bind(&key[..13])
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(NewApiKey { id, org_id: org_id.to_string(), key })
    }

    /// An org's API keys, oldest first: id, the key's first characters, when made and revoked.
    pub async fn api_keys(&self, org_id: &str) -> Result<Vec<ApiKeyRow>> {
        if !self.org_exists(org_id).await? {
            bail!("unknown org {org_id}");
        }
        let rows = sqlx::query(
            "SELECT id, prefix, created_at, revoked_at FROM api_keys WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyRow {
                    id: r.try_get("id")?,
                    prefix: r.try_get("prefix")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// An org's apps and channel numbers (channel, number, provider; None: simulator), apps
    /// oldest first.
    pub async fn org_inventory(&self, org_id: &str) -> Result<(Vec<AppRow>, Vec<ChannelNumberRow>)> {
        if !self.org_exists(org_id).await? {
            bail!("unknown org {org_id}");
        }
        let apps = sqlx::query("SELECT id, name, disabled_at FROM apps WHERE org_id = $1 ORDER BY created_at, id")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(AppRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let numbers = sqlx::query(
            "SELECT channel, number, provider, disabled_at FROM channel_numbers WHERE org_id = $1
             ORDER BY channel, number",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ChannelNumberRow {
                channel: r.try_get("channel")?,
                number: r.try_get("number")?,
                provider: r.try_get("provider")?,
                disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok((apps, numbers))
    }

    /// Disables (or enables again) app `app_id` of `org_id`. False when there is no such app.
    pub async fn set_app_disabled(&self, org_id: &str, app_id: &str, disabled: bool) -> Result<bool> {
        let at = disabled.then(now_ms);
        let done = sqlx::query("UPDATE apps SET disabled_at = $1 WHERE id = $2 AND org_id = $3")
            .bind(at)
            .bind(app_id)
            .bind(org_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(done > 0)
    }

    /// Disables (or enables again) `number` on `channel` of `org_id`. False when there is none.
    pub async fn set_channel_number_disabled(
        &self,
        org_id: &str,
        channel: &str,
        number: &str,
        disabled: bool,
    ) -> Result<bool> {
        let at = disabled.then(now_ms);
        let done = sqlx::query(
            "UPDATE channel_numbers SET disabled_at = $1 WHERE org_id = $2 AND channel = $3 AND number = $4",
        )
        .bind(at)
        .bind(org_id)
        .bind(channel)
        .bind(number)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done > 0)
    }

    /// The apps disabled now (few: an operator's doing), for closing their sockets.
    pub async fn disabled_apps(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM apps WHERE disabled_at IS NOT NULL").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Whether `number` on `channel` of `org_id` is provisioned but disabled (to say so).
    pub async fn channel_number_disabled(&self, org_id: &str, channel: &str, number: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM channel_numbers WHERE org_id = $1 AND channel = $2 AND number = $3 AND disabled_at IS NOT NULL",
        )
        .bind(org_id)
        .bind(channel)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Revokes API key `id`: new SETUPs with it are refused (sockets already open stay until they
    /// close). False when there is no such key or it was revoked already.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn create_purse(&self, org_id: &str, currency: &str) -> Result<String> {
        if !self.org_exists(org_id).await? {
            bail!("unknown org {org_id}");
        }
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            bail!("currency must be a three-letter ISO 4217 code in upper case, got {currency:?}");
        }
        if iso_currency::Currency::from_code(currency).is_none() {
            bail!("{currency} is not an ISO 4217 currency (KES, UGX, TZS, NGN, USD, …)");
        }
        let id = new_id("prs_");
        sqlx::query("INSERT INTO purses (id, org_id, currency, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(org_id)
            .bind(currency)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    pub async fn add_channel_number(&self, org_id: &str, channel: &str, number: &str) -> Result<()> {
        if !self.org_exists(org_id).await? {
            bail!("unknown org {org_id}");
        }
        sqlx::query(
            "INSERT INTO channel_numbers (org_id, channel, number, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (org_id, channel, number) DO NOTHING",
        )
        .bind(org_id)
        .bind(channel)
        .bind(number)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn channel_numbers(&self, org_id: &str) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT channel, number FROM channel_numbers WHERE org_id = $1 ORDER BY channel, number")
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok((r.try_get("channel")?, r.try_get("number")?))).collect()
    }
}
