//! What rkube-dns reports on `/metrics`:
//! - `rkube_dns_queries_total{type,rcode,source}`: answered queries by
//!   question type, response code and who answered (`cluster` or `upstream`);
//! - `rkube_dns_query_duration_seconds{source}`: time from receiving a query
//!   to having its answer;
//! - `rkube_dns_malformed_total`: packets that were not DNS queries;
//! - `rkube_dns_upstream_errors_total`: forwards no upstream answered;
//! - `rkube_dns_cache_objects{kind}`: cached Services and EndpointSlices.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rkube_client::metrics::{Counter, Family, Gauge, HistogramFamily, Labels, Registry, exponential_buckets};

/// Who produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cluster zone, from the caches.
    Cluster,
    /// An upstream nameserver.
    Upstream,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Cluster => "cluster",
            Source::Upstream => "upstream",
        }
    }
}

/// rkube-dns' metric families; cheap to clone.
#[derive(Debug, Clone)]
pub struct DnsMetrics {
    queries: Family<Labels<3>, Counter>,
    duration: HistogramFamily<Labels<1>>,
    malformed: Counter,
    upstream_errors: Counter,
    cache: Family<Labels<1>, Gauge>,
}

impl DnsMetrics {
    /// Registers the families on `registry`.
    pub fn register(registry: &Registry) -> DnsMetrics {
        DnsMetrics {
            queries: registry.counter_family(
                "rkube_dns_queries_total",
                "Answered queries by question type, response code and source (cluster, upstream)",
            ),
            // 25 µs to about 1.6 s.
            duration: registry.histogram_family(
                "rkube_dns_query_duration_seconds",
                "Time from receiving a query to having its answer, by source",
                exponential_buckets(0.000_025, 2.0, 17),
            ),
            malformed: registry.counter("rkube_dns_malformed_total", "Packets dropped or refused as malformed"),
            upstream_errors: registry
                .counter("rkube_dns_upstream_errors_total", "Forwarded queries that no upstream nameserver answered"),
            cache: registry.gauge_family("rkube_dns_cache_objects", "Objects cached, by kind"),
        }
    }

    /// Counts one answered query.
    pub fn answered(&self, qtype: Option<RecordType>, rcode: ResponseCode, source: Source, seconds: f64) {
        let labels = [
            ("type", type_label(qtype).into()),
            ("rcode", rcode_label(rcode).into()),
            ("source", source.as_str().into()),
        ];
        self.queries.get_or_create(&labels).inc();
        self.duration.get_or_create(&[("source", source.as_str().into())]).observe(seconds);
    }

    /// Counts a malformed packet.
    pub fn malformed(&self) {
        self.malformed.inc();
    }

    /// Counts a forward that failed.
    pub fn upstream_error(&self) {
        self.upstream_errors.inc();
    }

    /// Sets the cache sizes.
    pub fn set_cache_sizes(&self, services: usize, slices: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.cache.get_or_create(&[("kind", "services".into())]).set(gauge(services));
        self.cache.get_or_create(&[("kind", "endpointslices".into())]).set(gauge(slices));
    }
}

/// The question type as a label: the usual types by name, the rest `other`
/// (so a scanner cannot grow the label set).
fn type_label(qtype: Option<RecordType>) -> &'static str {
    match qtype {
        Some(RecordType::A) => "A",
        Some(RecordType::AAAA) => "AAAA",
        Some(RecordType::SRV) => "SRV",
        Some(RecordType::PTR) => "PTR",
        Some(RecordType::CNAME) => "CNAME",
        Some(RecordType::SOA) => "SOA",
        Some(RecordType::NS) => "NS",
        Some(RecordType::TXT) => "TXT",
        Some(RecordType::MX) => "MX",
        Some(RecordType::ANY) => "ANY",
        Some(_) => "other",
        None => "none",
    }
}

fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "other",
    }
}
