//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`).
//!
//! [`parse`] reads the Kubernetes syntax into an exact decimal
//! [`Quantity`]; [`Quantity::millis`] and [`Quantity::value`] give the
//! rounded integer views controllers and the scheduler work with (rounded
//! away from zero, like Kubernetes' `MilliValue` and `Value`), and
//! [`format_cpu_millis`] / [`format_bytes`] write amounts back in the usual
//! units.

use std::cmp::Ordering;

/// What Kubernetes says about a malformed quantity.
pub const FORMAT_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// The most significant digits a quantity may carry (what fits an `i128`).
const MAX_DIGITS: usize = 38;

/// An exact quantity: `mantissa × 10^scale`, kept normalised (no trailing
/// zeros in the mantissa, scale 0 for zero) so equal values compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Quantity {
    mantissa: i128,
    scale: i32,
}

/// Parses a Kubernetes quantity: an optional sign, a decimal number (`1`,
/// `1.5`, `.5`, `1.`), then a suffix: decimal SI (`n u m k M G T P E`),
/// binary SI (`Ki Mi Gi Ti Pi Ei`) or an exponent (`e3`, `E-2`).
pub fn parse(s: &str) -> Result<Quantity, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("quantities must not be empty".into());
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(FORMAT_MESSAGE.into());
    }
    let (exp10, exp2) = suffix_exponents(suffix).ok_or_else(|| FORMAT_MESSAGE.to_string())?;

    // The significant digits, with the decimal point folded into the scale.
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| "quantity has too many digits".to_string())?;
    let trailing =
        i32::try_from(digits.len() - trimmed.len()).map_err(|_| "quantity has too many digits".to_string())?;
    if trimmed.len() > MAX_DIGITS {
        return Err(format!("quantity {s:?} has more than {MAX_DIGITS} significant digits"));
    }
    let mut mantissa: i128 =
        if trimmed.is_empty() { 0 } else { trimmed.parse().map_err(|_| FORMAT_MESSAGE.to_string())? };
    let too_large = || format!("quantity {s:?} is too large");
    let mut scale = trailing.checked_sub(frac_len).and_then(|v| v.checked_add(exp10)).ok_or_else(too_large)?;
    if exp2 > 0 {
        mantissa = mantissa.checked_mul(1i128 << exp2).ok_or_else(too_large)?;
    }
    if negative {
        mantissa = -mantissa;
    }
    // Keep the scale within a range where every later computation is safe.
    if mantissa != 0 && !(-1000..=1000).contains(&scale) {
        if scale > 0 {
            return Err(too_large());
        }
        scale = scale.max(-1000);
    }
    Ok(Quantity::new(mantissa, scale))
}

/// Parses the k8s-openapi quantity type.
pub fn parse_k8s(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> Result<Quantity, String> {
    parse(&q.0)
}

/// The decimal and binary exponents a suffix stands for.
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    let decimal = |e: i32| Some((e, 0));
    let binary = |e: u32| Some((0, e));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(exponent.parse().ok()?)
        }
    }
}

impl Quantity {
    fn new(mut mantissa: i128, mut scale: i32) -> Quantity {
        if mantissa == 0 {
            return Quantity::default();
        }
        while mantissa % 10 == 0 {
            mantissa /= 10;
            scale += 1;
        }
        Quantity { mantissa, scale }
    }

    /// The quantity `n` (a plain integer).
    pub fn from_int(n: i64) -> Quantity {
        Quantity::new(n.into(), 0)
    }

