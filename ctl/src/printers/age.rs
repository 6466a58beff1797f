//! Times as kubectl shows them in `describe`: ages (`5s`, `3m2s`, `2d3h`,
//! written by [`rkube_api::table::human_duration`]) and RFC 1123 dates.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use rkube_api::table::human_duration;

/// Seconds since the Unix epoch, now.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The age of `ts` at `now` (seconds since the epoch); `<unknown>` without one.
pub fn age_at(ts: Option<&Timestamp>, now: i64) -> String {
    match ts {
        Some(ts) => human_duration(now - ts.as_second()),
        None => "<unknown>".into(),
    }
}

/// The age of a metadata time, now.
pub fn age(ts: Option<&Time>) -> String {
    age_at(ts.map(|t| &t.0), now_seconds())
}

/// The age of a micro time (events' `eventTime`), now.
pub fn age_micro(ts: Option<&MicroTime>) -> String {
    age_at(ts.map(|t| &t.0), now_seconds())
}

/// The span between two times (a Job's duration).
pub fn between(start: &Time, end: &Time) -> String {
    human_duration(end.0.as_second() - start.0.as_second())
}

/// `Mon, 02 Jan 2006 15:04:05 +0000` (Go's RFC1123Z), in UTC.
pub fn rfc1123(ts: &Time) -> String {
    ts.0.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_measured_from_the_timestamp() {
        let created = Timestamp::from_second(1_000).expect("valid");
        assert_eq!(age_at(Some(&created), 1_005), "5s");
        assert_eq!(age_at(None, 1_005), "<unknown>");
    }

    #[test]
    fn describe_dates_are_rfc1123z() {
        let t = Time(Timestamp::from_second(1_491_959_698).expect("valid"));
        assert_eq!(rfc1123(&t), "Wed, 12 Apr 2017 01:14:58 +0000");
    }
}
