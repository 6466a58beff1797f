//! rkube-apiserver: the only way in to the cluster's state and the only
//! writer of etcd.
//!
//! Start with [`App`]: it binds one port that serves the gRPC API
//! (`rkube.v1.Resources`, see `grpc.rs`), Kubernetes' REST API for kubectl
//! and the official clients (`rest/`), and `/healthz`, `/readyz`, `/livez`
//! and `/metrics`. The API machinery underneath is
//! transport-free: [`registry::Registry`] (create/get/list/update/patch/
//! delete/watch/bind) over [`storage::Storage`] (etcd), with per-kind rules
//! from `rkube-api`, [`admission`] plugins, and one shared etcd watch per
//! resource in [`watch`]. [`authz`] holds the RBAC authorizer, its
//! bootstrap policy and the access reviews.
//!
//! With `--tls-cert-file` the port speaks TLS and every request is
//! authenticated ([`authn`]): client certificates signed by
//! `--client-ca-file`, tokens from `--token-auth-file`, and service account
//! tokens ([`service_account_token`]: signed with
//! `--service-account-signing-key-file`, issued by the TokenRequest
//! subresource). Without it the port is plain HTTP and trusts everyone (a
//! warning says so).

pub mod admission;
pub mod authn;
pub mod authz;
pub mod codec;
pub mod default_tolerations;
pub mod encryption;
pub mod grpc;
pub mod master;
pub mod metrics;
pub mod node_proxy;
pub mod openapi;
pub mod protobuf;
pub mod registry;
pub mod resource_metrics;
pub mod rest;
pub mod serve;
pub mod service_account;
pub mod service_account_token;
pub mod service_alloc;
pub mod storage;
pub mod watch;