    /// The quantity `n/1000` (`250` → `250m`).
    pub fn from_millis(n: i64) -> Quantity {
        Quantity::new(n.into(), -3)
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The value times 1000, rounded away from zero (`100m` → 100,
    /// `1n` → 1); saturates at the bounds of `i128`.
    pub fn millis(&self) -> i128 {
        self.scaled(3)
    }

    /// The value rounded away from zero (`1.5` → 2, `100m` → 1); saturates
    /// at the bounds of `i128`.
    pub fn value(&self) -> i128 {
        self.scaled(0)
    }

    /// An approximation as a float, for ratios and percentages.
    pub fn as_f64(&self) -> f64 {
        // The mantissa has at most 38 digits, so the conversion is close.
        self.mantissa as f64 * 10f64.powi(self.scale)
    }

    /// `self × 10^shift`, rounded away from zero.
    fn scaled(&self, shift: i32) -> i128 {
        let exp = self.scale + shift;
        let saturated = if self.mantissa < 0 { i128::MIN } else { i128::MAX };
        if exp >= 0 {
            pow10(exp).and_then(|p| self.mantissa.checked_mul(p)).unwrap_or(saturated)
        } else {
            match pow10(-exp) {
                Some(p) => {
                    let q = self.mantissa / p;
                    if self.mantissa % p == 0 { q } else { q + self.mantissa.signum() }
                }
                // |mantissa| < 10^39 ≤ p: a non-zero fraction of one unit.
                None => self.mantissa.signum(),
            }
        }
    }
}

fn pow10(exp: i32) -> Option<i128> {
    10i128.checked_pow(u32::try_from(exp).ok()?)
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_sign = self.mantissa.signum().cmp(&other.mantissa.signum());
        if by_sign != Ordering::Equal || self.mantissa == 0 {
            return by_sign;
        }
        // Same sign, both non-zero: bring both to the smaller scale. A
        // multiplication that overflows means that side is larger in magnitude.
        let magnitude = |a: &Quantity, b: &Quantity| -> Ordering {
            let (a_abs, b_abs) = (a.mantissa.unsigned_abs(), b.mantissa.unsigned_abs());
            let shift = a.scale - b.scale;
            let widen = |m: u128, by: i32| {
                u32::try_from(by).ok().and_then(|e| 10u128.checked_pow(e)).and_then(|p| m.checked_mul(p))
            };
            if shift >= 0 {
                widen(a_abs, shift).map_or(Ordering::Greater, |a| a.cmp(&b_abs))
            } else {
                widen(b_abs, -shift).map_or(Ordering::Less, |b| a_abs.cmp(&b))
            }
        };
        let m = magnitude(self, other);
        if self.mantissa < 0 { m.reverse() } else { m }
    }
}

/// Writes CPU millicores the way Kubernetes does: whole cores as `2`, the
/// rest in millicores (`250m`, `1500m`).
pub fn format_cpu_millis(millis: i64) -> String {
    if millis % 1000 == 0 { (millis / 1000).to_string() } else { format!("{millis}m") }
}

/// Writes a byte count with the largest binary suffix that divides it
/// exactly (`134217728` → `128Mi`, `2048` → `2Ki`, `1536` → `1536`).
pub fn format_bytes(bytes: i64) -> String {
    const SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes == 0 {
        return "0".into();
    }
    let mut value = bytes;
    let mut suffix = "";
    for s in SUFFIXES {
        if value % 1024 != 0 {
            break;
        }
        value /= 1024;
        suffix = s;
    }
    format!("{value}{suffix}")
}

/// How Kubernetes writes a quantity back (`resource.Format`): in the suffix
/// family it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// `m`, `k`, `M`, `G`... (and plain numbers).
    #[default]
    DecimalSI,
    /// `Ki`, `Mi`, `Gi`...
    BinarySI,
    /// `e3`, `E-2`...
    DecimalExponent,
}

impl Format {
    /// The format of a quantity as written (`1Gi` is BinarySI, `1e3`
    /// DecimalExponent, the rest DecimalSI).
    pub fn of(s: &str) -> Format {
        let s = s.trim();
        let suffix = s.trim_start_matches(['+', '-']).trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        if suffix.ends_with('i') {
            Format::BinarySI
        } else if suffix.starts_with(['e', 'E']) {
            Format::DecimalExponent
        } else {
            Format::DecimalSI
        }
    }
}

