//! Int-or-percent values (`maxSurge: 25%`, `maxUnavailable: 1`) resolved
//! against a total, as Kubernetes' `intstr.GetScaledValueFromIntOrPercent`.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `value` as a count out of `total`: a number as is, `N%` as N% of
/// `total`, rounded up or down. A malformed percentage counts as 0 (the
/// apiserver refuses those on write).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: i64 = s.strip_suffix('%').and_then(|n| n.trim().parse().ok()).unwrap_or(0);
            let scaled = percent * i64::from(total);
            let v = if round_up { (scaled + 99).div_euclid(100) } else { scaled.div_euclid(100) };
            i32::try_from(v).unwrap_or(i32::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_and_percentages_scale_with_rounding() {
        assert_eq!(scaled_value(&IntOrString::Int(3), 10, true), 3);
        assert_eq!(scaled_value(&IntOrString::String("25%".into()), 10, true), 3);
        assert_eq!(scaled_value(&IntOrString::String("25%".into()), 10, false), 2);
        assert_eq!(scaled_value(&IntOrString::String("100%".into()), 7, false), 7);
        assert_eq!(scaled_value(&IntOrString::String("x%".into()), 7, true), 0);
    }
}
