//! Customers and their numbers. A customer belongs to one org; every lookup is scoped by org.

use anyhow::Result;
use sqlx::Row;

use super::{new_id, now_ms, Store};

/// A customer number as stored: provider code, number, partition ('' when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNumber {
    pub provider: i32,
    pub number: String,
    pub partition: String,
}

/// A customer as found by a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    pub id: String,
    pub decommissioned: bool,
}

/// A customer row (`id`, `decommissioned_at`) as a record.
fn customer_record(r: &sqlx::any::AnyRow) -> Result<CustomerRecord> {
    Ok(CustomerRecord {
        id: r.try_get("id")?,
        decommissioned: r.try_get::<Option<i64>, _>("decommissioned_at")?.is_some(),
    })
}

impl Store {
    pub async fn customer(&self, org_id: &str, customer_id: &str) -> Result<Option<CustomerRecord>> {
        let row = sqlx::query("SELECT id, decommissioned_at FROM customers WHERE id = $1 AND org_id = $2")
            .bind(customer_id)
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(customer_record).transpose()
    }

    /// The customer of `org_id` with id `id_or_number`, or else owning that number (on any
    /// provider, any partition; the oldest such when several do). Creates nothing. The providers are
    /// listed so that the lookup walks the primary key rather than all of an org's numbers.
    pub async fn find_customer(&self, org_id: &str, id_or_number: &str) -> Result<Option<CustomerRecord>> {
        if let Some(found) = self.customer(org_id, id_or_number).await? {
            return Ok(Some(found));
        }
        let row = sqlx::query(
            "SELECT c.id, c.decommissioned_at FROM customer_numbers n JOIN customers c ON c.id = n.customer_id
             WHERE n.org_id = $1 AND n.provider IN (0, 1, 2, 3, 4, 5) AND n.number = $2 ORDER BY c.created_at, c.id LIMIT 1",
        )
        .bind(org_id)
        .bind(id_or_number)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(customer_record).transpose()
    }

    /// The customer owning `number` in `org_id`, created (with the number) if none does.
    /// Returns the id and whether it was created now.
    pub async fn customer_by_number(&self, org_id: &str, number: &StoredNumber) -> Result<(CustomerRecord, bool)> {
        let find = || {
            sqlx::query(
                "SELECT c.id, c.decommissioned_at FROM customer_numbers n JOIN customers c ON c.id = n.customer_id
                 WHERE n.org_id = $1 AND n.provider = $2 AND n.number = $3 AND n.partition = $4",
            )
            .bind(org_id)
            .bind(number.provider)
            .bind(&number.number)
            .bind(&number.partition)
        };
        let to_record = |r: sqlx::any::AnyRow| customer_record(&r);
        if let Some(row) = find().fetch_optional(&self.pool).await? {
            return Ok((to_record(row)?, false));
        }
        let id = new_id("cst_");
        let now = now_ms();
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO customers (id, org_id, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(org_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO customer_numbers (org_id, provider, number, partition, customer_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(org_id)
        .bind(number.provider)
        .bind(&number.number)
        .bind(&number.partition)
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // Another request created it between our lookup and insert: use theirs.
            tx.rollback().await?;
            let row = find().fetch_one(&self.pool).await?;
            return Ok((to_record(row)?, false));
        }
        tx.commit().await?;
        Ok((CustomerRecord { id, decommissioned: false }, true))
    }

    /// For each of `customers`, its first number from `provider` (customers without one are absent).
    pub async fn numbers_by_provider(
        &self,
        customers: &[String],
        provider: i32,
    ) -> Result<Vec<(String, StoredNumber)>> {
        let mut out: Vec<(String, StoredNumber)> = Vec::with_capacity(customers.len());
        for chunk in customers.chunks(super::rows_per_statement(1)) {
            let sql = format!(
                "SELECT customer_id, provider, number, partition FROM customer_numbers WHERE provider = ? AND customer_id IN ({})
                 ORDER BY customer_id, created_at, number",
                super::list_placeholders(chunk.len())
            );
            // Built from placeholders only; every value is bound.
            let mut query = sqlx::query(self.backend.bulk(sql)).bind(provider);
            for c in chunk {
                query = query.bind(c);
            }
            for r in query.fetch_all(&self.pool).await? {
                let customer: String = r.try_get("customer_id")?;
                if out.last().is_some_and(|(c, _)| *c == customer) {
                    continue;
                }
                out.push((
                    customer,
                    StoredNumber {
                        provider: r.try_get("provider")?,
                        number: r.try_get("number")?,
                        partition: r.try_get("partition")?,
                    },
                ));
            }
        }
        Ok(out)
    }

    pub async fn customer_numbers(&self, customer_id: &str) -> Result<Vec<StoredNumber>> {
        let rows = sqlx::query(
            "SELECT provider, number, partition FROM customer_numbers WHERE customer_id = $1 ORDER BY created_at, number",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredNumber {
                    provider: r.try_get("provider")?,
                    number: r.try_get("number")?,
                    partition: r.try_get("partition")?,
                })
            })
            .collect()
    }
}
