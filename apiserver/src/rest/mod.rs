//! The Kubernetes REST API (what kubectl and client-go speak), on the same
//! registry as gRPC.

pub mod exec;
pub mod logs;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rkube_api::ApiError;

/// An error as Kubernetes answers it: a `metav1.Status` with the matching
/// HTTP code.
pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, e.to_status_json()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
