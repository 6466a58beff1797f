//! rkube-dns against a real apiserver on a real etcd: the server runs
//! in-process on 127.0.0.1 (one free port for UDP and TCP) and is asked with
//! hand-built hickory messages. EndpointSlices are written by the tests, as
//! the EndpointSlice controller writes them. Names outside the cluster go to
//! a fake upstream nameserver on loopback, never to the network.

use anyhow::Context as _;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rkube_api::k8s::api::core::v1::Service;
use rkube_api::k8s::api::discovery::v1::EndpointSlice;
use rkube_client::{Api, Client, DeleteParams};
use rkube_dns::{App, Args};
use rkube_testkit::{TestApiserver, http_get, wait_for};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(20);
/// What the fake upstream answers for every A question.
const UPSTREAM_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// rkube-dns running in-process, stopped on Drop.
struct Dns {
    addr: SocketAddr,
    health: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Dns {
    async fn start(server: &str, upstream: SocketAddr) -> anyhow::Result<Dns> {
        let args = Args {
            api: rkube_client::config::ServerArgs { server: Some(server.into()), kubeconfig: None },
            dns_bind_address: "127.0.0.1:0".parse()?,
            cluster_domain: "cluster.local".into(),
            ttl: 5,
            upstream: vec![upstream.to_string()],
            resolv_conf: "/nonexistent".into(),
            upstream_timeout: Duration::from_millis(300),
            healthz_bind_address: "127.0.0.1:0".parse()?,
            log_format: "text".into(),
        };
        let app = App::build(args).await?;
        let (addr, health) = (app.dns_addr(), app.health_addr());
        let shutdown = CancellationToken::new();
        let task = Some(tokio::spawn(app.run(shutdown.clone())));
        Ok(Dns { addr, health, shutdown, task })
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.health);
        wait_for(TIMEOUT, || async { http_get(&url).await.is_ok_and(|(c, _)| c == 200) }).await.context("readyz")
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().context("running")?;
        tokio::time::timeout(Duration::from_secs(10), task).await.context("run did not return")???;
        Ok(())
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).expect("a valid name"), qtype));
    q
}

async fn udp(addr: SocketAddr, name: &str, qtype: RecordType) -> anyhow::Result<Message> {
    let q = query(name, qtype);
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.send_to(&q.to_vec()?, addr).await?;
    let mut buf = vec![0u8; 4096];
    let (n, _) =
        tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf)).await.context("no answer")??;
    let r = Message::from_vec(&buf[..n])?;
    anyhow::ensure!(r.metadata.id == q.metadata.id, "answer to another query");
    Ok(r)
}

async fn tcp(addr: SocketAddr, name: &str, qtype: RecordType) -> anyhow::Result<Message> {
    let mut conn = TcpStream::connect(addr).await?;
    let q = query(name, qtype).to_vec()?;
    conn.write_all(&(q.len() as u16).to_be_bytes()).await?;
    conn.write_all(&q).await?;
    let len = tokio::time::timeout(Duration::from_secs(3), conn.read_u16()).await.context("no answer")??;
    let mut buf = vec![0u8; usize::from(len)];
    conn.read_exact(&mut buf).await?;
    Ok(Message::from_vec(&buf)?)
}

/// The addresses of the A records among the answers.
fn ips(r: &Message) -> Vec<String> {
    a_records(&r.answers)
}

fn a_records(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// A fake upstream nameserver on loopback: every A question gets
/// [`UPSTREAM_IP`]; names starting with `silent` get no answer at all.
async fn fake_upstream() -> anyhow::Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            let Some(question) = q.queries.first().cloned() else { continue };
            if question.name().to_ascii().starts_with("silent") {
                continue;
            }
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_available = true;
            r.add_query(question.clone());
            if question.query_type() == RecordType::A {
                r.add_answer(Record::from_rdata(question.name().clone(), 60, RData::A(A(UPSTREAM_IP))));
            }
            if let Ok(bytes) = r.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    Ok(addr)
}

