//! The DNS front end: UDP and TCP listeners, and the [`Handler`] that turns
//! one request packet into one response packet.
//!
//! Names in the cluster domain are answered from the [`Zone`] on the
//! receiving task (no allocation of a task per query); everything else, and
//! the target of an ExternalName's CNAME, is forwarded on a task of its own
//! so that a slow upstream never holds up cluster answers. A packet that is
//! not a query is dropped; one that cannot be parsed gets FORMERR when its
//! header can be read; anything the server cannot answer gets SERVFAIL.

use crate::metrics::{DnsMetrics, Source};
use crate::upstream::Upstream;
use crate::zone::{Answer, Zone};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// The UDP payload size this server advertises in EDNS (the DNS flag day
/// 2020 value: fits any path MTU).
const EDNS_PAYLOAD: u16 = 1232;
/// The largest UDP request read.
const MAX_UDP_REQUEST: usize = 4096;
/// A TCP connection idle this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once; more are closed on accept.
const MAX_TCP_CONNECTIONS: usize = 256;
/// Queries forwarded upstream at once (CoreDNS' forward plugin allows
/// 1000); more get SERVFAIL at once instead of piling up behind a slow upstream.
const MAX_FORWARDS: usize = 1000;

/// How the request came, which bounds the response size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the client's EDNS payload size (at most ours).
    Udp,
    /// TCP: up to 65535 bytes.
    Tcp,
}

/// What to do with a request after the local step.
#[derive(Debug)]
pub enum Step {
    /// Send nothing (not a query, or not even a header).
    Drop,
    /// Send this response.
    Reply(Vec<u8>),
    /// Ask upstream first ([`Handler::finish`]).
    Upstream(Box<Pending>),
}

/// A request that needs an upstream answer.
#[derive(Debug)]
pub struct Pending {
    request: Message,
    raw: Vec<u8>,
    received: Instant,
    transport: Transport,
    /// For an ExternalName: the response so far (its CNAME), whose target
    /// upstream resolves. None: forward the request as it is.
    chase: Option<Message>,
}

/// Answers requests; shared by every listener task.
#[derive(Debug)]
pub struct Handler {
    zone: Zone,
    upstream: Upstream,
    metrics: DnsMetrics,
    forwards: Semaphore,
}

impl Handler {
    /// A handler answering the cluster zone from `zone` and forwarding the
    /// rest to `upstream`.
    pub fn new(zone: Zone, upstream: Upstream, metrics: DnsMetrics) -> Handler {
        Handler { zone, upstream, metrics, forwards: Semaphore::new(MAX_FORWARDS) }
    }

    /// The zone it answers.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Handles `raw`, received at `received`, as far as it can without upstream.
    pub fn start(&self, raw: &[u8], transport: Transport, received: Instant) -> Step {
        // Not even a header, or a response (answering it could loop): drop.
        if raw.len() < 12 || raw[2] & 0x80 != 0 {
            self.metrics.malformed();
            return Step::Drop;
        }
        let request = match Message::from_vec(raw) {
            Ok(m) => m,
            Err(e) => {
                debug!(error = %e, "malformed query");
                self.metrics.malformed();
                self.metrics.answered(None, ResponseCode::FormErr, Source::Cluster, elapsed(received));
                return Step::Reply(header_only_error(raw, ResponseCode::FormErr));
            }
        };
        let rcode_only = |rcode: ResponseCode| {
            self.metrics.answered(
                request.queries.first().map(|q| q.query_type()),
                rcode,
                Source::Cluster,
                elapsed(received),
            );
            Step::Reply(self.encode(&request, response_to(&request, rcode), transport))
        };
        if request.metadata.op_code != OpCode::Query {
            return rcode_only(ResponseCode::NotImp);
        }
        let [query] = request.queries.as_slice() else { return rcode_only(ResponseCode::FormErr) };
        let (qname, qtype) = (query.name().clone(), query.query_type());
        let answer = self.zone.answer(&qname, qtype);
        if answer == Answer::NotInZone {
            return Step::Upstream(Box::new(Pending { raw: raw.to_vec(), request, received, transport, chase: None }));
        }
        if query.query_class() != DNSClass::IN {
            return rcode_only(ResponseCode::Refused);
        }
        let mut response = response_to(&request, ResponseCode::NoError);
        response.metadata.authoritative = true;
        match answer {
            Answer::Records { answers, additionals } => {
                response.answers = answers;
                response.additionals = additionals;
                if let Some(target) = self.cname_target(&response, qtype) {
                    match self.zone.answer(&target, qtype) {
                        Answer::Records { answers, additionals } => {
                            response.answers.extend(answers);
                            response.additionals.extend(additionals);
                        }
                        Answer::NotInZone => {
                            let chase = Some(response);
                            return Step::Upstream(Box::new(Pending {
                                raw: raw.to_vec(),
                                request,
                                received,
                                transport,
                                chase,
                            }));
                        }
                        _ => {}
                    }
                }
            }
            Answer::NoData => response.authorities.push(self.zone.soa()),
            Answer::NxDomain => {
                response.metadata.response_code = ResponseCode::NXDomain;
                response.authorities.push(self.zone.soa());
            }
            Answer::NotSynced | Answer::NotInZone => {
                response.metadata.authoritative = false;
                response.metadata.response_code = ResponseCode::ServFail;
            }
        }
        self.metrics.answered(Some(qtype), response.metadata.response_code, Source::Cluster, elapsed(received));
        Step::Reply(self.encode(&request, response, transport))
    }

