//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: a container's log, relayed
//! from the kubelet of the pod's node as a streamed `text/plain` body.
//!
//! The query parameters are kube-apiserver's `PodLogOptions`: `container`,
//! `follow`, `previous`, `timestamps`, `tailLines`, `sinceSeconds`,
//! `sinceTime` and `limitBytes`; others (`pretty`,
//! `insecureSkipTLSVerifyBackend`, `stream`) are ignored. A value that does
//! not parse is a 400 naming the parameter; a value out of range is a 422
//! `PodLogOptions "web" is invalid: tailLines: …`, as kube-apiserver answers.
//! Everything that can fail before the first byte (the pod, its node, the
//! container, the kubelet) is answered as a `metav1.Status`; after that the
//! body streams each kubelet chunk as it arrives, so `kubectl logs -f` shows
//! lines live. A kubelet failure in mid-stream aborts the response, so the
//! client sees a broken stream rather than a log that merely stopped.

use super::error_response;
use super::query::Query;
use crate::node_proxy::{NodeProxy, kubelet_error};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use rkube_api::{ApiError, Cause, Result};
use rkube_proto::v1 as pb;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::debug;

/// Streams the log of a container of pod `namespace/pod`, as
/// `kubectl logs` asks for it; `query` is the raw query string.
pub async fn logs(proxy: Arc<NodeProxy>, namespace: String, pod: String, query: &str) -> Response {
    let options = match LogOptions::parse(&Query::parse(query), &pod, SystemTime::now()) {
        Ok(o) => o,
        Err(e) => return error_response(&e),
    };
    let target = match proxy.target(&namespace, &pod, &options.container).await {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let mut kubelet = target.kubelet;
    let request = options.request(&namespace, &pod, &target.container);
    let chunks = match kubelet.logs(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => return error_response(&kubelet_error(s)),
    };
    debug!(pod = %format!("{namespace}/{pod}"), container = %target.container, follow = options.follow, "streaming logs");
    let mut response = Response::new(Body::from_stream(body_chunks(chunks, options.limit_bytes)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// What a log request asks for (`PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// The container; empty means the pod's only container.
    pub container: String,
    /// Keep streaming new lines until the container stops or the client leaves.
    pub follow: bool,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds (`sinceTime` is turned into
    /// this too, counted from when the request arrived).
    pub since_seconds: Option<i64>,
    /// Stop after this many bytes of log.
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// Reads the options of a request for pod `pod`'s log, arriving at `now`.
    pub fn parse(params: &Query, pod: &str, now: SystemTime) -> Result<LogOptions> {
        let tail_lines = params.int("tailLines")?;
        let limit_bytes = params.int("limitBytes")?;
        let since_seconds = params.int("sinceSeconds")?;
        let since_time = match params.get("sinceTime") {
            "" => None,
            v => Some(v.parse::<Timestamp>().map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter sinceTime: invalid time \"{v}\": use RFC 3339, e.g. 2006-01-02T15:04:05Z"
                ))
            })?),
        };
        let mut causes = Vec::new();
        let invalid = |field: &str, value: i64, why: &str| Cause {
            kind: "FieldValueInvalid".into(),
            field: field.into(),
            message: format!("Invalid value: {value}: {why}"),
        };
        if let Some(n) = tail_lines.filter(|n| *n < 0) {
            causes.push(invalid("tailLines", n, "must be greater than or equal to 0"));
        }
        if let Some(n) = limit_bytes.filter(|n| *n < 1) {
            causes.push(invalid("limitBytes", n, "must be greater than 0"));
        }
        match (since_seconds, since_time) {
            (Some(_), Some(_)) => causes.push(Cause {
                kind: "FieldValueForbidden".into(),
                field: String::new(),
                message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            }),
            (Some(n), None) if n < 1 => causes.push(invalid("sinceSeconds", n, "must be greater than 0")),
            _ => {}
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("PodLogOptions", pod, causes));
        }
        let since_seconds = since_seconds.or_else(|| since_time.map(|t| seconds_since(t, now)));
        Ok(LogOptions {
            container: params.get("container").to_string(),
            follow: params.flag("follow")?,
            previous: params.flag("previous")?,
            timestamps: params.flag("timestamps")?,
            tail_lines,
            since_seconds,
            limit_bytes: limit_bytes.map(|n| n.unsigned_abs()),
        })
    }

    /// The kubelet request for these options and the resolved `container`.
    pub fn request(&self, namespace: &str, pod: &str, container: &str) -> pb::LogsRequest {
        pb::LogsRequest {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
            follow: self.follow,
            tail_lines: self.tail_lines,
            previous: self.previous,
            timestamps: self.timestamps,
            since_seconds: self.since_seconds,
        }
    }
}