fn service(name: &str, spec: serde_json::Value) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}))?)
}

fn slice(name: &str, service: &str, endpoints: serde_json::Value) -> anyhow::Result<EndpointSlice> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    }))?)
}

/// Waits until `name` answers `want` (A records, in order) over UDP.
async fn wait_for_ips(dns: &Dns, name: &str, want: &[&str]) -> anyhow::Result<()> {
    let result =
        wait_for(TIMEOUT, || async { udp(dns.addr, name, RecordType::A).await.is_ok_and(|r| ips(&r) == want) }).await;
    let now = udp(dns.addr, name, RecordType::A).await?;
    result.with_context(|| {
        format!("{name} never answered {want:?}; now {:?} {:?}", now.metadata.response_code, ips(&now))
    })
}

async fn wait_for_rcode(dns: &Dns, name: &str, rcode: ResponseCode) -> anyhow::Result<()> {
    wait_for(TIMEOUT, || async {
        udp(dns.addr, name, RecordType::A).await.is_ok_and(|r| r.metadata.response_code == rcode)
    })
    .await
    .with_context(|| format!("{name} never answered {rcode}"))
}

#[tokio::test]
async fn a_service_answers_its_cluster_ip_follows_updates_and_is_gone_when_deleted() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let dns = Dns::start(&apiserver.url(), fake_upstream().await?).await?;
    dns.wait_ready().await?;

    let name = "web.default.svc.cluster.local.";
    let r = udp(dns.addr, name, RecordType::A).await?;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "no Service yet");
    assert_eq!(r.authorities.first().map(|a| a.record_type()), Some(RecordType::SOA), "SOA in authority");

    let created = services.create(&service("web", json!({"ports": [{"name": "http", "port": 80}]}))?).await?;
    let ip = created.spec.and_then(|s| s.cluster_ip).context("a ClusterIP is allocated")?;
    wait_for_ips(&dns, name, &[&ip]).await?;
    let r = tcp(dns.addr, name, RecordType::A).await?;
    assert_eq!(ips(&r), vec![ip.clone()], "the same answer over TCP");
    assert!(r.metadata.authoritative);
    // Any case, and the short name a resolver expands with its search path.
    assert_eq!(ips(&udp(dns.addr, "WEB.default.SVC.cluster.local", RecordType::A).await?), vec![ip.clone()]);
    let r = udp(dns.addr, "_http._tcp.web.default.svc.cluster.local.", RecordType::SRV).await?;
    assert!(matches!(&r.answers[0].data, RData::SRV(srv) if srv.port == 80), "{r:?}");

    // A new named port shows in SRV.
    services
        .patch("web", &json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9100}]}}))
        .await?;
    wait_for(TIMEOUT, || async {
        udp(dns.addr, "_metrics._tcp.web.default.svc.cluster.local.", RecordType::SRV)
            .await
            .is_ok_and(|r| matches!(r.answers.first().map(|a| &a.data), Some(RData::SRV(srv)) if srv.port == 9100))
    })
    .await
    .context("the new port's SRV record")?;

    services.delete("web", &DeleteParams::default()).await?;
    wait_for_rcode(&dns, name, ResponseCode::NXDomain).await?;

    let (code, metrics) = http_get(&format!("http://{}/metrics", dns.health)).await?;
    assert_eq!(code, 200);
    for line in [
        "rkube_dns_queries_total{type=\"A\",rcode=\"NOERROR\",source=\"cluster\"}",
        "rkube_dns_queries_total{type=\"SRV\",rcode=\"NOERROR\",source=\"cluster\"}",
        "rkube_dns_query_duration_seconds_bucket{source=\"cluster\",le=",
        "rkube_dns_cache_objects{kind=\"services\"}",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    dns.stop().await
}

