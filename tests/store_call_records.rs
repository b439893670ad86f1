//! Call detail records on the suite's database: a record without call quality (a refused call:
//! no round trip, no audio) and one with it, stored one after the other, both come back whole.
//!
//! On PostgreSQL with sqlx 0.9.0 the second insert failed ("incorrect binary data format in
//! bind parameter 20"): its Any driver declared a NULL `f64` as `real`, the connection kept the
//! statement prepared with that type, and the next call's MOS (eight bytes) no longer fit. The
//! voice suite saw it only when two calls ended on the same pooled connection.

mod common;

use common::database::TestDatabase;
use hodi::store::calls::{CallFilter, CallRecord};
use hodi::store::{now_ms, Store};

fn record(i: usize, rtt_ms: Option<f64>, mos: Option<f64>) -> CallRecord {
    let at = now_ms() + i as i64;
    CallRecord {
        id: format!("cdr_{i:04}"),
        session_id: format!("call_{i:04}"),
        org_id: Some("org".into()),
        app_id: Some("app".into()),
        sip_call_id: format!("sip-{i}"),
        direction: "inbound".into(),
        caller: "+254700000888".into(),
        callee: "+254711082000".into(),
        started_at: at,
        answered_at: mos.map(|_| at),
        ended_at: at + 1_000,
        duration_ms: 1_000,
        ending: if mos.is_some() { "customer_hung_up" } else { "rejected" }.into(),
        sip_status: if mos.is_some() { 200 } else { 603 },
        packets_sent: i as i64,
        packets_received: i as i64,
        packets_lost: 0,
        jitter_ms: 0.5,
        rtt_ms,
        mos,
    }
}

#[tokio::test]
async fn records_with_and_without_quality_alternate_on_one_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TestDatabase::for_data_dir(dir.path());
    let store = Store::open(&db.url).await.expect("store");
    // Every shape in turn, several times: the pool hands the same idle connection back, so each
    // shape runs on a statement an earlier shape prepared.
    let shapes = [(None, None), (None, Some(4.404592027648)), (Some(12.5), Some(3.9)), (Some(80.25), None)];
    let mut written = Vec::new();
    for i in 0..12 {
        let (rtt, mos) = shapes[i % shapes.len()];
        let r = record(i, rtt, mos);
        store.insert_call_record(&r).await.unwrap_or_else(|e| panic!("record {i} ({rtt:?}, {mos:?}): {e}"));
        written.push(r);
    }
    let mut read = store.call_records_where(&CallFilter::default(), 100).await.expect("records");
    read.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(read, written);
}
