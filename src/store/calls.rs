//! Call detail records of the voice executor.

use sqlx::Row;

use super::{Result, Store};

/// One finished call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallRecord {
    pub id: String,
    pub session_id: String,
    pub org_id: Option<String>,
    pub app_id: Option<String>,
    pub sip_call_id: String,
    pub direction: String,
    pub caller: String,
    pub callee: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    pub duration_ms: i64,
    pub ending: String,
    pub sip_status: i64,
    pub packets_sent: i64,
    pub packets_received: i64,
    pub packets_lost: i64,
    pub jitter_ms: f64,
    /// The round trip RTCP measured, when the far end's reports gave one.
    pub rtt_ms: Option<f64>,
    /// Mean opinion score (1 to 4.5) of the customer's audio; None for a leg with no audio.
    pub mos: Option<f64>,
}

/// Which call records to list (`hodi calls`): each field given must match.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub org_id: Option<String>,
    /// inbound or outbound.
    pub direction: Option<String>,
    pub ending: Option<String>,
    /// The caller or the callee.
    pub number: Option<String>,
    /// Started at or after (unix ms).
    pub since: Option<i64>,
    /// The call's session (the console checks a recording's call is the viewer's org's).
    pub session_id: Option<String>,
}

const COLUMNS: &str =
    "id, session_id, org_id, app_id, sip_call_id, direction, caller, callee, started_at, answered_at, ended_at, \
     duration_ms, ending, sip_status, packets_sent, packets_received, packets_lost, jitter_ms, rtt_ms, mos";

impl Store {
    pub async fn insert_call_record(&self, r: &CallRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO call_records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&r.id)
            .bind(&r.session_id)
            .bind(&r.org_id)
            .bind(&r.app_id)
            .bind(&r.sip_call_id)
            .bind(&r.direction)
            .bind(&r.caller)
            .bind(&r.callee)
            .bind(r.started_at)
            .bind(r.answered_at)
            .bind(r.ended_at)
            .bind(r.duration_ms)
            .bind(&r.ending)
            .bind(r.sip_status)
            .bind(r.packets_sent)
            .bind(r.packets_received)
            .bind(r.packets_lost)
            .bind(r.jitter_ms)
            .bind(r.rtt_ms)
            .bind(r.mos)
            .execute(&self.pool)
            .await?;
        crate::metrics::call_ended(
            &r.direction,
            &r.ending,
            r.packets_received,
            r.packets_lost,
            // From a peer's RTP: never trusted to be a finite, positive number.
            std::time::Duration::try_from_secs_f64(r.jitter_ms / 1000.0).unwrap_or_default(),
            r.mos,
        );
        Ok(())
    }

    /// The newest `limit` records, newest first.
    pub async fn call_records(&self, limit: i64) -> Result<Vec<CallRecord>> {
        self.call_records_where(&CallFilter::default(), limit).await
    }

    /// The newest `limit` records that `filter` lets through, newest first.
    pub async fn call_records_where(&self, filter: &CallFilter, limit: i64) -> Result<Vec<CallRecord>> {
        // Each filter given adds a condition on a bound value; none is written into the SQL.
        let mut conditions = Vec::new();
        let mut values: Vec<&str> = Vec::new();
        for (column, value) in [
            ("org_id", &filter.org_id),
            ("direction", &filter.direction),
            ("ending", &filter.ending),
            ("session_id", &filter.session_id),
        ] {
            if let Some(v) = value {
                values.push(v);
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        if let Some(number) = &filter.number {
            values.push(number);
            values.push(number);
            conditions.push(format!("(caller = ${} OR callee = ${})", values.len() - 1, values.len()));
        }
        let since = values.len() + 1;
        let clause = conditions.iter().map(|c| format!("{c} AND ")).collect::<String>();
        let sql = format!(
            "SELECT {COLUMNS} FROM call_records WHERE {clause}started_at >= ${since}
             ORDER BY started_at DESC, id DESC LIMIT ${}",
            since + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in values {
            query = query.bind(v);
        }
        let rows = query.bind(filter.since.unwrap_or(0)).bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(CallRecord {
                    id: r.try_get("id")?,
                    session_id: r.try_get("session_id")?,
                    org_id: r.try_get("org_id")?,
                    app_id: r.try_get("app_id")?,
                    sip_call_id: r.try_get("sip_call_id")?,
                    direction: r.try_get("direction")?,
                    caller: r.try_get("caller")?,
                    callee: r.try_get("callee")?,
                    started_at: r.try_get("started_at")?,
                    answered_at: r.try_get("answered_at")?,
                    ended_at: r.try_get("ended_at")?,
                    duration_ms: r.try_get("duration_ms")?,
                    ending: r.try_get("ending")?,
                    sip_status: r.try_get("sip_status")?,
                    packets_sent: r.try_get("packets_sent")?,
                    packets_received: r.try_get("packets_received")?,
                    packets_lost: r.try_get("packets_lost")?,
                    jitter_ms: r.try_get("jitter_ms")?,
                    rtt_ms: r.try_get("rtt_ms")?,
                    mos: r.try_get("mos")?,
                })
            })
            .collect()
    }
}
