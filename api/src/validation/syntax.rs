//! String formats Kubernetes checks: DNS names, IANA service (port) names,
//! environment variable names, config keys, IP addresses, CIDRs,
//! percentages and relative paths. Each function returns the reasons a value
//! is malformed, in Kubernetes' words; an empty list means it is fine.

use super::{LABEL_MSG, SUBDOMAIN_MSG};
use std::net::IpAddr;

/// Port numbers outside 1..=65535.
pub const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn label_chars_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A DNS-1123 label (`my-name`): container, volume and port names.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !label_chars_ok(s) {
        errs.push(LABEL_MSG.into());
    }
    errs
}

/// A DNS-1123 subdomain (`example.com`): object references by name.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len(253));
    }
    if !s.split('.').all(label_chars_ok) {
        errs.push(SUBDOMAIN_MSG.into());
    }
    errs
}

/// An IANA service name (a named port): at most 15 lower-case alphanumerics
/// or '-', at least one letter, no "--", not starting or ending with '-'.
pub fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len(15));
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// An environment variable name: `[-._a-zA-Z][-._a-zA-Z0-9]*`, not `.` and
/// not starting with `..`.
pub fn env_var_name(s: &str) -> Vec<String> {
    let first_ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'));
    let rest_ok = s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    let mut errs = Vec::new();
    if !first_ok || !rest_ok {
        errs.push(
            "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', \
             and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', \
             regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
                .into(),
        );
    }
    errs.extend(dot_prefix(s));
    errs
}

/// A ConfigMap or Secret key: `[-._a-zA-Z0-9]+`, at most 253 characters,
/// not `.` or `..` and not starting with `..`.
pub fn config_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len(253));
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        errs.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                .into(),
        );
    }
    errs.extend(dot_prefix(s));
    errs
}

fn dot_prefix(s: &str) -> Option<String> {
    match s {
        "." => Some("must not be '.'".into()),
        ".." => Some("must not be '..'".into()),
        _ if s.starts_with("..") => Some("must not start with '..'".into()),
        _ => None,
    }
}

/// An IPv4 or IPv6 address.
pub fn ip(s: &str) -> Vec<String> {
    match s.parse::<IpAddr>() {
        Ok(_) => Vec::new(),
        Err(_) => vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()],
    }
}

/// An address range in CIDR notation (`10.244.0.0/24`, `2001:db8::/64`).
pub fn cidr(s: &str) -> Vec<String> {
    if s.parse::<crate::cidr::Cidr>().is_ok() {
        Vec::new()
    } else {
        vec!["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".into()]
    }
}

/// A percentage such as `25%`.
pub fn percent(s: &str) -> Vec<String> {
    let ok = s.strip_suffix('%').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Vec::new()
    } else {
        vec![
            "a valid percent string must be a numeric string followed by an ending '%' \
             (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
                .into(),
        ]
    }
}

/// A path that may not climb out of its directory with `..`.
pub fn no_backsteps(s: &str) -> Vec<String> {
    if s.split('/').any(|part| part == "..") { vec!["must not contain '..'".into()] } else { Vec::new() }
}

/// A relative path that stays inside its directory (volume items, subPath).
pub fn relative_path(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.starts_with('/') {
        errs.push("must be a relative path".into());
    }
    errs.extend(no_backsteps(s));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names_follow_iana_service_name_rules() {
        assert!(port_name("http").is_empty());
        assert!(port_name("web-8080").is_empty());
        assert_eq!(port_name("8080"), ["must contain at least one letter (a-z)"]);
        assert_eq!(port_name("a--b"), ["must not contain consecutive hyphens"]);
        assert_eq!(port_name("-ab"), ["must not begin or end with a hyphen"]);
        assert_eq!(port_name("a-very-long-port-name"), ["must be no more than 15 characters"]);
        assert_eq!(port_name("HTTP").len(), 2);
    }

    #[test]
    fn env_names_and_config_keys() {
        assert!(env_var_name("MY_VAR").is_empty());
        assert!(env_var_name("my.env-name").is_empty());
        assert_eq!(env_var_name("1ABC").len(), 1);
        assert_eq!(env_var_name("A=B").len(), 1);
        assert!(config_key("app.properties").is_empty());
        assert_eq!(config_key("..").len(), 1);
        assert_eq!(config_key("..x"), ["must not start with '..'"]);
        assert_eq!(config_key("a/b").len(), 1);
        assert_eq!(config_key(&"k".repeat(254)), ["must be no more than 253 characters"]);
    }

    #[test]
    fn addresses_ranges_percents_and_paths() {
        assert!(ip("10.0.0.1").is_empty() && ip("2001:db8::1").is_empty());
        assert_eq!(ip("10.0.0.256").len(), 1);
        assert!(cidr("10.244.0.0/24").is_empty() && cidr("2001:db8::/64").is_empty());
        assert_eq!(cidr("10.244.0.0/33").len(), 1);
        assert_eq!(cidr("10.244.0.0").len(), 1);
        assert!(percent("25%").is_empty());
        assert_eq!(percent("25").len(), 1);
        assert_eq!(percent("%").len(), 1);
        assert!(relative_path("a/b").is_empty());
        assert_eq!(relative_path("/etc"), ["must be a relative path"]);
        assert_eq!(relative_path("a/../../b"), ["must not contain '..'"]);
        assert!(relative_path("a..b").is_empty());
    }

    #[test]
    fn dns_names_report_length_and_charset_separately() {
        assert!(dns1123_label("web").is_empty());
        assert_eq!(dns1123_label("Web").len(), 1);
        assert_eq!(dns1123_label(&"a".repeat(64)), ["must be no more than 63 characters"]);
        assert!(dns1123_subdomain("a.b").is_empty());
        assert_eq!(dns1123_subdomain("a..b").len(), 1);
    }
}
