//! Durations as kubectl and kube-apiserver write them: `5s`, `3m2s`, `2d3h`
//! (`k8s.io/apimachinery/pkg/util/duration.HumanDuration`).

use jiff::Timestamp;

/// A duration in kubectl's compact form: exact seconds up to two minutes,
/// then ever coarser units; `<invalid>` for a time more than a second ahead.
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

/// The time from `since` to `until`, in whole seconds (rounded toward zero, as Go's `int64(d.Seconds())`).
pub(super) fn seconds_between(since: Timestamp, until: Timestamp) -> i64 {
    until.duration_since(since).as_secs()
}

/// How long before `now` the time `ts` was (`translateTimestampSince`);
/// `<unknown>` without one.
pub fn age(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_duration(seconds_between(ts, now)),
        None => "<unknown>".into(),
    }
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
        let now = Timestamp::from_second(1_005).expect("valid");
        assert_eq!(age(Some(created), now), "5s");
        assert_eq!(age(None, now), "<unknown>");
        let just_before = Timestamp::new(1_004, 999_000_000).expect("valid");
        assert_eq!(age(Some(created), just_before), "4s", "whole seconds, rounded down");
    }
}
