//! Credentials checked at SETUP: API keys and short-lived auth tokens, both stored hashed.

use anyhow::Result;
use sqlx::Row;

use super::{hash_secret, new_secret, now_ms, Store};

/// What an auth token lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid until this time (unix ms).
    Valid { expires_at: i64 },
    /// Known, but its lifetime ended at this time (unix ms).
    Expired(i64),
    /// Unknown, or issued for another org or app.
    Unknown,
}

impl Store {
    /// Whether `key` is a live API key of `org_id`.
    pub async fn api_key_valid(&self, org_id: &str, key: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM api_keys WHERE key_hash = $1 AND org_id = $2 AND revoked_at IS NULL")
            .bind(hash_secret(key))
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Issues a token for (org, app) valid for `lifetime_secs`; returns the plaintext.
    pub async fn issue_auth_token(&self, org_id: &str, app_id: &str, lifetime_secs: u64) -> Result<String> {
        let token = new_secret("hodi_tok_");
        let now = now_ms();
        let expires = now.saturating_add(super::secs_to_ms(lifetime_secs));
        // Expired tokens are only kept long enough to say "expired" rather than "unknown".
        sqlx::query("DELETE FROM auth_tokens WHERE expires_at < $1")
            .bind(now - 24 * 3600 * 1000)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO auth_tokens (token_hash, org_id, app_id, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash_secret(&token))
            .bind(org_id)
            .bind(app_id)
            .bind(expires)
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    pub async fn check_auth_token(&self, org_id: &str, app_id: &str, token: &str) -> Result<TokenCheck> {
        let row =
            sqlx::query("SELECT expires_at FROM auth_tokens WHERE token_hash = $1 AND org_id = $2 AND app_id = $3")
                .bind(hash_secret(token))
                .bind(org_id)
                .bind(app_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            None => TokenCheck::Unknown,
            Some(row) => {
                let expires: i64 = row.try_get("expires_at")?;
                if expires <= now_ms() {
                    TokenCheck::Expired(expires)
                } else {
                    TokenCheck::Valid { expires_at: expires }
                }
            }
        })
    }

    /// Test and operator hook: moves a token's expiry (unix ms).
    pub async fn set_auth_token_expiry(&self, token: &str, expires_at: i64) -> Result<()> {
        sqlx::query("UPDATE auth_tokens SET expires_at = $1 WHERE token_hash = $2")
            .bind(expires_at)
            .bind(hash_secret(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
