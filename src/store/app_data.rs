//! App data: one value per (app, customer), text or bytes.

use anyhow::Result;
use sqlx::Row;

use super::{now_ms, Store};

/// A stored app-data value, as the DataMapValue variant that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppDataValue {
    Text(String),
    Bytes(Vec<u8>),
}

impl Store {
    pub async fn app_data(&self, app_id: &str, customer_id: &str) -> Result<Option<AppDataValue>> {
        let row = sqlx::query("SELECT text_value, bytes_value FROM app_data WHERE app_id = $1 AND customer_id = $2")
            .bind(app_id)
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        if let Some(text) = row.try_get::<Option<String>, _>("text_value")? {
            return Ok(Some(AppDataValue::Text(text)));
        }
        Ok(row.try_get::<Option<Vec<u8>>, _>("bytes_value")?.map(AppDataValue::Bytes))
    }

    pub async fn set_app_data(&self, app_id: &str, customer_id: &str, value: &AppDataValue) -> Result<()> {
        let (text, bytes) = match value {
            AppDataValue::Text(t) => (Some(t.as_str()), None),
            AppDataValue::Bytes(b) => (None, Some(b.as_slice())),
        };
        sqlx::query(
            "INSERT INTO app_data (app_id, customer_id, text_value, bytes_value, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (app_id, customer_id) DO UPDATE SET text_value = $3, bytes_value = $4, updated_at = $5",
        )
        .bind(app_id)
        .bind(customer_id)
        .bind(text)
        .bind(bytes)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
