//! API errors as Kubernetes reports them: a `metav1.Status` with an HTTP code,
//! a machine-readable reason, a message and, for invalid objects, field causes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use std::fmt;

/// Why a request failed, in Kubernetes' vocabulary (`metav1.StatusReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 400: the request itself is malformed.
    BadRequest,
    /// 401: the request carries no credentials the server accepts.
    Unauthorized,
    /// 403: the request is not allowed (admission, lifecycle).
    Forbidden,
    /// 404: the object does not exist.
    NotFound,
    /// 405: the operation is not supported on this resource.
    MethodNotAllowed,
    /// 409: the object already exists.
    AlreadyExists,
    /// 409: the object changed since the client read it.
    Conflict,
    /// 410: the requested resourceVersion is no longer available.
    Expired,
    /// 413: the request is too large.
    RequestEntityTooLarge,
    /// 415: the body's content type is not one the server reads.
    UnsupportedMediaType,
    /// 422: the object failed validation.
    Invalid,
    /// 429: try again later.
    TooManyRequests,
    /// 500: something went wrong inside the server.
    InternalError,
    /// 503: a dependency (etcd) is unavailable.
    ServiceUnavailable,
    /// 504: the request did not finish in time.
    Timeout,
}

impl Reason {
    /// The HTTP status code Kubernetes uses for this reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Expired => 410,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
            Reason::Timeout => 504,
        }
    }

    /// The reason's wire name (`metav1.Status.reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Timeout => "Timeout",
        }
    }

    /// Parses a wire name; unknown names read as `InternalError`.
    pub fn parse(s: &str) -> Reason {
        match s {
            "BadRequest" => Reason::BadRequest,
            "Unauthorized" => Reason::Unauthorized,
            "Forbidden" => Reason::Forbidden,
            "NotFound" => Reason::NotFound,
            "MethodNotAllowed" => Reason::MethodNotAllowed,
            "AlreadyExists" => Reason::AlreadyExists,
            "Conflict" => Reason::Conflict,
            "Expired" | "Gone" => Reason::Expired,
            "RequestEntityTooLarge" => Reason::RequestEntityTooLarge,
            "UnsupportedMediaType" => Reason::UnsupportedMediaType,
            "Invalid" => Reason::Invalid,
            "TooManyRequests" => Reason::TooManyRequests,
            "ServiceUnavailable" => Reason::ServiceUnavailable,
            "Timeout" => Reason::Timeout,
            _ => Reason::InternalError,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field-level cause of an `Invalid` error (`metav1.StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueTooLong`, `FieldValueForbidden`, ...
    pub kind: String,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// What is wrong, as a sentence fragment (`Required value`).
    pub message: String,
}

/// A failed API request, shaped like Kubernetes' `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Machine-readable reason.
    pub reason: Reason,
    /// Human-readable message, e.g. `pods "web" not found`.
    pub message: String,
    /// The resource ("pods") the error is about, if any.
    pub resource: String,
    /// The API group of that resource ("" for core).
    pub group: String,
    /// The object's name, if any.
    pub name: String,
    /// Field causes (Invalid) or other details.
    pub causes: Vec<Cause>,
}

/// Result with an [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// An error with a reason and message and no details.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            resource: String::new(),
            group: String::new(),
            name: String::new(),
            causes: Vec::new(),
        }
    }

    fn about(mut self, resource: &str, name: &str) -> Self {
        self.resource = resource.to_string();
        self.name = name.to_string();
        self
    }

    /// `pods "web" not found`.
    pub fn not_found(resource: &str, name: &str) -> Self {
        ApiError::new(Reason::NotFound, format!("{resource} \"{name}\" not found")).about(resource, name)
    }

    /// `pods "web" already exists`.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        ApiError::new(Reason::AlreadyExists, format!("{resource} \"{name}\" already exists")).about(resource, name)
    }

    /// An optimistic-concurrency failure on update or delete.
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        ApiError::new(Reason::Conflict, format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"))
            .about(resource, name)
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(Reason::BadRequest, message)
    }

    /// A request that is refused by policy (a core-group resource, or one
    /// whose group does not matter to the message).
    pub fn forbidden(resource: &str, name: &str, why: &str) -> Self {
        ApiError::forbidden_in_group("", resource, name, why)
    }

    /// Kubernetes' `NewForbidden`: `deployments.apps "web" is forbidden: why`,
    /// `pods is forbidden: why` without a name, `forbidden: why` without a
    /// resource (a non-resource path); details carry group, kind (the
    /// resource) and name.
    pub fn forbidden_in_group(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") };
        let message = match (resource.is_empty(), name.is_empty()) {
            (true, _) => format!("forbidden: {why}"),
            (false, true) => format!("{qualified} is forbidden: {why}"),
            (false, false) => format!("{qualified} \"{name}\" is forbidden: {why}"),
        };
        let mut e = ApiError::new(Reason::Forbidden, message).about(resource, name);
        e.group = group.to_string();
        e
    }

    /// A request without acceptable credentials (kube-apiserver's message).
    pub fn unauthorized() -> Self {
        ApiError::new(Reason::Unauthorized, "Unauthorized")
    }

    /// The requested resourceVersion is gone from history.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(Reason::Expired, message)
    }

    /// A dependency of the server (etcd) cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(Reason::ServiceUnavailable, message)
    }

    /// An unexpected failure inside the server.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(Reason::InternalError, format!("Internal error occurred: {}", message.into()))
    }

    /// `Kind "name" is invalid: field: message, field: message`.
    pub fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
            .collect();
        let what = if name.is_empty() { kind.to_string() } else { format!("{kind} \"{name}\"") };
        let message = match list.len() {
            0 => format!("{what} is invalid"),
            1 => format!("{what} is invalid: {}", list[0]),
            _ => format!("{what} is invalid: [{}]", list.join(", ")),
        };
        let mut e = ApiError::new(Reason::Invalid, message).about(kind, name);
        e.causes = causes;
        e
    }

    /// The HTTP code of this error.
    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// Converts to the Kubernetes wire form.
    pub fn to_status(&self) -> Status {
        let has_details = !self.name.is_empty() || !self.resource.is_empty() || !self.causes.is_empty();
        Status {
            status: Some("Failure".into()),
            message: Some(self.message.clone()),
            reason: Some(self.reason.as_str().into()),
            code: Some(self.code().into()),
            details: has_details.then(|| StatusDetails {
                name: (!self.name.is_empty()).then(|| self.name.clone()),
                group: (!self.group.is_empty()).then(|| self.group.clone()),
                kind: (!self.resource.is_empty()).then(|| self.resource.clone()),
                causes: (!self.causes.is_empty()).then(|| {
                    self.causes
                        .iter()
                        .map(|c| StatusCause {
                            reason: Some(c.kind.clone()),
                            message: Some(c.message.clone()),
                            field: (!c.field.is_empty()).then(|| c.field.clone()),
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Reads the Kubernetes wire form back.
    pub fn from_status(status: &Status) -> Self {
        let details = status.details.clone().unwrap_or_default();
        ApiError {
            reason: Reason::parse(status.reason.as_deref().unwrap_or("")),
            message: status.message.clone().unwrap_or_default(),
            resource: details.kind.unwrap_or_default(),
            group: details.group.unwrap_or_default(),
            name: details.name.unwrap_or_default(),
            causes: details
                .causes
                .unwrap_or_default()
                .into_iter()
                .map(|c| Cause {
                    kind: c.reason.unwrap_or_default(),
                    field: c.field.unwrap_or_default(),
                    message: c.message.unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// The Kubernetes `Status` as JSON, with its apiVersion and kind.
    pub fn to_status_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self.to_status()).expect("Status always serializes");
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), "v1".into());
            m.insert("kind".into(), "Status".into());
        }
        serde_json::to_vec(&v).expect("Value always serializes")
    }

    /// Reads a Kubernetes `Status` JSON; `None` if it is not one.
    pub fn from_status_json(bytes: &[u8]) -> Option<Self> {
        let status: Status = serde_json::from_slice(bytes).ok()?;
        status.reason.as_ref()?;
        Some(ApiError::from_status(&status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_cause_like_kubernetes() {
        let e = ApiError::invalid(
            "Pod",
            "web",
            vec![
                Cause {
                    kind: "FieldValueRequired".into(),
                    field: "spec.containers[0].image".into(),
                    message: "Required value".into(),
                },
                Cause {
                    kind: "FieldValueInvalid".into(),
                    field: "metadata.name".into(),
                    message: "Invalid value: \"A\"".into(),
                },
            ],
        );
        assert_eq!(
            e.message,
            "Pod \"web\" is invalid: [spec.containers[0].image: Required value, metadata.name: Invalid value: \"A\"]"
        );
        assert_eq!(e.code(), 422);
    }

    #[test]
    fn forbidden_names_the_group_qualified_resource() {
        let e = ApiError::forbidden_in_group("apps", "deployments", "web", "User \"x\" cannot get it");
        assert_eq!(e.message, "deployments.apps \"web\" is forbidden: User \"x\" cannot get it");
        let status = e.to_status();
        assert_eq!(status.code, Some(403));
        assert_eq!(status.reason.as_deref(), Some("Forbidden"));
        let details = status.details.expect("details");
        assert_eq!(
            (details.group.as_deref(), details.kind.as_deref(), details.name.as_deref()),
            (Some("apps"), Some("deployments"), Some("web"))
        );
        assert_eq!(ApiError::forbidden("pods", "", "no").message, "pods is forbidden: no");
        assert_eq!(
            ApiError::forbidden("", "", "User \"x\" cannot get path \"/metrics\"").message,
            "forbidden: User \"x\" cannot get path \"/metrics\""
        );
    }

    #[test]
    fn status_json_round_trips() {
        let e = ApiError::invalid(
            "Pod",
            "web",
            vec![Cause {
                kind: "FieldValueRequired".into(),
                field: "spec.containers".into(),
                message: "Required value".into(),
            }],
        );
        let back = ApiError::from_status_json(&e.to_status_json()).expect("a Status");
        assert_eq!(back, e);
        let nf = ApiError::not_found("pods", "web");
        assert_eq!(ApiError::from_status_json(&nf.to_status_json()).expect("a Status"), nf);
    }
}

#[cfg(feature = "grpc")]
mod grpc {
    use super::{ApiError, Reason};
    use tonic::{Code, Status};

    impl Reason {
        /// The gRPC code that carries this reason.
        pub fn grpc_code(self) -> Code {
            match self {
                Reason::BadRequest | Reason::Invalid | Reason::RequestEntityTooLarge | Reason::UnsupportedMediaType => {
                    Code::InvalidArgument
                }
                Reason::Unauthorized => Code::Unauthenticated,
                Reason::Forbidden => Code::PermissionDenied,
                Reason::NotFound => Code::NotFound,
                Reason::MethodNotAllowed => Code::Unimplemented,
                Reason::AlreadyExists => Code::AlreadyExists,
                Reason::Conflict => Code::Aborted,
                Reason::Expired => Code::OutOfRange,
                Reason::TooManyRequests => Code::ResourceExhausted,
                Reason::InternalError => Code::Internal,
                Reason::ServiceUnavailable => Code::Unavailable,
                Reason::Timeout => Code::DeadlineExceeded,
            }
        }
    }

    impl From<ApiError> for Status {
        fn from(e: ApiError) -> Status {
            Status::with_details(e.reason.grpc_code(), e.message.clone(), e.to_status_json().into())
        }
    }

    impl From<Status> for ApiError {
        fn from(s: Status) -> ApiError {
            if let Some(e) = ApiError::from_status_json(s.details()) {
                return e;
            }
            let reason = match s.code() {
                Code::NotFound => Reason::NotFound,
                Code::AlreadyExists => Reason::AlreadyExists,
                Code::Aborted => Reason::Conflict,
                Code::InvalidArgument => Reason::BadRequest,
                Code::PermissionDenied => Reason::Forbidden,
                Code::Unauthenticated => Reason::Unauthorized,
                Code::OutOfRange => Reason::Expired,
                Code::Unavailable => Reason::ServiceUnavailable,
                Code::DeadlineExceeded => Reason::Timeout,
                Code::Unimplemented => Reason::MethodNotAllowed,
                Code::ResourceExhausted => Reason::TooManyRequests,
                _ => Reason::InternalError,
            };
            let message = match (reason, s.message()) {
                (Reason::ServiceUnavailable, m) => format!("the server is unavailable: {m}"),
                (_, m) => m.to_string(),
            };
            ApiError::new(reason, message)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn errors_survive_a_trip_through_grpc() {
            let e = ApiError::conflict("pods", "web", "the object has been modified");
            let status: Status = e.clone().into();
            assert_eq!(status.code(), Code::Aborted);
            assert_eq!(ApiError::from(status), e);
            let bare = ApiError::from(Status::unavailable("connection refused"));
            assert_eq!(bare.reason, Reason::ServiceUnavailable);
        }
    }
}
