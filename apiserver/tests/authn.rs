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
use rkube_testkit::{TestApiserver, free_port};
use std::path::{Path, PathBuf};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A PKI for one node `n1`, a token file, and a TLS apiserver using them.
async fn secure_apiserver(name: &str) -> anyhow::Result<(TestApiserver, Scratch)> {
    let dir = Scratch(std::env::temp_dir().join(format!("rkube-authn-{}-{name}", std::process::id())));
    let port = free_port();
    let pki = Pki {
        dir: dir.0.join("pki"),
        server: format!("https://127.0.0.1:{port}"),
        nodes: vec!["n1".into()],
        ..Pki::default()
    };
    pki.ensure()?;
    let tokens = dir.0.join("tokens.csv");
    std::fs::write(&tokens, "s3cret-token,jane,42,\"dev,ops\"\n")?;
    let p = pki.dir.clone();
    let api = TestApiserver::start_with(|a| {
        a.port = port;
        a.tls_cert_file = Some(p.join("apiserver.crt"));
        a.tls_private_key_file = Some(p.join("apiserver.key"));
        a.client_ca_file = Some(p.join("ca.crt"));
        a.token_auth_file = Some(tokens);
        a.insecure_port = free_port();
    })
    .await?;
    Ok((api, dir))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("a PKI file")
}

async fn list_namespaces(client: &Client) -> rkube_api::Result<usize> {
    let info = lookup("namespaces").expect("a known resource");
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
        assert!(list_namespaces(&client).await? >= 3, "{user} lists the system namespaces");
    }

    // A static token.
    let ca = Some(read(&pki.join("ca.crt")));
    let token =
        |t: &str| Credentials { certificate_authority: ca.clone(), token: Some(t.into()), ..Default::default() };
    list_namespaces(&Client::with_credentials(&api.url(), &token("s3cret-token"))?).await?;

    // A wrong token and no credentials at all: 401 Unauthorized.
    for creds in [token("wrong"), Credentials { certificate_authority: ca.clone(), ..Default::default() }] {
        let e = list_namespaces(&Client::with_credentials(&api.url(), &creds)?).await.expect_err("refused");
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
    let e = list_namespaces(&Client::with_credentials(&api.url(), &foreign)?).await.expect_err("foreign cert");
    assert_ne!(e.reason, Reason::Unauthorized, "refused in the handshake, before any request: {e}");
    // A client that does not trust the server's CA does not talk to it.
    let untrusting = Credentials { certificate_authority: Some(read(&other.0.join("ca.crt"))), ..Default::default() };
    list_namespaces(&Client::with_credentials(&api.url(), &untrusting)?).await.expect_err("untrusted server");
    // https without a CA is refused before connecting, naming what is missing.
    let e = Client::with_credentials(&api.url(), &Credentials::default()).expect_err("no CA");
    assert!(e.message.contains("certificate-authority"), "{e}");

    // The plain loopback port trusts its clients.
    let insecure = api.insecure_url().expect("an insecure port");
    list_namespaces(&Client::new(&insecure)?).await?;
    Ok(())
}

/// Runs the real kubectl, returning (success, stdout, stderr).
async fn kubectl(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    // Async: a blocking wait would starve the in-process apiserver.
    let out = tokio::process::Command::new("kubectl").args(args).stdin(std::process::Stdio::null()).output().await?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
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