#[tokio::test]
async fn a_headless_service_answers_the_ready_endpoints_of_its_slices() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let dns = Dns::start(&apiserver.url(), fake_upstream().await?).await?;
    dns.wait_ready().await?;

    services.create(&service("db", json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}))?).await?;
    slices
        .create(&slice(
            "db-a",
            "db",
            json!([{"addresses": ["10.1.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.1.0.6"], "conditions": {"ready": false}}]),
        )?)
        .await?;
    let name = "db.default.svc.cluster.local.";
    wait_for_ips(&dns, name, &["10.1.0.5"]).await?;
    assert_eq!(ips(&udp(dns.addr, "db-0.db.default.svc.cluster.local.", RecordType::A).await?), vec!["10.1.0.5"]);
    let r = udp(dns.addr, "_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV).await?;
    let targets: Vec<String> = r
        .answers
        .iter()
        .filter_map(|a| match &a.data {
            RData::SRV(srv) => Some(format!("{}:{}", srv.target, srv.port)),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec!["db-0.db.default.svc.cluster.local.:5432"]);
    assert_eq!(a_records(&r.additionals), vec!["10.1.0.5"]);

    // The second endpoint turns ready; a second slice adds a third.
    slices
        .patch(
            "db-a",
            &json!({"endpoints": [{"addresses": ["10.1.0.5"], "hostname": "db-0"},
        {"addresses": ["10.1.0.6"], "conditions": {"ready": true}}]}),
        )
        .await?;
    slices.create(&slice("db-b", "db", json!([{"addresses": ["10.1.1.7"]}]))?).await?;
    wait_for_ips(&dns, name, &["10.1.0.5", "10.1.0.6", "10.1.1.7"]).await?;
    assert_eq!(ips(&udp(dns.addr, "10-1-1-7.db.default.svc.cluster.local.", RecordType::A).await?), vec!["10.1.1.7"]);

    slices.delete("db-a", &DeleteParams::default()).await?;
    wait_for_ips(&dns, name, &["10.1.1.7"]).await?;
    dns.stop().await
}

#[tokio::test]
async fn other_names_go_upstream_external_names_are_chased_and_silence_is_servfail() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let dns = Dns::start(&apiserver.url(), fake_upstream().await?).await?;
    dns.wait_ready().await?;

    let r = udp(dns.addr, "www.example.org.", RecordType::A).await?;
    assert_eq!((r.metadata.response_code, ips(&r)), (ResponseCode::NoError, vec![UPSTREAM_IP.to_string()]));
    let r = tcp(dns.addr, "www.example.org.", RecordType::A).await?;
    assert_eq!(ips(&r), vec![UPSTREAM_IP.to_string()], "forwarded for TCP clients too");

    let r = udp(dns.addr, "silent.example.org.", RecordType::A).await?;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "the upstream never answered");

    services.create(&service("ext", json!({"type": "ExternalName", "externalName": "db.example.org"}))?).await?;
    let name = "ext.default.svc.cluster.local.";
    wait_for(TIMEOUT, || async { udp(dns.addr, name, RecordType::A).await.is_ok_and(|r| !r.answers.is_empty()) })
        .await
        .context("the ExternalName's answer")?;
    let r = udp(dns.addr, name, RecordType::A).await?;
    let cname = r.answers.iter().find_map(|a| match &a.data {
        RData::CNAME(c) => Some(c.0.to_string()),
        _ => None,
    });
    assert_eq!(cname.as_deref(), Some("db.example.org."));
    assert_eq!(ips(&r), vec![UPSTREAM_IP.to_string()], "the CNAME's target, resolved upstream");

    let (_, metrics) = http_get(&format!("http://{}/metrics", dns.health)).await?;
    assert!(
        metrics.contains("rkube_dns_queries_total{type=\"A\",rcode=\"NOERROR\",source=\"upstream\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("rkube_dns_upstream_errors_total 1"), "{metrics}");
    dns.stop().await
}

#[tokio::test]
async fn garbage_does_not_kill_the_server() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services.create(&service("web", json!({"ports": [{"port": 80}]}))?).await?;
    let dns = Dns::start(&apiserver.url(), fake_upstream().await?).await?;
    dns.wait_ready().await?;
    let name = "web.default.svc.cluster.local.";
    wait_for(TIMEOUT, || async { udp(dns.addr, name, RecordType::A).await.is_ok_and(|r| ips(&r).len() == 1) }).await?;

    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    // A header that promises a question that is not there: FORMERR with its ID.
    socket.send_to(&[0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'x'], dns.addr).await?;
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf)).await??;
    assert!(n >= 12 && buf[..2] == [0x12, 0x34] && buf[3] & 0x0f == 1, "FORMERR: {:?}", &buf[..n]);
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..2000 {
        let garbage: Vec<u8> = (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect();
        socket.send_to(&garbage, dns.addr).await?;
    }
    // Garbage over TCP: a length, then noise, then a hang-up.
    for _ in 0..20 {
        let mut conn = TcpStream::connect(dns.addr).await?;
        let garbage: Vec<u8> = (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect();
        let _ = conn.write_all(&garbage).await;
    }
    assert_eq!(ips(&udp(dns.addr, name, RecordType::A).await?).len(), 1, "still answering over UDP");
    assert_eq!(ips(&tcp(dns.addr, name, RecordType::A).await?).len(), 1, "still answering over TCP");
    dns.stop().await
}

#[tokio::test]
async fn not_ready_and_servfail_until_the_caches_are_synced() -> anyhow::Result<()> {
    // No apiserver on this port: the caches never sync.
    let dns = Dns::start("http://127.0.0.1:1", fake_upstream().await?).await?;
    let (code, _) = http_get(&format!("http://{}/readyz", dns.health)).await?;
    assert_eq!(code, 503);
    assert_eq!(http_get(&format!("http://{}/healthz", dns.health)).await?.0, 200);
    let r = udp(dns.addr, "web.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "not NXDOMAIN: the name may exist");
    let r = udp(dns.addr, "www.example.org.", RecordType::A).await?;
    assert_eq!(ips(&r), vec![UPSTREAM_IP.to_string()], "forwarding does not wait for the caches");
    dns.stop().await
}

#[tokio::test]
async fn the_addon_manifest_is_accepted_by_the_apiserver() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/addons/dns.yaml"))?;
    let mut kinds = Vec::new();
    for doc in rkube_api::manifest::parse_documents(&text) {
        let doc = doc?;
        let (api_version, kind) = (doc["apiVersion"].as_str().unwrap_or(""), doc["kind"].as_str().unwrap_or(""));
        let info = rkube_api::resource::for_kind(api_version, kind)?;
        let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("");
        // kube-system is one of the namespaces the apiserver creates itself.
        client.create(info, namespace, serde_json::to_vec(&doc)?).await.with_context(|| kind.to_string())?;
        kinds.push(kind.to_string());
    }
    assert_eq!(kinds, vec!["ServiceAccount", "Deployment", "Service"]);
    let svc = Api::<Service>::namespaced(client.clone(), "kube-system").get("kube-dns").await?;
    let spec = svc.spec.context("spec")?;
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.254.0.10"));
    let ports: Vec<(String, i32, String)> = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port, p.protocol.unwrap_or_default()))
        .collect();
    assert_eq!(ports, vec![("dns".into(), 53, "UDP".into()), ("dns-tcp".into(), 53, "TCP".into())]);
    let deployment: rkube_api::k8s::api::apps::v1::Deployment =
        Api::namespaced(client.clone(), "kube-system").get("rkube-dns").await?;
    let pod = deployment.spec.context("spec")?.template.spec.context("pod spec")?;
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    assert_eq!(pod.containers[0].image.as_deref(), Some("rkube/dns:0.1.0"));
    assert!(
        !pod.containers[0].args.iter().flatten().any(|a| a.starts_with("--server")),
        "the apiserver comes from the in-cluster environment"
    );
    Ok(())
}
