//! Errors as kubectl words them: `Error from server (NotFound): pods "web"
//! not found`, `The Pod "web" is invalid: ...`, `The connection to the server
//! ... was refused`, and `error: ...` for everything the client itself refuses.

use rkube_api::{ApiError, Reason};
use std::fmt;

/// A failure whose messages were printed already; the command exits 1.
#[derive(Debug)]
pub struct Reported;

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("errors were reported")
    }
}

impl std::error::Error for Reported {}

/// The command ran and wants this exit code (exec passes its command's on).
#[derive(Debug)]
pub struct ExitWith(pub u8);

impl fmt::Display for ExitWith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command terminated with exit code {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

/// A plain `error: ...` from the client, e.g. a bad argument.
pub fn usage(message: impl fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{message}")
}

const CONNECTION_PREFIX: &str = "the connection to the server ";

/// The message for a transport failure, if `e` is one.
fn connection_failure(e: &ApiError) -> Option<String> {
    if e.reason != Reason::ServiceUnavailable {
        return None;
    }
    let rest = e.message.strip_prefix(CONNECTION_PREFIX)?;
    let (server, detail) = rest.split_once(" failed (")?;
    let detail = detail.rsplit_once(") - ").map_or(detail, |(d, _)| d);
    let host = server.split_once("://").map_or(server, |(_, h)| h);
    let lower = detail.to_lowercase();
    if lower.contains("refused") || lower.contains("tcp connect error") {
        return Some(format!(
            "The connection to the server {host} was refused - did you specify the right host or port?"
        ));
    }
    Some(format!("Unable to connect to the server: {detail}"))
}

/// `The Pod "web" is invalid: spec.containers[0].image: Required value`, with
/// one `* cause` line each when there are several.
fn invalid(e: &ApiError) -> Option<String> {
    if e.reason != Reason::Invalid || e.causes.is_empty() {
        return None;
    }
    let head = if e.resource.is_empty() && e.name.is_empty() {
        "The request is invalid".to_string()
    } else {
        format!("The {} \"{}\" is invalid", e.resource, e.name)
    };
    let causes: Vec<String> = e
        .causes
        .iter()
        .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
        .collect();
    Some(match causes.as_slice() {
        [one] => format!("{head}: {one}"),
        many => format!("{head}: \n* {}", many.join("\n* ")),
    })
}

/// How kubectl reports an API error.
pub fn api_error(e: &ApiError) -> String {
    if let Some(m) = connection_failure(e).or_else(|| invalid(e)) {
        return m;
    }
    format!("Error from server ({}): {}", e.reason, e.message)
}

/// How kubectl reports an API error about one document of a file
/// (`error when creating "pod.yaml": ...`).
pub fn api_error_in(e: &ApiError, verb: &str, source: &str) -> String {
    if let Some(m) = connection_failure(e).or_else(|| invalid(e)) {
        return m;
    }
    format!("Error from server ({}): error when {verb} \"{source}\": {}", e.reason, e.message)
}

/// What to print for a failed command (None: printed already or nothing to say).
pub fn message(e: &anyhow::Error) -> Option<String> {
    if e.downcast_ref::<Reported>().is_some() || e.downcast_ref::<ExitWith>().is_some() {
        return None;
    }
    if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
        return None;
    }
    if let Some(api) = e.downcast_ref::<ApiError>()
        && e.chain().count() == 1
    {
        return Some(api_error(api));
    }
    Some(format!("error: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::Cause;

    #[test]
    fn server_errors_name_their_reason() {
        let e = ApiError::not_found("pods", "web");
        assert_eq!(api_error(&e), "Error from server (NotFound): pods \"web\" not found");
        let e = ApiError::already_exists("pods", "web");
        assert_eq!(
            api_error_in(&e, "creating", "pod.yaml"),
            "Error from server (AlreadyExists): error when creating \"pod.yaml\": pods \"web\" already exists"
        );
    }

    #[test]
    fn invalid_objects_list_their_causes() {
        let cause =
            |f: &str| Cause { kind: "FieldValueRequired".into(), field: f.into(), message: "Required value".into() };
        let one = ApiError::invalid("Pod", "web", vec![cause("spec.containers[0].image")]);
        assert_eq!(api_error(&one), "The Pod \"web\" is invalid: spec.containers[0].image: Required value");
        let two = ApiError::invalid("Pod", "web", vec![cause("a"), cause("b")]);
        assert_eq!(
            api_error_in(&two, "creating", "x.yaml"),
            "The Pod \"web\" is invalid: \n* a: Required value\n* b: Required value"
        );
    }

    #[test]
    fn refused_connections_read_like_kubectl() {
        let e = ApiError::unavailable(
            "the connection to the server http://127.0.0.1:1 failed (tcp connect error: Connection refused (os error 111)) - is rkube-apiserver running there, and is --server right?",
        );
        assert_eq!(
            api_error(&e),
            "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?"
        );
        let other = ApiError::unavailable("the connection to the server http://h:1 failed (dns error) - is it right?");
        assert_eq!(api_error(&other), "Unable to connect to the server: dns error");
    }

    #[test]
    fn client_errors_start_with_error() {
        let e = usage("the server doesn't have a resource type \"foo\"");
        assert_eq!(message(&e).as_deref(), Some("error: the server doesn't have a resource type \"foo\""));
        assert_eq!(message(&anyhow::Error::new(Reported)), None);
    }
}