    /// The target of a CNAME that ends the answers, if `qtype` is not CNAME
    /// itself (a resolver asking for A wants the address behind it).
    fn cname_target(&self, response: &Message, qtype: RecordType) -> Option<hickory_proto::rr::Name> {
        if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
            return None;
        }
        match response.answers.last().map(|r| &r.data) {
            Some(RData::CNAME(target)) => Some(target.0.clone()),
            _ => None,
        }
    }

    /// Completes a request that needed upstream: forwards it (or, for an
    /// ExternalName, resolves the CNAME's target) and returns the response.
    pub async fn finish(&self, pending: Box<Pending>) -> Vec<u8> {
        let Pending { request, raw, received, transport, chase } = *pending;
        let qtype = request.queries.first().map(|q| q.query_type());
        let Ok(_slot) = self.forwards.try_acquire() else {
            self.metrics.upstream_error();
            self.metrics.answered(qtype, ResponseCode::ServFail, Source::Upstream, elapsed(received));
            return self.encode(&request, response_to(&request, ResponseCode::ServFail), transport);
        };
        match chase {
            None => match self.upstream.forward(&raw).await {
                Ok(answer) => {
                    let rcode = ResponseCode::from_low(answer[3] & 0x0f);
                    self.metrics.answered(qtype, rcode, Source::Upstream, elapsed(received));
                    fit_upstream_answer(answer, &request, transport)
                }
                Err(e) => {
                    debug!(error = %e, "forwarding failed");
                    self.metrics.upstream_error();
                    self.metrics.answered(qtype, ResponseCode::ServFail, Source::Upstream, elapsed(received));
                    self.encode(&request, response_to(&request, ResponseCode::ServFail), transport)
                }
            },
            Some(mut response) => {
                if let (Some(target), Some(qtype)) = (self.cname_target(&response, RecordType::A), qtype) {
                    let mut query = Message::query();
                    query.metadata.recursion_desired = true;
                    query.add_query(Query::query(target, qtype));
                    let answer = match query.to_vec() {
                        Ok(bytes) => self.upstream.forward(&bytes).await.ok(),
                        Err(_) => None,
                    };
                    // Best effort: without the target's records the CNAME alone is still the answer.
                    if let Some(answer) = answer.and_then(|a| Message::from_vec(&a).ok()) {
                        response.answers.extend(answer.answers);
                    }
                }
                let rcode = response.metadata.response_code;
                self.metrics.answered(qtype, rcode, Source::Cluster, elapsed(received));
                self.encode(&request, response, transport)
            }
        }
    }

    /// Encodes `response`, truncated (TC set, no records) if it is larger
    /// than a UDP client takes; SERVFAIL if it cannot be encoded.
    fn encode(&self, request: &Message, response: Message, transport: Transport) -> Vec<u8> {
        let limit = size_limit(request, transport);
        match response.to_vec() {
            Ok(bytes) if bytes.len() <= limit => bytes,
            Ok(_) => {
                response.truncate().to_vec().unwrap_or_else(|_| header_only_error_of(request, ResponseCode::ServFail))
            }
            Err(e) => {
                warn!(error = %e, "encoding a response failed");
                header_only_error_of(request, ResponseCode::ServFail)
            }
        }
    }

    /// Serves UDP on `socket` until `shutdown`: cluster answers inline,
    /// forwards on their own tasks on `tracker`.
    pub async fn serve_udp(self: Arc<Self>, socket: Arc<UdpSocket>, tracker: TaskTracker, shutdown: CancellationToken) {
        let mut buf = vec![0u8; MAX_UDP_REQUEST];
        loop {
            let (n, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(r) => r,
                    Err(e) => {
                        // ICMP errors of earlier sends surface here on some
                        // systems; the socket itself is fine.
                        debug!(error = %e, "udp receive failed");
                        continue;
                    }
                },
            };
            match self.start(&buf[..n], Transport::Udp, Instant::now()) {
                Step::Drop => {}
                Step::Reply(bytes) => send_udp(&socket, &bytes, peer).await,
                Step::Upstream(pending) => {
                    let (handler, socket) = (self.clone(), socket.clone());
                    tracker.spawn(async move {
                        let bytes = handler.finish(pending).await;
                        send_udp(&socket, &bytes, peer).await;
                    });
                }
            }
        }
    }

    /// Accepts TCP connections on `listener` until `shutdown`, serving each
    /// on a task of `tracker`.
    pub async fn serve_tcp(self: Arc<Self>, listener: TcpListener, tracker: TaskTracker, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
        loop {
            let (conn, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(error = %e, "tcp accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!(%peer, "too many tcp connections; closing");
                continue;
            };
            let (handler, stop) = (self.clone(), shutdown.clone());
            tracker.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    r = handler.serve_connection(conn) => if let Err(e) = r {
                        debug!(%peer, error = %e, "tcp connection ended");
                    },
                }
                drop(slot);
            });
        }
    }

    /// Answers length-prefixed requests on `conn`, in order, until the client
    /// closes it or stays idle for [`TCP_IDLE`].
    async fn serve_connection(&self, mut conn: TcpStream) -> std::io::Result<()> {
        let _ = conn.set_nodelay(true);
        loop {
            let len = match tokio::time::timeout(TCP_IDLE, conn.read_u16()).await {
                Err(_) => return Ok(()),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(r) => r?,
            };
            let mut request = vec![0u8; usize::from(len)];
            tokio::time::timeout(TCP_IDLE, conn.read_exact(&mut request))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request not sent in time"))??;
            let response = match self.start(&request, Transport::Tcp, Instant::now()) {
                Step::Drop => return Ok(()),
                Step::Reply(bytes) => bytes,
                Step::Upstream(pending) => self.finish(pending).await,
            };
            let len = u16::try_from(response.len()).expect("encode keeps a response within 65535 bytes");
            let mut framed = Vec::with_capacity(response.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&response);
            conn.write_all(&framed).await?;
        }
    }
}

