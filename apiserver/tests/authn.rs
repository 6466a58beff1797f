//! Authentication on a TLS apiserver (real etcd, certificates from
//! rkube-pki): client certificates and static tokens are users, anonymous
//! requests reach only the public endpoints, a wrong token or a foreign
//! certificate is refused, and the real kubectl works with the generated
//! kubeconfig.

use rkube_api::Reason;
use rkube_api::resource::lookup;
use rkube_client::config::{ClientConfig, Credentials};
use rkube_client::{Client, ListParams};
use rkube_pki::Pki;
use rkube_testkit::{ScratchDir as Scratch, TestApiserver, kubectl};
use std::path::Path;

/// A PKI for one node `n1`, a token file, and a TLS apiserver using them.
async fn secure_apiserver(name: &str) -> anyhow::Result<(TestApiserver, Scratch)> {
    let dir = Scratch(std::env::temp_dir().join(format!("rkube-authn-{}-{name}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let tokens = dir.0.join("tokens.csv");
    std::fs::write(&tokens, "s3cret-token,jane,42,\"dev,ops\"\n")?;
    let api = TestApiserver::start_secure(&dir.0.join("pki"), &["n1"], |a| a.token_auth_file = Some(tokens)).await?;
    Ok((api, dir))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("a PKI file")
}

/// Lists nodes: something the admin, nodes and the controller manager may do.
async fn list_nodes(client: &Client) -> rkube_api::Result<usize> {
    let info = lookup("nodes").expect("a known resource");
    Ok(client.list(info, "", &ListParams::default()).await?.items.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_tokens_authenticate_and_everyone_else_is_refused() -> anyhow::Result<()> {
    let (api, dir) = secure_apiserver("grpc").await?;
    let pki = dir.0.join("pki");
    assert!(api.url().starts_with("https://"), "{}", api.url());

    // The admin's and a node's kubeconfigs, as written.
    for user in ["admin", "node-n1", "controller-manager"] {
        let cfg = ClientConfig::from_kubeconfig(&pki.join(format!("{user}.kubeconfig")))?;
        let client = Client::from_config(&cfg)?;
        list_nodes(&client).await?;
    }

    let ca = Some(read(&pki.join("ca.crt")));
    let token =
        |t: &str| Credentials { certificate_authority: ca.clone(), token: Some(t.into()), ..Default::default() };
    // A static token: jane is known (no 401) but may not list nodes (403 naming her).
    let e = list_nodes(&Client::with_credentials(&api.url(), &token("s3cret-token"))?).await.expect_err("not allowed");
    assert_eq!(e.reason, Reason::Forbidden, "{e}");
    assert!(e.message.contains(r#"User "jane" cannot list resource "nodes""#), "{e}");

    // A wrong token and no credentials at all: 401 Unauthorized.
    for creds in [token("wrong"), Credentials { certificate_authority: ca.clone(), ..Default::default() }] {
        let e = list_nodes(&Client::with_credentials(&api.url(), &creds)?).await.expect_err("refused");
        assert_eq!((e.reason, e.message.as_str()), (Reason::Unauthorized, "Unauthorized"), "{e}");
    }

    // A certificate from another CA ends the handshake.
    let other = Scratch(dir.0.join("other"));
    Pki { dir: other.0.clone(), server: api.url(), ..Pki::default() }.ensure()?;
    let foreign = Credentials {
        certificate_authority: ca.clone(),
        client_certificate: Some(read(&other.0.join("admin.crt"))),
        client_key: Some(read(&other.0.join("admin.key"))),
        token: None,
        token_file: None,
    };
    let e = list_nodes(&Client::with_credentials(&api.url(), &foreign)?).await.expect_err("foreign cert");
    assert_ne!(e.reason, Reason::Unauthorized, "refused in the handshake, before any request: {e}");
    // A client that does not trust the server's CA does not talk to it.
    let untrusting = Credentials { certificate_authority: Some(read(&other.0.join("ca.crt"))), ..Default::default() };
    list_nodes(&Client::with_credentials(&api.url(), &untrusting)?).await.expect_err("untrusted server");
    // https without a CA is refused before connecting, naming what is missing.
    let e = Client::with_credentials(&api.url(), &Credentials::default()).expect_err("no CA");
    assert!(e.message.contains("certificate-authority"), "{e}");

    // The plain loopback port trusts its clients.
    let insecure = api.insecure_url().expect("an insecure port");
    list_nodes(&Client::new(&insecure)?).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_kubectl_works_with_the_generated_kubeconfig() -> anyhow::Result<()> {
    let (api, dir) = secure_apiserver("kubectl").await?;
    let pki = dir.0.join("pki");
    let admin = pki.join("admin.kubeconfig");
    let admin = admin.to_str().expect("a UTF-8 path");
    let (ok, out, err) = kubectl(&["--kubeconfig", admin, "get", "namespaces", "-o", "name"]).await?;
    assert!(ok && out.contains("namespace/kube-system"), "stdout: {out}\nstderr: {err}");

    let ca = pki.join("ca.crt");
    let ca = ca.to_str().expect("a UTF-8 path");
    let anonymous = ["--kubeconfig", "/dev/null", "--server", &api.url(), "--certificate-authority", ca];
    let (ok, out, err) = kubectl(&[&anonymous[..], &["--token", "wrong", "get", "--raw", "/healthz"]].concat()).await?;
    assert!(!ok && err.contains("Unauthorized"), "a wrong token is not anonymous: {out}\nstderr: {err}");

    // Without credentials (kubectl would ask for a user name first): an
    // HTTP/1.1 request over TLS reaches the public endpoints only.
    let ca_file = pki.join("ca.crt");
    let get = |path: &'static str, header: &'static str| https_get(api.addr(), &ca_file, path, header);
    assert!(get("/healthz", "").await?.starts_with("HTTP/1.1 200"));
    assert!(get("/version", "").await?.starts_with("HTTP/1.1 200"));
    let refused = get("/api/v1/namespaces/default/secrets", "").await?;
    assert!(refused.starts_with("HTTP/1.1 401") && refused.contains(r#""reason":"Unauthorized""#), "{refused}");
    let refused = get("/healthz", "Authorization: Bearer wrong\r\n").await?;
    assert!(refused.starts_with("HTTP/1.1 401"), "a wrong token is not anonymous: {refused}");
    Ok(())
}

/// One HTTP/1.1 GET over TLS, trusting `ca`: the whole response as text.
async fn https_get(addr: std::net::SocketAddr, ca: &Path, path: &str, headers: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls::{ClientConfig as TlsConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    for cert in rkube_client::tls::read_certificates(ca)? {
        roots.add(cert)?;
    }
    let config = TlsConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await?;
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: kubernetes\r\n{headers}Connection: close\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_decides_what_an_authenticated_user_may_do_over_grpc_and_rest() -> anyhow::Result<()> {
    let (api, dir) = secure_apiserver("rbac").await?;
    let pki = dir.0.join("pki");
    let admin = Client::from_config(&ClientConfig::from_kubeconfig(&pki.join("admin.kubeconfig"))?)?;
    let namespaces = lookup("namespaces").expect("a known resource");
    for ns in ["a", "b"] {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        admin.create(namespaces, "", serde_json::to_vec(&body)?).await?;
    }
    // jane (the static token) may view namespace a.
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "jane-view", "namespace": "a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]});
    admin.create(lookup("rolebindings").expect("served"), "a", serde_json::to_vec(&binding)?).await?;

    let ca = Some(read(&pki.join("ca.crt")));
    let creds = Credentials { certificate_authority: ca, token: Some("s3cret-token".into()), ..Default::default() };
    let jane = Client::with_credentials(&api.url(), &creds)?;
    let pods = lookup("pods").expect("a known resource");
    let secrets = lookup("secrets").expect("a known resource");
    // The binding reaches the authorizer through its watch: allow a moment.
    rkube_testkit::wait_for(std::time::Duration::from_secs(5), || async {
        jane.list(pods, "a", &ListParams::default()).await.is_ok()
    })
    .await?;
    let e = jane.list(secrets, "a", &ListParams::default()).await.expect_err("view reads no secrets");
    assert_eq!(e.reason, Reason::Forbidden);
    assert_eq!(
        e.message,
        r#"secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "a""#
    );
    jane.list(pods, "b", &ListParams::default()).await.expect_err("nothing in b");
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let e = jane.create(pods, "a", serde_json::to_vec(&pod)?).await.expect_err("view creates nothing");
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "jane" cannot create resource "pods" in API group "" in the namespace "a""#
    );

    // The same over REST, with the real kubectl.
    let ca = pki.join("ca.crt");
    let as_jane = [
        "--kubeconfig",
        "/dev/null",
        "--server",
        &api.url(),
        "--certificate-authority",
        ca.to_str().expect("UTF-8"),
        "--token",
        "s3cret-token",
    ];
    let (ok, out, err) = kubectl(&[&as_jane[..], &["get", "pods", "-n", "a"]].concat()).await?;
    assert!(ok, "stdout: {out}\nstderr: {err}");
    let (ok, _, err) = kubectl(&[&as_jane[..], &["get", "secrets", "-n", "a"]].concat()).await?;
    assert!(
        !ok && err.contains(r#"User "jane" cannot list resource "secrets" in API group "" in the namespace "a""#),
        "{err}"
    );
    for (what, expect) in [(["list", "pods"], "yes"), (["create", "pods"], "no"), (["get", "secrets"], "no")] {
        let (_, out, err) = kubectl(&[&as_jane[..], &["auth", "can-i", what[0], what[1], "-n", "a"]].concat()).await?;
        assert_eq!(out.trim(), expect, "can-i {what:?}: {err}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_garbage_and_huge_headers_are_refused_without_harm() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (api, dir) = secure_apiserver("faults").await?;
    let ca = dir.0.join("pki").join("ca.crt");
    // A client that connects and never starts its handshake holds up no one.
    let mut stalled = tokio::net::TcpStream::connect(api.addr()).await?;
    let started = std::time::Instant::now();
    assert!(https_get(api.addr(), &ca, "/healthz", "").await?.starts_with("HTTP/1.1 200"));
    // Bytes that are not TLS end the connection.
    let mut garbage = tokio::net::TcpStream::connect(api.addr()).await?;
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), garbage.read(&mut buf)).await?.unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("200 OK"), "plain HTTP is not served on the TLS port");
    // A header of a megabyte is refused, not buffered.
    let huge = format!("X-Filler: {}\r\n", "a".repeat(1 << 20));
    let answer = https_get(api.addr(), &ca, "/healthz", &huge).await.unwrap_or_default();
    assert!(!answer.starts_with("HTTP/1.1 200"), "{}", &answer[..answer.len().min(200)]);
    assert!(https_get(api.addr(), &ca, "/healthz", "").await?.starts_with("HTTP/1.1 200"));
    // The stalled connection is closed once the handshake time is up.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(15), stalled.read(&mut buf)).await?;
    assert!(matches!(closed, Ok(0) | Err(_)), "closed, not answered: {closed:?}");
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(9), "closed after the handshake limit, not at once: {waited:?}");
    Ok(())
}

#[tokio::test]
async fn without_certificates_the_apiserver_starts_only_when_told_plain_http() -> anyhow::Result<()> {
    let parse = |extra: &[&str]| {
        let args = ["rkube-apiserver", "--etcd-servers", "http://127.0.0.1:1", "--port", "0"];
        <rkube_apiserver::Args as clap::Parser>::try_parse_from(args.iter().chain(extra))
    };
    let err = format!("{:#}", rkube_apiserver::App::build(parse(&[])?).await.expect_err("no TLS, no --plain-http"));
    assert!(err.contains("--tls-cert-file") && err.contains("--plain-http"), "{err}");
    let both = parse(&["--plain-http", "--tls-cert-file", "a.crt", "--tls-private-key-file", "a.key"]);
    let err = both.expect_err("both").to_string();
    assert!(err.contains("--plain-http") && err.contains("--tls-cert-file"), "{err}");
    // Asked for, plain HTTP serves (lazily connected to an etcd that is not there).
    rkube_apiserver::App::build(parse(&["--plain-http"])?).await?;
    Ok(())
}