impl Quantity {
    /// `self + other`, exact; None when it does not fit.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        let scale = self.scale.min(other.scale);
        let widen = |q: Quantity| pow10(q.scale - scale).and_then(|p| q.mantissa.checked_mul(p));
        Some(Quantity::new(widen(self)?.checked_add(widen(other)?)?, scale))
    }

    /// `self - other`, exact; None when it does not fit.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.checked_add(Quantity { mantissa: other.mantissa.checked_neg()?, scale: other.scale })
    }

    /// The quantity as Kubernetes writes it in `format` (`Quantity.String()`,
    /// canonical): `1500m`, `2`, `1k`, `128Mi`, `1536` (not a whole number
    /// of Ki), `1e3`. Binary amounts under 1024 or with a fraction are
    /// written as decimal, as Kubernetes does.
    pub fn to_canonical(&self, format: Format) -> String {
        if self.is_zero() {
            return "0".into();
        }
        if format == Format::BinarySI
            && self.scale >= 0
            && let Some(mut value) = pow10(self.scale).and_then(|p| self.mantissa.checked_mul(p))
            && value.unsigned_abs() >= 1024
        {
            const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut power = 0;
            while power < 6 && value % 1024 == 0 {
                value /= 1024;
                power += 1;
            }
            return format!("{value}{}", SUFFIXES[power]);
        }
        // A multiple of 3 for the exponent, the mantissa made whole.
        let exponent = self.scale - self.scale.rem_euclid(3);
        let mantissa = pow10(self.scale - exponent).and_then(|p| self.mantissa.checked_mul(p)).unwrap_or(self.mantissa);
        let exponent = if mantissa == self.mantissa { self.scale } else { exponent };
        let suffix = match (format, exponent) {
            (_, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{mantissa}{suffix}")
    }
}

/// Parses a quantity and writes it back the way Kubernetes does (`1000m`
/// → `1`, `1024Mi` → `1Gi`); a malformed one comes back as written.
pub fn canonical(s: &str) -> String {
    parse(s).map_or_else(|_| s.to_string(), |q| q.to_canonical(Format::of(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn decimal_and_binary_suffixes_scale_the_number() {
        assert_eq!(q("100m").millis(), 100);
        assert_eq!(q("1").millis(), 1000);
        assert_eq!(q("2k").value(), 2000);
        assert_eq!(q("1M").value(), 1_000_000);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("3T").value(), 3_000_000_000_000);
        assert_eq!(q("1P").value(), 10i128.pow(15));
        assert_eq!(q("1E").value(), 10i128.pow(18));
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("128Mi").value(), 134_217_728);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1Ti").value(), 1 << 40);
        assert_eq!(q("1Pi").value(), 1 << 50);
        assert_eq!(q("2Ei").value(), 1 << 61);
        assert_eq!(q("500u").millis(), 1);
        assert_eq!(q("5n").millis(), 1);
    }

    #[test]
    fn decimals_signs_and_exponents_are_exact() {
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("0.5").millis(), 500);
        assert_eq!(q(".5").millis(), 500);
        assert_eq!(q("1.").millis(), 1000);
        assert_eq!(q("+2").value(), 2);
        assert_eq!(q("-2").value(), -2);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E3").value(), 1000);
        assert_eq!(q("15e-1").millis(), 1500);
        assert_eq!(q("1e+2").value(), 100);
        assert_eq!(q("0.000001").millis(), 1);
        assert_eq!(q("007").value(), 7);
        assert_eq!(q("0").millis(), 0);
        assert!(q("-0").is_zero());
    }

    #[test]
    fn rounding_goes_away_from_zero_like_kubernetes() {
        assert_eq!(q("1.1").value(), 2);
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("-100m").value(), -1);
        assert_eq!(q("-1.5").value(), -2);
        assert_eq!(q("1.0001").millis(), 1001);
        assert_eq!(q("1e-30").millis(), 1);
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        assert_eq!(q("1e100").millis(), i128::MAX);
        assert_eq!(q("-1e100").value(), i128::MIN);
        assert!(parse("1e5000").is_err());
    }

    #[test]
    fn malformed_quantities_are_refused_with_the_kubernetes_message() {
        for bad in ["", "abc", "1.2.3", "1K", "1Kb", "1e", "1e+", "m", "1 Gi", "--1", "1mi", "."] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(parse("12x").expect_err("bad suffix"), FORMAT_MESSAGE);
    }

    #[test]
    fn comparison_is_exact_across_units() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("1") < q("1001m"));
        assert!(q("2") > q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("1m"));
        assert!(q("-2") < q("-1"));
        assert!(q("0") < q("1n"));
        assert!(q("1e30") > q("999999999999999999999999999999e0"));
        assert_eq!(q("1").cmp(&q("1.0")), Ordering::Equal);
    }

    #[test]
    fn parses_the_k8s_openapi_type() {
        let k = k8s_openapi::apimachinery::pkg::api::resource::Quantity("250m".into());
        assert_eq!(parse_k8s(&k).expect("parses").millis(), 250);
        assert_eq!(Quantity::from_millis(250), q("0.25"));
        assert_eq!(Quantity::from_int(3), q("3"));
        assert!((q("1.5").as_f64() - 1.5).abs() < 1e-12);
    }

    #[test]
    fn formats_cpu_and_memory_in_kubernetes_units() {
        assert_eq!(format_cpu_millis(250), "250m");
        assert_eq!(format_cpu_millis(1000), "1");
        assert_eq!(format_cpu_millis(1500), "1500m");
        assert_eq!(format_cpu_millis(0), "0");
        assert_eq!(format_bytes(134_217_728), "128Mi");
        assert_eq!(format_bytes(1536), "1536");
        assert_eq!(format_bytes(2048), "2Ki");
        assert_eq!(format_bytes(1 << 30), "1Gi");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_bytes(0), "0");
    }
    #[test]
    fn sums_and_canonical_forms_follow_kubernetes() {
        assert_eq!(q("500m").checked_add(q("1")), Some(q("1500m")));
        assert_eq!(q("1Gi").checked_sub(q("512Mi")), Some(q("512Mi")));
        assert_eq!(q("1500m").to_canonical(Format::DecimalSI), "1500m");
        assert_eq!(q("2000m").to_canonical(Format::DecimalSI), "2");
        assert_eq!(q("1000").to_canonical(Format::DecimalSI), "1k");
        assert_eq!(q("1500").to_canonical(Format::DecimalSI), "1500");
        assert_eq!(q("128Mi").to_canonical(Format::BinarySI), "128Mi");
        assert_eq!(q("1536").to_canonical(Format::BinarySI), "1536");
        assert_eq!(q("512").to_canonical(Format::BinarySI), "512");
        assert_eq!(q("1e3").to_canonical(Format::DecimalExponent), "1e3");
        assert_eq!(q("0").to_canonical(Format::BinarySI), "0");
        assert_eq!(
            (Format::of("1Gi"), Format::of("2e3"), Format::of("100m")),
            (Format::BinarySI, Format::DecimalExponent, Format::DecimalSI)
        );
        assert_eq!(canonical("1024Mi"), "1Gi");
        assert_eq!(canonical("1000m"), "1");
        assert_eq!(canonical("0.5"), "500m");
    }
}