async fn send_udp(socket: &UdpSocket, bytes: &[u8], peer: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, peer).await {
        debug!(%peer, error = %e, "udp send failed");
    }
}

fn elapsed(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// The largest response `request` may get over `transport`.
fn size_limit(request: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(request.max_payload().min(EDNS_PAYLOAD.max(512))),
    }
}

/// An empty response to `request` with `rcode`: its ID, opcode, RD flag and
/// question; EDNS if the request had it.
fn response_to(request: &Message, rcode: ResponseCode) -> Message {
    let mut response = Message::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.metadata.response_code = rcode;
    response.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.edns = Some(edns);
    }
    response
}

/// A header-only response to a request whose body could not be parsed:
/// the request's ID and opcode, the RD flag, `rcode`.
fn header_only_error(raw: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(&raw[..2]);
    // QR, the request's opcode and RD; RA.
    out[2] = 0x80 | (raw[2] & 0x79);
    out[3] = 0x80 | rcode.low();
    out
}

fn header_only_error_of(request: &Message, rcode: ResponseCode) -> Vec<u8> {
    let mut header = [0u8; 12];
    header[..2].copy_from_slice(&request.metadata.id.to_be_bytes());
    header[2] = (u8::from(request.metadata.op_code) << 3) | u8::from(request.metadata.recursion_desired);
    header_only_error(&header, rcode)
}

