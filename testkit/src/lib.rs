//! rkube-testkit: real parts for integration tests, torn down on Drop.
//!
//! [`Etcd::start`] runs the machine's `etcd` on free loopback ports with a
//! temporary data directory ([`EtcdCluster::start`] several members of one
//! cluster); [`TestApiserver::start`] runs a real apiserver
//! in-process on `127.0.0.1:0` against it; [`wait_for`] polls a condition
//! instead of sleeping; [`TestControllerManager`] runs the real controller
//! manager in-process.

mod controller_manager;

pub use controller_manager::TestControllerManager;

use anyhow::{Context as _, bail};
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// The etcd binary: `$RKUBE_ETCD` or `etcd` on the PATH (Debian's etcd-server).
pub fn etcd_binary() -> String {
    std::env::var("RKUBE_ETCD").unwrap_or_else(|_| "etcd".into())
}

/// A real etcd process on free loopback ports, killed and wiped on Drop
/// (a member of an [`EtcdCluster`], or a cluster of its own).
#[derive(Debug)]
pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    name: String,
    /// `--initial-cluster`: every member's name=peer URL.
    initial_cluster: String,
    /// False for a [`Etcd::handle`]: Drop leaves the process and data alone.
    owner: bool,
    /// A PKI directory (rkube-pki's layout): serve clients over TLS with
    /// `etcd/server.crt` and require certificates signed by `etcd/ca.crt`.
    tls: Option<PathBuf>,
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub async fn start() -> anyhow::Result<Etcd> {
        Etcd::start_on(None).await
    }

    /// Starts etcd serving clients over TLS with the etcd certificates of
    /// the rkube-pki directory `pki_dir`, as kubeadm configures it: only
    /// clients with a certificate from etcd's own CA get in.
    pub async fn start_tls(pki_dir: &Path) -> anyhow::Result<Etcd> {
        Etcd::start_on(Some(pki_dir.to_path_buf())).await
    }

    async fn start_on(tls: Option<PathBuf>) -> anyhow::Result<Etcd> {
        // Another test may take a probed free port before etcd binds it;
        // etcd then exits at once: try again on other ports.
        let mut failure = None;
        for _ in 0..3 {
            let mut etcd = Etcd::member("rkube-test");
            etcd.tls.clone_from(&tls);
            etcd.initial_cluster = format!("{}={}", etcd.name, etcd.peer_url());
            etcd.spawn()?;
            match etcd.wait_ready().await {
                Ok(()) => return Ok(etcd),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    fn member(name: &str) -> Etcd {
        let dir = std::env::temp_dir().join(format!("rkube-etcd-{}-{}", std::process::id(), free_port()));
        Etcd {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            name: name.into(),
            initial_cluster: String::new(),
            owner: true,
            tls: None,
        }
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let client = self.url();
        let peer = self.peer_url();
        let mut command = Command::new(etcd_binary());
        if let Some(pki) = &self.tls {
            command
                .arg(format!("--cert-file={}", pki.join("etcd/server.crt").display()))
                .arg(format!("--key-file={}", pki.join("etcd/server.key").display()))
                .arg(format!("--trusted-ca-file={}", pki.join("etcd/ca.crt").display()))
                .arg("--client-cert-auth");
        }
        let child = command
            .arg(format!("--name={}", self.name))
            .arg(format!("--data-dir={}", self.dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg("--unsafe-no-fsync")
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (install it with: apt-get install etcd-server)", etcd_binary()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until etcd listens; fails at once if it exits first.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.client_port).parse()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                bail!("etcd exited ({status}) before listening on {addr}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("etcd did not start listening on {addr} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Another handle on the same etcd, for a second apiserver: dropping
    /// it leaves etcd running.
    pub fn handle(&self) -> Etcd {
        Etcd {
            child: None,
            dir: self.dir.clone(),
            client_port: self.client_port,
            peer_port: self.peer_port,
            name: self.name.clone(),
            initial_cluster: self.initial_cluster.clone(),
            owner: false,
            tls: self.tls.clone(),
        }
    }

    /// Stops etcd (keeping its data), as an outage: SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts etcd again on the same ports and data after [`Etcd::stop`].
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() || !self.owner {
            bail!("etcd is still running, or this is a handle on another's");
        }
        self.spawn()?;
        self.wait_ready().await
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if self.owner {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A real etcd cluster of several members on loopback, wiped on Drop.
#[derive(Debug)]
pub struct EtcdCluster {
    /// The members, in the order of [`EtcdCluster::urls`].
    pub members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until each listens (the cluster
    /// answers once a majority has elected a leader).
    pub async fn start(size: usize) -> anyhow::Result<EtcdCluster> {
        let mut members: Vec<Etcd> = (0..size).map(|i| Etcd::member(&format!("m{i}"))).collect();
        let initial: Vec<String> = members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect();
        for m in &mut members {
            m.initial_cluster = initial.join(",");
            m.spawn()?;
        }
        for m in &mut members {
            m.wait_ready().await?;
        }
        Ok(EtcdCluster { members })
    }

    /// Every member's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(Etcd::url).collect()
    }
}

/// A real apiserver running in-process against `etcd`, stopped on Drop.
#[derive(Debug)]
pub struct TestApiserver {
    /// The etcd underneath (dropped after the apiserver).
    pub etcd: Etcd,
    args: rkube_apiserver::Args,
    addr: SocketAddr,
    /// The plain loopback port, when the apiserver speaks TLS.
    insecure: Option<SocketAddr>,
    /// The running apiserver's registry (for tests that reach inside).
    registry: Option<std::sync::Arc<rkube_apiserver::registry::Registry>>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApiserver {
    /// Starts etcd and an apiserver with the default flags.
    pub async fn start() -> anyhow::Result<TestApiserver> {
        Self::start_with(|_| {}).await
    }

    /// Starts etcd and an apiserver whose flags `tweak` may change.
    pub async fn start_with(tweak: impl FnOnce(&mut rkube_apiserver::Args)) -> anyhow::Result<TestApiserver> {
        Self::start_on_etcd(Etcd::start().await?, tweak).await
    }

    /// Starts an apiserver on `etcd` (which it owns from now on) with the
    /// default flags, which `tweak` may change.
    pub async fn start_on_etcd(
        etcd: Etcd,
        tweak: impl FnOnce(&mut rkube_apiserver::Args),
    ) -> anyhow::Result<TestApiserver> {
        // The daemon's own defaults, so a new flag needs no change here.
        let url = etcd.url();
        let mut args = <rkube_apiserver::Args as clap::Parser>::try_parse_from([
            "rkube-apiserver",
            "--etcd-servers",
            &url,
            "--bind-address",
            "127.0.0.1",
            "--port",
            "0",
            "--plain-http",
        ])?;
        tweak(&mut args);
        Self::start_on(etcd, args).await
    }

    /// Starts etcd and an apiserver speaking TLS, with a PKI made in
    /// `pki_dir` for `nodes` (see rkube-pki: `admin.kubeconfig`,
    /// `node-<name>.kubeconfig`, ...): client certificates authenticate, the
    /// apiserver reaches kubelets with its kubelet client certificate, and
    /// a plain loopback port serves readiness probes. `tweak` may change
    /// the flags further.
    pub async fn start_secure(
        pki_dir: &std::path::Path,
        nodes: &[&str],
        tweak: impl FnOnce(&mut rkube_apiserver::Args),
    ) -> anyhow::Result<TestApiserver> {
        let port = free_port();
        let pki = rkube_pki::Pki {
            dir: pki_dir.to_path_buf(),
            server: format!("https://127.0.0.1:{port}"),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            ..rkube_pki::Pki::default()
        };
        pki.ensure()?;
        let p = |name: &str| Some(pki_dir.join(name));
        Self::start_with(|a| {
            a.port = port;
            a.plain_http = false;
            a.tls_cert_file = p("apiserver.crt");
            a.tls_private_key_file = p("apiserver.key");
            a.client_ca_file = p("ca.crt");
            a.kubelet_client_certificate = p("apiserver-kubelet-client.crt");
            a.kubelet_client_key = p("apiserver-kubelet-client.key");
            a.kubelet_certificate_authority = p("ca.crt");
            a.service_account_signing_key_file = p("sa.key");
            a.service_account_key_file = vec![pki_dir.join("sa.pub")];
            a.insecure_port = free_port();
            tweak(a);
        })
        .await
    }

    async fn start_on(etcd: Etcd, args: rkube_apiserver::Args) -> anyhow::Result<TestApiserver> {
        let mut server = TestApiserver {
            etcd,
            args,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            insecure: None,
            registry: None,
            shutdown: CancellationToken::new(),
            task: None,
        };
        server.launch().await?;
        Ok(server)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let app = rkube_apiserver::App::build(self.args.clone()).await?;
        self.addr = app.local_addr();
        if self.addr.ip().is_unspecified() {
            // Listening on every address: clients use loopback.
            self.addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        self.insecure = app.insecure_addr();
        self.registry = Some(app.registry());
        if app.tls() && self.insecure.is_none() {
            anyhow::bail!("a test apiserver with TLS needs --insecure-port (0 picks none: use a free port)");
        }
        // A restart comes back on the same ports, so clients can follow it.
        self.args.port = self.addr.port();
        if let Some(insecure) = self.insecure {
            self.args.insecure_port = insecure.port();
        }
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(app.run(self.shutdown.clone())));
        let url = format!("http://{}/readyz", self.insecure.unwrap_or(self.addr));
        wait_for(Duration::from_secs(20), || {
            let url = url.clone();
            async move { http_get(&url).await.is_ok_and(|(code, _)| code == 200) }
        })
        .await
        .context("apiserver did not become ready")
    }

    /// A second apiserver on the same etcd with the same flags (which
    /// `tweak` may change) and its own port, as in a highly available
    /// control plane.
    pub async fn peer(&self, tweak: impl FnOnce(&mut rkube_apiserver::Args)) -> anyhow::Result<TestApiserver> {
        let mut args = self.args.clone();
        args.port = 0;
        tweak(&mut args);
        Self::start_on(self.etcd.handle(), args).await
    }

    /// Stops the apiserver and starts a new one on the same port and etcd.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }

    /// The server URL, for clients (https when the apiserver speaks TLS).
    pub fn url(&self) -> String {
        let scheme = if self.args.tls_cert_file.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The plain loopback port's URL, when the apiserver speaks TLS.
    pub fn insecure_url(&self) -> Option<String> {
        self.insecure.map(|a| format!("http://{a}"))
    }

    /// The running apiserver's registry (its authorizer, storage, ...).
    pub fn registry(&self) -> std::sync::Arc<rkube_apiserver::registry::Registry> {
        self.registry.clone().expect("a started apiserver has a registry")
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the apiserver and waits for it; etcd keeps running.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await??;
        }
        Ok(())
    }
}

impl Drop for TestApiserver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A directory removed with everything in it on Drop.
#[derive(Debug)]
pub struct ScratchDir(pub std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the real kubectl with `args` and no stdin: (success, stdout,
/// stderr). Async, so an in-process apiserver keeps serving meanwhile.
pub async fn kubectl(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = tokio::process::Command::new("kubectl").args(args).stdin(std::process::Stdio::null()).output().await?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A plain HTTP/1.1 GET: the status code and the body as text.
pub async fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    let r = http_request("GET", url, &[], b"").await?;
    Ok((r.code, String::from_utf8_lossy(&r.body).into_owned()))
}

/// An HTTP response read by [`http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub code: u16,
    /// The headers, names lower-cased, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The values of header `name` (lower case).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), with
/// `headers` such as `("Content-Type", "application/json")` and `body`.
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut conn = tokio::net::TcpStream::connect(host).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await?;
    // The server may answer (413) and close before reading all of a large
    // body: the answer is still there to read.
    let _ = conn.write_all(body).await;
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf).await;
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> anyhow::Result<HttpResponse> {
    // Headers end at the first blank line (CGI scripts may end it with a bare "\n").
    let find = |needle: &[u8]| buf.windows(needle.len()).position(|w| w == needle).map(|i| i + needle.len());
    let end = [find(b"\r\n\r\n"), find(b"\n\n")].into_iter().flatten().min().context("no end of headers")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.lines();
    let code = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok());
    let code = code.context("no HTTP status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let mut body = buf[end..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse { code, headers, body })
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").context("chunk size line")?;
        let size = std::str::from_utf8(&raw[..eol])?.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).context("chunk size")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).context("truncated chunk")?);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
