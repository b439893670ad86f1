//! Background work started by by-tag commands: the reply carries the work id at once; this table
//! says how it went.

use anyhow::Result;
use sqlx::Row;

use super::{new_id, now_ms, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkRecord {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub customers: i64,
    pub error: Option<String>,
}

impl Store {
    pub async fn start_work(&self, org_id: &str, app_id: &str, kind: &str) -> Result<String> {
        let id = new_id("wrk_");
        sqlx::query(
            "INSERT INTO work (id, org_id, app_id, kind, state, created_at) VALUES ($1, $2, $3, $4, 'running', $5)",
        )
        .bind(&id)
        .bind(org_id)
        .bind(app_id)
        .bind(kind)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn finish_work(&self, id: &str, customers: i64, error: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE work SET state = $1, customers = $2, error = $3, finished_at = $4 WHERE id = $5")
            .bind(if error.is_some() { "failed" } else { "done" })
            .bind(customers)
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn work(&self, id: &str) -> Result<Option<WorkRecord>> {
        let row = sqlx::query("SELECT id, kind, state, customers, error FROM work WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(WorkRecord {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                state: r.try_get("state")?,
                customers: r.try_get("customers")?,
                error: r.try_get("error")?,
            })
        })
        .transpose()
    }
}
