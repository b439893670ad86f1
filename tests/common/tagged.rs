//! Many tagged customers at once, for by-tag work: one statement each for customers, numbers and
//! tags (portable between SQLite and PostgreSQL), instead of a command per customer.

use hodi::store::Store;

/// Creates `count` customers of `org_id` with ids `cst_<prefix>_<n>`, each tagged (key, value) and
/// with a cellular number `+<base + n>` (`base`: a twelve-digit number's first digits).
pub async fn seed(store: &Store, org_id: &str, prefix: &str, count: i64, tag: (&str, &str), base: i64) {
    let numbers = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $2)";
    let customers =
        format!("INSERT INTO customers (id, org_id, created_at) {numbers} SELECT 'cst_{prefix}_' || n, $1, 0 FROM g");
    sqlx::query(sqlx::AssertSqlSafe(customers))
        .bind(org_id)
        .bind(count)
        .execute(store.pool())
        .await
        .expect("customers");
    let phones = format!(
        "INSERT INTO customer_numbers (org_id, provider, number, partition, customer_id, created_at)
         {numbers} SELECT $1, 2, '+' || ($3 + n), '', 'cst_{prefix}_' || n, 0 FROM g"
    );
    sqlx::query(sqlx::AssertSqlSafe(phones))
        .bind(org_id)
        .bind(count)
        .bind(base)
        .execute(store.pool())
        .await
        .expect("numbers");
    let tags = format!(
        "INSERT INTO customer_tags (customer_id, key, value, org_id, expires_at, updated_at)
         SELECT id, $1, $2, org_id, NULL, 0 FROM customers WHERE org_id = $3 AND id LIKE 'cst_{prefix}_%'"
    );
    sqlx::query(sqlx::AssertSqlSafe(tags))
        .bind(tag.0)
        .bind(tag.1)
        .bind(org_id)
        .execute(store.pool())
        .await
        .expect("tags");
}