use admission::{Admission, NamespaceCache, Plugin};
use anyhow::Context as _;
use axum::routing::get;
use metrics::Metrics;
use node_proxy::NodeProxy;
use registry::Registry;
use rkube_proto::v1::resources_server::ResourcesServer;
use service_alloc::{NodePorts, ServiceAllocator, ServiceIps};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use storage::Storage;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Largest gRPC message accepted or sent (a List of many objects).
pub const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// Command-line flags, named after kube-apiserver's.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "rkube-apiserver", version, about = "The rkube API server: the cluster's state, on etcd.")]
pub struct Args {
    /// etcd endpoints, comma-separated.
    #[arg(long, env = "RKUBE_ETCD_SERVERS", value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_servers: Vec<String>,
    /// The CA that signed etcd's serving certificate: talk to etcd over
    /// TLS (the `--etcd-servers` are then https).
    #[arg(long, env = "RKUBE_ETCD_CAFILE")]
    pub etcd_cafile: Option<std::path::PathBuf>,
    /// The client certificate presented to etcd (etcd's `--client-cert-auth`).
    #[arg(long, env = "RKUBE_ETCD_CERTFILE", requires_all = ["etcd_keyfile", "etcd_cafile"])]
    pub etcd_certfile: Option<std::path::PathBuf>,
    /// The key of `--etcd-certfile`.
    #[arg(long, env = "RKUBE_ETCD_KEYFILE", requires = "etcd_certfile")]
    pub etcd_keyfile: Option<std::path::PathBuf>,
    /// An EncryptionConfiguration file (apiserver.config.k8s.io/v1): which
    /// resources are encrypted in etcd, and with which keys.
    #[arg(long, env = "RKUBE_ENCRYPTION_PROVIDER_CONFIG")]
    pub encryption_provider_config: Option<std::path::PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "RKUBE_BIND_ADDRESS", default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// The address pods reach the apiserver at (the endpoint of the
    /// `kubernetes` Service). When the bind address is loopback, the API is
    /// also served on this address. Default: the bind address, unless it
    /// is loopback or unspecified (then the Service has no endpoints).
    #[arg(long, env = "RKUBE_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<IpAddr>,
    /// Port for the API (gRPC) and health/metrics (HTTP); 0 picks a free one.
    #[arg(long, env = "RKUBE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Range ClusterIPs of Services are allocated from.
    #[arg(long, env = "RKUBE_SERVICE_CLUSTER_IP_RANGE", default_value = "10.254.0.0/16")]
    pub service_cluster_ip_range: String,
    /// Range node ports of NodePort Services are allocated from (first-last).
    #[arg(long, env = "RKUBE_SERVICE_NODE_PORT_RANGE", default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// Admission plugins, comma-separated, in order.
    #[arg(
        long,
        env = "RKUBE_ENABLE_ADMISSION_PLUGINS",
        value_delimiter = ',',
        default_value = "NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,NodeRestriction,ResourceQuota"
    )]
    pub enable_admission_plugins: Vec<String>,
    /// How long pods tolerate `node.kubernetes.io/not-ready:NoExecute` when
    /// they do not say (DefaultTolerationSeconds).
    #[arg(long, env = "RKUBE_DEFAULT_NOT_READY_TOLERATION_SECONDS", default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// How long pods tolerate `node.kubernetes.io/unreachable:NoExecute` when
    /// they do not say (DefaultTolerationSeconds).
    #[arg(long, env = "RKUBE_DEFAULT_UNREACHABLE_TOLERATION_SECONDS", default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
    /// Log format: text or json.
    #[arg(long, env = "RKUBE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// The serving certificate (PEM, the leaf first): the port speaks TLS
    /// (gRPC and REST) and requests are authenticated. Required, unless
    /// --plain-http.
    #[arg(long, env = "RKUBE_TLS_CERT_FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// The serving certificate's private key (PEM).
    #[arg(long, env = "RKUBE_TLS_PRIVATE_KEY_FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<std::path::PathBuf>,
    /// Serve the port as plain HTTP instead, trusting every client as an
    /// administrator: for tests and a sandbox no one else reaches. Off by
    /// default; refused beside --tls-cert-file.
    #[arg(long, env = "RKUBE_PLAIN_HTTP", conflicts_with = "tls_cert_file")]
    pub plain_http: bool,
    /// A CA bundle (PEM): client certificates it signed authenticate their
    /// CN as the user and each O as a group.
    #[arg(long, env = "RKUBE_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub client_ca_file: Option<std::path::PathBuf>,
    /// Static bearer tokens, CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long, env = "RKUBE_TOKEN_AUTH_FILE", requires = "tls_cert_file")]
    pub token_auth_file: Option<std::path::PathBuf>,
    /// The private key (PEM: PKCS#8 ECDSA P-256 or RSA, or PKCS#1 RSA) that
    /// signs service account tokens. Without it (and without
    /// --service-account-key-file) the apiserver neither issues nor accepts
    /// them, and pods get no token volume.
    #[arg(long, env = "RKUBE_SERVICE_ACCOUNT_SIGNING_KEY_FILE")]
    pub service_account_signing_key_file: Option<std::path::PathBuf>,
    /// PEM files of public keys (or certificates, or private keys) that
    /// verify service account tokens; may repeat. Default: the signing
    /// key's public key.
    #[arg(long, env = "RKUBE_SERVICE_ACCOUNT_KEY_FILE", value_delimiter = ',')]
    pub service_account_key_file: Vec<std::path::PathBuf>,
    /// The `iss` of service account tokens; may repeat: the first is
    /// issued, all are accepted.
    #[arg(
        long,
        env = "RKUBE_SERVICE_ACCOUNT_ISSUER",
        value_delimiter = ',',
        default_value = service_account_token::DEFAULT_ISSUER
    )]
    pub service_account_issuer: Vec<String>,
    /// Audiences the apiserver accepts in tokens, and gives tokens that
    /// ask for none. Default: the first issuer.
    #[arg(long, env = "RKUBE_API_AUDIENCES", value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// The longest lifetime of a requested token (`3600s`, `90m`, `48h`);
    /// longer requests get this. Default: no cap but 2^32 s.
    #[arg(long, env = "RKUBE_SERVICE_ACCOUNT_MAX_TOKEN_EXPIRATION", value_parser = parse_duration_seconds)]
    pub service_account_max_token_expiration: Option<i64>,
    /// With TLS on: a plain-HTTP port on --insecure-bind-address whose
    /// clients are trusted as system:masters (0: none, the default).
    #[arg(long, env = "RKUBE_INSECURE_PORT", default_value_t = 0)]
    pub insecure_port: u16,
    /// The address of --insecure-port; only loopback is accepted.
    #[arg(long, env = "RKUBE_INSECURE_BIND_ADDRESS", default_value = "127.0.0.1")]
    pub insecure_bind_address: IpAddr,
    /// The client certificate (PEM) the apiserver shows kubelets (logs,
    /// exec, stats); with it, kubelets are reached over TLS.
    #[arg(long, env = "RKUBE_KUBELET_CLIENT_CERTIFICATE", requires_all = ["kubelet_client_key", "kubelet_certificate_authority"])]
    pub kubelet_client_certificate: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "RKUBE_KUBELET_CLIENT_KEY", requires = "kubelet_client_certificate")]
    pub kubelet_client_key: Option<std::path::PathBuf>,
    /// The CA that signs the kubelets' serving certificates.
    #[arg(long, env = "RKUBE_KUBELET_CERTIFICATE_AUTHORITY", requires = "kubelet_client_certificate")]
    pub kubelet_certificate_authority: Option<std::path::PathBuf>,
}

