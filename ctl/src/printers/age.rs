//! Times as kubectl shows them: ages (`5s`, `3m2s`, `2d3h`) in tables and
//! RFC 1123 dates in `describe`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

/// Seconds since the Unix epoch, now.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A duration in kubectl's compact form (`duration.HumanDuration`): exact
/// seconds up to two minutes, then ever coarser units.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        let years = hours / 24 / 365;
        return if days == 0 { format!("{years}y") } else { format!("{years}y{days}d") };
    }
    format!("{}y", hours / 24 / 365)
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
    fn durations_read_like_kubectl() {
        for (secs, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (4 * 3600, "4h"),
            (4 * 3600 + 25 * 60, "4h25m"),
            (8 * 3600 + 59 * 60, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (3 * 86400, "3d"),
            (45 * 86400 + 7 * 3600, "45d"),
            (800 * 86400, "2y70d"),
            (3650 * 86400, "10y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

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