/// An upstream answer as sent to a client over `transport`: as it came, or
/// truncated if it is larger than a UDP client takes.
fn fit_upstream_answer(answer: Vec<u8>, request: &Message, transport: Transport) -> Vec<u8> {
    if answer.len() <= size_limit(request, transport) {
        return answer;
    }
    match Message::from_vec(&answer) {
        Ok(m) => m.truncate().to_vec().unwrap_or_else(|_| header_only_error_of(request, ResponseCode::ServFail)),
        Err(_) => header_only_error_of(request, ResponseCode::ServFail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{ServiceView, SliceView};
    use crate::zone::cluster_domain;
    use hickory_proto::rr::Name;
    use rkube_client::Writer;
    use rkube_client::metrics::Registry;

    fn handler(services: &Writer<ServiceView>) -> (Handler, Arc<Registry>) {
        let slices = Writer::<SliceView>::new();
        services.mark_synced();
        slices.mark_synced();
        let zone = Zone::new(cluster_domain("cluster.local").unwrap(), 5, services.as_reader(), slices.as_reader());
        let registry = Arc::new(Registry::new());
        let metrics = DnsMetrics::register(&registry);
        (Handler::new(zone, Upstream::new(vec![], Duration::from_millis(50)), metrics), registry)
    }

    fn query(name: &str, qtype: RecordType) -> Message {
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        q
    }

    fn reply(step: Step) -> Message {
        match step {
            Step::Reply(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("no reply: {other:?}"),
        }
    }

    #[test]
    fn answers_the_zone_and_puts_the_soa_in_negative_answers() {
        let services = Writer::new();
        let (h, registry) = handler(&services);
        let svc = serde_json::json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.254.0.9"}});
        services.apply(Arc::new(serde_json::from_value(svc).unwrap()));

        let q = query("web.default.svc.cluster.local.", RecordType::A);
        let r = reply(h.start(&q.to_vec().unwrap(), Transport::Udp, Instant::now()));
        assert_eq!((r.metadata.id, r.metadata.response_code), (q.metadata.id, ResponseCode::NoError));
        assert!(r.metadata.authoritative && r.metadata.recursion_desired);
        assert_eq!(r.queries, q.queries);
        assert_eq!(r.answers[0].data, RData::A("10.254.0.9".parse().unwrap()));

        let q = query("nope.default.svc.cluster.local.", RecordType::A);
        let r = reply(h.start(&q.to_vec().unwrap(), Transport::Udp, Instant::now()));
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);

        let text = registry.render();
        for line in [
            "rkube_dns_queries_total{type=\"A\",rcode=\"NOERROR\",source=\"cluster\"} 1",
            "rkube_dns_queries_total{type=\"A\",rcode=\"NXDOMAIN\",source=\"cluster\"} 1",
            "rkube_dns_query_duration_seconds_count{source=\"cluster\"} 2",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn garbage_is_dropped_or_formerr_never_a_panic() {
        let services = Writer::new();
        let (h, registry) = handler(&services);
        assert!(matches!(h.start(&[1, 2, 3], Transport::Udp, Instant::now()), Step::Drop));
        // A header claiming one question that is not there.
        let raw = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let Step::Reply(bytes) = h.start(&raw, Transport::Udp, Instant::now()) else { panic!("no FORMERR") };
        assert_eq!(&bytes[..2], &[0xab, 0xcd]);
        assert_eq!((bytes[2] & 0x80, bytes[3] & 0x0f), (0x80, 1), "a response, FORMERR");
        // A response is never answered.
        let mut response = query("x.cluster.local.", RecordType::A);
        response.metadata.message_type = MessageType::Response;
        assert!(matches!(h.start(&response.to_vec().unwrap(), Transport::Udp, Instant::now()), Step::Drop));
        // Random bytes, many times.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..64);
            let mut raw: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if raw.len() > 2 {
                raw[2] &= 0x7f;
            }
            let _ = h.start(&raw, Transport::Udp, Instant::now());
        }
        assert!(registry.render().contains("rkube_dns_malformed_total"));
    }

    #[test]
    fn other_opcodes_and_question_counts_are_refused() {
        let services = Writer::new();
        let (h, _) = handler(&services);
        let mut q = query("web.default.svc.cluster.local.", RecordType::A);
        q.metadata.op_code = OpCode::Status;
        let r = reply(h.start(&q.to_vec().unwrap(), Transport::Udp, Instant::now()));
        assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
        let mut q = query("a.cluster.local.", RecordType::A);
        q.add_query(Query::query(Name::from_ascii("b.cluster.local.").unwrap(), RecordType::A));
        let r = reply(h.start(&q.to_vec().unwrap(), Transport::Udp, Instant::now()));
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    }

    #[test]
    fn large_udp_answers_are_truncated() {
        let services = Writer::new();
        let (h, _) = handler(&services);
        let ips: Vec<String> = (0..200).map(|i| format!("10.254.{}.{}", i / 250, i % 250 + 1)).collect();
        let svc = serde_json::json!({"metadata": {"name": "big", "namespace": "default"},
            "spec": {"clusterIP": ips[0], "clusterIPs": ips}});
        services.apply(Arc::new(serde_json::from_value(svc).unwrap()));
        let q = query("big.default.svc.cluster.local.", RecordType::A).to_vec().unwrap();
        let r = reply(h.start(&q, Transport::Udp, Instant::now()));
        assert!(r.metadata.truncation && r.answers.is_empty(), "TC set over UDP");
        let r = reply(h.start(&q, Transport::Tcp, Instant::now()));
        assert!(!r.metadata.truncation && r.answers.len() == 200, "whole over TCP");
    }

    #[tokio::test]
    async fn forwarding_without_upstream_is_servfail() {
        let services = Writer::new();
        let (h, _) = handler(&services);
        let q = query("example.org.", RecordType::A);
        let Step::Upstream(pending) = h.start(&q.to_vec().unwrap(), Transport::Udp, Instant::now()) else {
            panic!("not forwarded")
        };
        let r = Message::from_vec(&h.finish(pending).await).unwrap();
        assert_eq!((r.metadata.id, r.metadata.response_code), (q.metadata.id, ResponseCode::ServFail));
    }
}