/// Whole seconds from `since` to `now`, rounded up and at least 1 (a time in
/// the future asks for what comes from now on).
fn seconds_since(since: Timestamp, now: SystemTime) -> i64 {
    let now = i128::try_from(now.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(i128::MAX);
    let elapsed = now.saturating_sub(since.as_nanosecond());
    let seconds = elapsed.div_euclid(1_000_000_000) + i128::from(elapsed.rem_euclid(1_000_000_000) > 0);
    i64::try_from(seconds.max(1)).unwrap_or(i64::MAX)
}

/// The body of a log response: the kubelet's chunks as they come, cut off
/// after `limit` bytes. A kubelet error ends the stream with that error.
fn body_chunks<S>(chunks: S, limit: Option<u64>) -> impl Stream<Item = Result<Bytes, tonic::Status>> + Send + 'static
where
    S: Stream<Item = Result<pb::LogChunk, tonic::Status>> + Send + Unpin + 'static,
{
    let remaining = limit.unwrap_or(u64::MAX);
    futures::stream::unfold((chunks, remaining), |(mut chunks, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        loop {
            match chunks.next().await? {
                Ok(chunk) if chunk.data.is_empty() => continue,
                Ok(chunk) => {
                    let mut data = chunk.data;
                    if data.len() as u64 > remaining {
                        data.truncate(usize::try_from(remaining).expect("less than a length is a usize"));
                    }
                    let left = remaining - data.len() as u64;
                    return Some((Ok(data), (chunks, left)));
                }
                Err(s) => {
                    debug!(error = %s.message(), "the kubelet's log stream failed");
                    return Some((Err(s), (chunks, 0)));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::Reason;
    use std::time::Duration;

    fn parse(query: &str) -> Result<LogOptions> {
        LogOptions::parse(&Query::parse(query), "web", SystemTime::now())
    }

    #[test]
    fn reads_kubectls_follow_query() {
        let o = parse("container=app&follow=true&tailLines=10&timestamps=true").unwrap();
        assert_eq!(
            o,
            LogOptions {
                container: "app".into(),
                follow: true,
                timestamps: true,
                tail_lines: Some(10),
                ..Default::default()
            }
        );
        let request = o.request("default", "web", "app");
        assert_eq!((request.follow, request.tail_lines, request.container.as_str()), (true, Some(10), "app"));
    }

    #[test]
    fn reads_the_python_clients_capitalised_booleans() {
        let o = parse("follow=True&previous=1&timestamps=False&sinceSeconds=60&limitBytes=5").unwrap();
        assert!(o.follow && o.previous && !o.timestamps);
        assert_eq!((o.since_seconds, o.limit_bytes), (Some(60), Some(5)));
    }

    #[test]
    fn a_value_that_does_not_parse_is_a_bad_request_naming_the_parameter() {
        let e = parse("follow=yes").unwrap_err();
        assert_eq!(e.reason, Reason::BadRequest);
        assert!(e.message.contains("follow"), "{}", e.message);
        let e = parse("tailLines=ten").unwrap_err();
        assert_eq!(e.reason, Reason::BadRequest);
        assert!(e.message.contains("tailLines"), "{}", e.message);
        let e = parse("sinceTime=yesterday").unwrap_err();
        assert!(e.message.contains("sinceTime"), "{}", e.message);
    }

    #[test]
    fn values_out_of_range_are_invalid_like_kube_apiserver() {
        let e = parse("tailLines=-1").unwrap_err();
        assert_eq!(e.reason, Reason::Invalid);
        assert_eq!(
            e.message,
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(parse("limitBytes=0").unwrap_err().reason, Reason::Invalid);
        assert_eq!(parse("sinceSeconds=0").unwrap_err().reason, Reason::Invalid);
        let e = parse("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z").unwrap_err();
        assert!(e.message.contains("at most one of `sinceTime` or `sinceSeconds`"), "{}", e.message);
    }

    #[test]
    fn since_time_becomes_seconds_before_the_request_rounded_up() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_100) + Duration::from_millis(500);
        let since: Timestamp = "2023-11-14T22:13:20Z".parse().unwrap(); // 1_700_000_000
        assert_eq!(seconds_since(since, now), 101);
        let future: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(seconds_since(future, now), 1);
        let o = LogOptions::parse(&Query::parse("sinceTime=2023-11-14T22%3A13%3A20Z"), "web", now).unwrap();
        assert_eq!(o.since_seconds, Some(101));
    }

    fn chunks(items: Vec<Result<&'static str, tonic::Status>>) -> Vec<Result<pb::LogChunk, tonic::Status>> {
        items.into_iter().map(|i| i.map(|s| pb::LogChunk { data: Bytes::from_static(s.as_bytes()) })).collect()
    }

    #[tokio::test]
    async fn the_body_relays_chunks_as_they_come_and_stops_at_the_byte_limit() {
        let source = futures::stream::iter(chunks(vec![Ok("one\n"), Ok(""), Ok("two\n"), Ok("three\n")]));
        let body: Vec<Bytes> = body_chunks(source, None).map(|c| c.unwrap()).collect().await;
        assert_eq!(body, ["one\n", "two\n", "three\n"]);

        let source = futures::stream::iter(chunks(vec![Ok("one\n"), Ok("two\n"), Ok("three\n")]));
        let body: Vec<Bytes> = body_chunks(source, Some(6)).map(|c| c.unwrap()).collect().await;
        assert_eq!(body, ["one\n", "tw"]);
    }

    #[tokio::test]
    async fn a_kubelet_failure_mid_stream_ends_the_body_with_an_error() {
        let source =
            futures::stream::iter(chunks(vec![Ok("one\n"), Err(tonic::Status::unavailable("gone")), Ok("never\n")]));
        let body: Vec<Result<Bytes, tonic::Status>> = body_chunks(source, None).collect().await;
        assert_eq!(body.len(), 2);
        assert!(body[1].is_err());
    }
}
