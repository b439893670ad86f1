//! Bounds on times and intervals from the wire: a protobuf Timestamp or Duration can say 2^63
//! seconds, which overflows milliseconds and once reached the store as a REAL in a BIGINT column.
//! Every time a command stores is checked here first (or, for replayed history, clamped here).

/// The latest time accepted, as said in refusals.
pub const LATEST: &str = "the year 2200";
/// 2200-01-01T00:00:00Z in unix milliseconds.
pub const LATEST_MS: i64 = 7_258_118_400_000;
/// The longest repeat interval of a reminder: ten years.
pub const MAX_INTERVAL_SECS: i64 = 10 * 365 * 24 * 3600;

/// `ts` in unix milliseconds, if it lies between 1970 and [`LATEST`].
pub fn time(what: &str, ts: &prost_types::Timestamp) -> Result<i64, String> {
    if ts.seconds < 0 {
        return Err(format!("{what} is before 1970"));
    }
    let ms = crate::convert::millis(ts);
    if ms > LATEST_MS {
        return Err(format!("{what} is after {LATEST}"));
    }
    Ok(ms)
}

/// A replayed time in unix ms (none: now); between 1970 and [`LATEST`], else clamped to them, since
/// history imported from elsewhere is kept rather than refused for one odd timestamp.
pub fn replayed(ts: &Option<prost_types::Timestamp>) -> i64 {
    ts.as_ref().map(|t| crate::convert::millis(t).clamp(0, LATEST_MS)).unwrap_or_else(crate::store::now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_outside_1970_to_2200_are_refused() {
        let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        assert_eq!(time("t", &at(1_600_000_000)), Ok(1_600_000_000_000));
        assert!(time("t", &at(-1)).unwrap_err().contains("before 1970"));
        assert!(time("t", &at(9_300_000_000_000_000)).unwrap_err().contains("after the year 2200"));
        assert!(time("t", &at(i64::MAX)).is_err());
    }
}
