//! The apiserver on an etcd that serves TLS and requires client
//! certificates (`--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`), with
//! the certificates rkube-certs makes: the apiserver stores and reads through
//! it, a client without a certificate from etcd's own CA is turned away, and
//! flags that do not fit the endpoints are refused naming the flag.

use rkube_api::resource::lookup;
use rkube_apiserver::node_proxy::tls_config;
use rkube_apiserver::storage::Storage;
use rkube_client::Client;
use rkube_testkit::{Etcd, ScratchDir, TestApiserver};
use serde_json::json;
use std::path::Path;

fn pki(name: &str) -> anyhow::Result<ScratchDir> {
    let dir = ScratchDir(std::env::temp_dir().join(format!("rkube-etcd-tls-{}-{name}", std::process::id())));
    rkube_pki::Pki { dir: dir.0.clone(), server: "https://127.0.0.1:6443".into(), ..rkube_pki::Pki::default() }
        .ensure()?;
    Ok(dir)
}

#[tokio::test]
async fn the_apiserver_stores_through_an_etcd_that_requires_client_certificates() -> anyhow::Result<()> {
    let pki = pki("store")?;
    let dir = pki.0.as_path();
    let etcd = Etcd::start_tls(dir).await?;
    let url = etcd.url();
    assert!(url.starts_with("https://"), "{url}");

    // A client that trusts etcd's CA but shows no certificate, or one from
    // the cluster CA (a node's or the admin's): etcd turns it away.
    let anonymous =
        Storage::connect_tls(std::slice::from_ref(&url), Some(tls_config(&dir.join("etcd/ca.crt"), None)?)).await?;
    assert!(anonymous.get("/registry/x").await.is_err(), "no client certificate");
    let admin = Some((dir.join("admin.crt"), dir.join("admin.key")));
    let cluster_ca_client =
        tls_config(&dir.join("etcd/ca.crt"), admin.as_ref().map(|(c, k)| (c.as_path(), k.as_path())))?;
    let foreign = Storage::connect_tls(std::slice::from_ref(&url), Some(cluster_ca_client)).await?;
    assert!(foreign.get("/registry/x").await.is_err(), "a certificate of the cluster CA is not etcd's");
    // Plain HTTP to the TLS port gets nowhere either.
    let plain = Storage::connect(&[url.replace("https://", "http://")]).await?;
    assert!(plain.get("/registry/x").await.is_err(), "plain http");

    let server = TestApiserver::start_on_etcd(etcd, |a| {
        a.etcd_cafile = Some(dir.join("etcd/ca.crt"));
        a.etcd_certfile = Some(dir.join("apiserver-etcd-client.crt"));
        a.etcd_keyfile = Some(dir.join("apiserver-etcd-client.key"));
    })
    .await?;
    let client = Client::new(&server.url())?;
    let configmaps = lookup("configmaps")?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "over-tls"}, "data": {"k": "v"}});
    client.create(configmaps, "default", serde_json::to_vec(&cm)?).await?;
    let got = client.get(configmaps, "default", "over-tls").await?;
    let got: serde_json::Value = serde_json::from_slice(&got.json)?;
    assert_eq!(got["data"]["k"], "v");

    // The apiserver's own client certificate reads it straight from etcd.
    let identity = (dir.join("apiserver-etcd-client.crt"), dir.join("apiserver-etcd-client.key"));
    let tls = tls_config(&dir.join("etcd/ca.crt"), Some((identity.0.as_path(), identity.1.as_path())))?;
    let direct = Storage::connect_tls(&[url], Some(tls)).await?;
    let stored = direct.get("/registry/configmaps/default/over-tls").await?.expect("stored in etcd");
    assert!(String::from_utf8_lossy(&stored.value).contains("over-tls"));
    Ok(())
}

async fn build_error(dir: &Path, servers: &str, cafile: bool) -> String {
    let mut args = vec!["rkube-apiserver", "--etcd-servers", servers, "--port", "0", "--plain-http"];
    let ca = dir.join("etcd/ca.crt").display().to_string();
    if cafile {
        args.extend(["--etcd-cafile", &ca]);
    }
    let args = <rkube_apiserver::Args as clap::Parser>::try_parse_from(args).expect("flags parse");
    match rkube_apiserver::App::build(args).await {
        Ok(_) => panic!("{servers} with cafile={cafile} was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn endpoints_and_tls_flags_that_do_not_fit_are_refused() -> anyhow::Result<()> {
    let pki = pki("flags")?;
    let err = build_error(&pki.0, "https://127.0.0.1:1", false).await;
    assert!(err.contains("https://127.0.0.1:1") && err.contains("--etcd-cafile"), "{err}");
    let err = build_error(&pki.0, "http://127.0.0.1:1", true).await;
    assert!(err.contains("plain http") && err.contains("https://"), "{err}");
    let err = build_error(&pki.0, "unix://x", false).await;
    assert!(err.contains("unknown scheme"), "{err}");
    // A certificate without its key, or a key without its certificate.
    let args = ["rkube-apiserver", "--etcd-cafile", "ca.crt", "--etcd-certfile", "c.crt"];
    let err = <rkube_apiserver::Args as clap::Parser>::try_parse_from(args).expect_err("no key").to_string();
    assert!(err.contains("--etcd-keyfile"), "{err}");
    let err = <rkube_apiserver::Args as clap::Parser>::try_parse_from(["rkube-apiserver", "--etcd-keyfile", "k"])
        .expect_err("no cert")
        .to_string();
    assert!(err.contains("--etcd-certfile"), "{err}");
    // A CA file that is not there names itself.
    let missing = pki.0.join("nope.crt").display().to_string();
    let args = [
        "rkube-apiserver",
        "--plain-http",
        "--etcd-servers",
        "https://127.0.0.1:1",
        "--port",
        "0",
        "--etcd-cafile",
        &missing,
    ];
    let args = <rkube_apiserver::Args as clap::Parser>::try_parse_from(args)?;
    let err = format!("{:#}", rkube_apiserver::App::build(args).await.expect_err("missing CA file"));
    assert!(err.contains("nope.crt") && err.contains("--etcd-cafile"), "{err}");
    Ok(())
}