/// A built apiserver, bound and ready to run.
pub struct App {
    listener: TcpListener,
    /// The listener on the advertised address, when the bind address is
    /// loopback.
    advertised: Option<TcpListener>,
    /// The loopback-only plain port, with TLS on.
    insecure: Option<TcpListener>,
    tls: Option<rkube_client::tls::TlsAcceptor>,
    authn: Arc<authn::Authenticator>,
    /// How kubelets are reached (None: plain HTTP).
    kubelet_tls: Option<tonic::transport::ClientTlsConfig>,
    master: master::MasterService,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("addr", &self.listener.local_addr().ok()).finish()
    }
}

impl App {
    /// Checks the flags, connects to etcd (lazily) and binds the port.
    pub async fn build(args: Args) -> anyhow::Result<App> {
        match (&args.tls_cert_file, args.plain_http) {
            (None, false) => anyhow::bail!(
                "no --tls-cert-file and --tls-private-key-file: the apiserver serves TLS only \
                 (rkube-certs makes the certificates); --plain-http serves plain HTTP trusting every client, for tests"
            ),
            (Some(_), true) => anyhow::bail!("--plain-http and --tls-cert-file: choose one"),
            _ => {}
        }
        let plugins = args
            .enable_admission_plugins
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Plugin::parse(p.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let services = ServiceAllocator::new(
            ServiceIps::parse(&args.service_cluster_ip_range).map_err(anyhow::Error::msg)?,
            NodePorts::parse(&args.service_node_port_range).map_err(anyhow::Error::msg)?,
        );
        let encryption = match &args.encryption_provider_config {
            Some(path) => encryption::Encryption::from_file(path)?,
            None => encryption::Encryption::none(),
        };
        let etcd_tls = match &args.etcd_cafile {
            Some(ca) => {
                let identity = args.etcd_certfile.as_deref().zip(args.etcd_keyfile.as_deref());
                Some(node_proxy::tls_config(ca, identity).context("--etcd-cafile/--etcd-certfile/--etcd-keyfile")?)
            }
            None => None,
        };
        let storage = Storage::connect_tls(&args.etcd_servers, etcd_tls)
            .await
            .context("connecting to etcd")?
            .with_encryption(encryption);
        let shutdown = CancellationToken::new();
        let tokens = service_account_token::ServiceAccountTokens::from_options(&service_account_token::TokenOptions {
            signing_key_file: args.service_account_signing_key_file.clone(),
            key_files: args.service_account_key_file.clone(),
            issuers: args.service_account_issuer.clone(),
            api_audiences: args.api_audiences.clone(),
            max_expiration_seconds: args.service_account_max_token_expiration,
        })?
        .map(Arc::new);
        let admission = Admission::new(plugins, NamespaceCache::new(storage.clone()))
            .with_token_volumes(tokens.as_ref().is_some_and(|t| t.issues()))
            .with_default_tolerations(default_tolerations::DefaultTolerationSeconds {
                not_ready: args.default_not_ready_toleration_seconds,
                unreachable: args.default_unreachable_toleration_seconds,
            });
        let registry = Arc::new(
            Registry::new(storage, admission, services, shutdown.clone()).with_service_account_tokens(tokens.clone()),
        );
        let addr = SocketAddr::new(args.bind_address, args.port);
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let port = listener.local_addr()?.port();
        let advertise = master::advertise_address(args.advertise_address, args.bind_address);
        let advertised = match advertise {
            Some(ip) if args.bind_address.is_loopback() => {
                let addr = SocketAddr::new(ip, port);
                Some(TcpListener::bind(addr).await.with_context(|| format!("binding the advertised address {addr}"))?)
            }
            _ => None,
        };
        let master = master::MasterService { cluster_ip: services.ips().first(), advertise, port };
        let tls = match (&args.tls_cert_file, &args.tls_private_key_file) {
            (Some(cert), Some(key)) => {
                let config = rkube_client::tls::server_config(cert, key, args.client_ca_file.as_deref())?;
                Some(rkube_client::tls::TlsAcceptor::from(Arc::new(config)))
            }
            _ => {
                warn!(
                    "--plain-http: serving plain HTTP and trusting every client; anyone who reaches {addr} can read and change everything"
                );
                None
            }
        };
        let static_tokens = match &args.token_auth_file {
            Some(path) => authn::Tokens::from_file(path)?,
            None => authn::Tokens::default(),
        };
        let insecure = match args.insecure_port {
            0 => None,
            _ if tls.is_none() => {
                anyhow::bail!("--insecure-port needs --tls-cert-file: without TLS the port is plain already")
            }
            _ if !args.insecure_bind_address.is_loopback() => anyhow::bail!(
                "--insecure-bind-address {}: the insecure port trusts every client, so only a loopback address is accepted",
                args.insecure_bind_address
            ),
            p => {
                let addr = SocketAddr::new(args.insecure_bind_address, p);
                Some(TcpListener::bind(addr).await.with_context(|| format!("binding the insecure port {addr}"))?)
            }
        };
        let kubelet_tls =
            match (&args.kubelet_client_certificate, &args.kubelet_client_key, &args.kubelet_certificate_authority) {
                (Some(cert), Some(key), Some(ca)) => Some(node_proxy::tls_config(ca, Some((cert, key)))?),
                _ => None,
            };
        Ok(App {
            listener,
            advertised,
            insecure,
            tls,
            kubelet_tls,
            authn: Arc::new(
                authn::Authenticator::new(static_tokens)
                    .with_service_account_tokens(tokens.map(|t| (t, registry.clone()))),
            ),
            master,
            registry,
            metrics: Arc::new(Metrics::default()),
            shutdown,
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The address of the plain loopback port (`--insecure-port`), if any.
    pub fn insecure_addr(&self) -> Option<SocketAddr> {
        self.insecure.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Whether the port speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The registry (for in-process use by tests and benchmarks).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops every task.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        let internal = self.shutdown.clone();
        let ready = Arc::new(AtomicBool::new(false));
        self.registry.start(&tracker);
        {
            let registry = self.registry.clone();
            let ready = ready.clone();
            let stop = internal.clone();
            let master = self.master;
            tracker.spawn(async move {
                let mut delay = Duration::from_millis(100);
                loop {
                    let ensured = admission::bootstrap(async {
                        registry.ensure_system_namespaces().await?;
                        authz::bootstrap::ensure(&registry).await
                    });
                    match ensured.await {
                        Ok(_) => {
                            registry.authorizer().policy_bootstrapped();
                            break;
                        }
                        Err(e) => warn!(
                            error = %e.message,
                            "waiting for etcd to create the system namespaces and the bootstrap RBAC policy"
                        ),
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                ready.store(true, Ordering::SeqCst);
                rkube_client::daemon::notify_ready();
                loop {
                    if let Err(e) = admission::bootstrap(master.reconcile(&registry)).await {
                        warn!(error = %e.message, "reconciling the kubernetes service");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(master::RECONCILE_INTERVAL) => {}
                    }
                }
                match tokio::time::timeout(Duration::from_secs(2), master.release(&registry)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(error = %e.message, "could not drop this apiserver from the kubernetes endpoints")
                    }
                    Err(_) => warn!(
                        "etcd did not answer in 2 s; this apiserver leaves the kubernetes endpoints when its lease ends"
                    ),
                }
            });
        }
        let proxy = Arc::new(NodeProxy::new(self.registry.clone(), self.kubelet_tls.clone()));
        let http = {
            let registry = self.registry.clone();
            let metrics = self.metrics.clone();
            let ready = ready.clone();
            let render = metrics.clone();
            axum::Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/livez", get(|| async { "ok" }))
                .route(
                    "/readyz",
                    get(move || {
                        let registry = registry.clone();
                        let ready = ready.clone();
                        async move { readyz(&registry, &ready).await }
                    }),
                )
                .route(
                    "/metrics",
                    get(move || std::future::ready(rkube_client::daemon::metrics_response(render.render()))),
                )
                .merge(rest::router(self.registry.clone(), proxy.clone(), metrics))
        };
        let api = ResourcesServer::new(grpc::GrpcApi::new(self.registry.clone(), self.metrics.clone(), proxy))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let app = tonic::service::Routes::from(http)
            .add_service(api)
            .prepare()
            .into_axum_router()
            .layer(axum::middleware::from_fn_with_state(self.registry.authorizer().clone(), authz::authorize))
            .layer(axum::middleware::from_fn_with_state(self.authn.clone(), authn::authenticate));
        let addr = self.local_addr();
        info!(%addr, tls = self.tls.is_some(), "rkube-apiserver serving");
        let advertised = self.advertised.map(|l| {
            info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "also serving on the advertised address");
            tokio_stream::wrappers::TcpListenerStream::new(l)
        });
        let advertised = match advertised {
            Some(stream) => futures::future::Either::Left(stream),
            None => futures::future::Either::Right(futures::stream::empty()),
        };
        let incoming =
            futures::stream::select(tokio_stream::wrappers::TcpListenerStream::new(self.listener), advertised);
        let insecure = self.insecure.map(|l| {
            info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "also serving plain HTTP (trusted) on the insecure port");
            serve::serve(tokio_stream::wrappers::TcpListenerStream::new(l), app.clone(), None, shutdown.clone())
        });
        let insecure = async move {
            if let Some(serve) = insecure {
                serve.await
            }
        };
        let serve = futures::future::join(serve::serve(incoming, app, self.tls, shutdown.clone()), insecure);
        let serve = async move {
            serve.await;
        };
        // Watches are long-lived: end them when shutting down so the server can drain.
        tokio::select! {
            () = serve => {}
            _ = async { shutdown.cancelled().await; internal.cancel(); std::future::pending::<()>().await } => {}
        }
        internal.cancel();
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await.is_err() {
            warn!("some tasks did not stop within 10s");
        }
        Ok(())
    }
}

/// Seconds from `3600`, `3600s`, `90m` or `48h`.
fn parse_duration_seconds(text: &str) -> Result<i64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text}: want a number of seconds, or one with the unit s, m or h")),
    };
    number.parse::<i64>().map(|n| n.saturating_mul(unit)).map_err(|e| format!("{text}: {e}"))
}

async fn readyz(registry: &Registry, ready: &AtomicBool) -> (axum::http::StatusCode, String) {
    if !ready.load(Ordering::SeqCst) {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "bootstrap not finished\n".into());
    }
    match registry.storage().healthy().await {
        Ok(()) => (axum::http::StatusCode::OK, "ok\n".into()),
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("etcd: {}\n", e.message)),
    }
}
