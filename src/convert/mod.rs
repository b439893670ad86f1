//! Wire ⇄ stored conversions, in one place: times, customer numbers, app data, index expiries.
//!
//! Owns how a protobuf value from the SDKs becomes what the store keeps and back, and the rules a
//! wire value must meet to be stored at all (what a customer number may be: [`number`]). Imports
//! only the wire types and the store's value types; every layer above may use it, nothing here
//! knows about commands, domains or notifications.

pub mod bounds;
pub mod number;

use crate::store::app_data::AppDataValue;
use crate::store::customers::StoredNumber;
use crate::wire::{data_map_value, CustomerNumber, DataMapValue};

/// Unix milliseconds as a protobuf Timestamp.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// A unix-ms time as UTC to the second, `2026-12-07T08:01:02Z`, for people (CLI, console).
pub fn utc(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => ms.to_string(),
    }
}

/// A protobuf Timestamp as unix milliseconds, saturating (callers bound the range they accept).
pub fn millis(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds.saturating_mul(1000).saturating_add(i64::from(ts.nanos.clamp(0, 999_999_999) / 1_000_000))
}

/// Expiry of a wire index: absent or 0 means never (the SDK sends 0 when none is given).
pub fn expiry(ts: &Option<prost_types::Timestamp>) -> Option<i64> {
    ts.as_ref().filter(|t| t.seconds > 0 || t.nanos > 0).map(millis)
}

pub fn wire_app_data(value: AppDataValue) -> DataMapValue {
    DataMapValue {
        value: Some(match value {
            AppDataValue::Text(t) => data_map_value::Value::StringVal(t),
            AppDataValue::Bytes(b) => data_map_value::Value::BytesVal(b),
        }),
    }
}

pub fn stored_app_data(value: &DataMapValue) -> Option<AppDataValue> {
    match value.value.as_ref()? {
        data_map_value::Value::StringVal(s) => Some(AppDataValue::Text(s.clone())),
        data_map_value::Value::BytesVal(b) => Some(AppDataValue::Bytes(b.clone())),
    }
}

/// Validates a wire customer number into its stored form (see [`number::check`]); the error is
/// worded for a reply's description.
pub fn stored_number(number: &CustomerNumber) -> Result<StoredNumber, String> {
    number::check(number.provider, &number.number)?;
    Ok(StoredNumber {
        provider: number.provider,
        number: number.number.clone(),
        partition: number.partition.clone().unwrap_or_default(),
    })
}

/// The wire form of a stored number.
pub fn wire_number(n: &StoredNumber) -> CustomerNumber {
    CustomerNumber {
        provider: n.provider,
        number: n.number.clone(),
        partition: (!n.partition.is_empty()).then(|| n.partition.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_millis_round_trip_including_before_1970() {
        for ms in [0, 1, 999, 1_600_000_000_123, -1, -1001] {
            assert_eq!(millis(&timestamp(ms)), ms, "{ms}");
        }
        assert_eq!(expiry(&Some(timestamp(0))), None, "0 means never");
        assert_eq!(expiry(&None), None);
        assert_eq!(expiry(&Some(timestamp(5_000))), Some(5_000));
    }
}
