//! Secrets encrypted at rest (`--encryption-provider-config`), on real etcd:
//! what etcd holds is ciphertext, clients see the plain object (get, list,
//! watch), data written before encryption stays readable, and a key
//! rotation reads the old key while writing the new one.

use futures::StreamExt;
use rkube_api::Reason;
use rkube_api::resource::lookup;
use rkube_client::{Client, ListParams};
use rkube_testkit::TestApiserver;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const K1: &str = "c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Pz8/Pz8="; // 32 bytes
const K2: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // 16 bytes
/// base64 of the secret's value: what must not be readable in etcd.
const DATA: &str = "aHVudGVyMg==";

fn secret(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "type": "Opaque", "data": {"password": DATA}}))
    .expect("serializes")
}

/// An EncryptionConfiguration for secrets with `providers` (YAML list items).
fn config(name: &str, providers: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("rkube-enc-{}-{name}.yaml", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
        ),
    )?;
    Ok(path)
}

fn aesgcm(keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys.iter().map(|(n, s)| format!("      - {{name: {n}, secret: \"{s}\"}}\n")).collect();
    format!("  - aesgcm:\n      keys:\n{}", keys.concat())
}

/// What etcd holds under a secret's key, read around the apiserver.
async fn raw(server: &TestApiserver, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut etcd = etcd_client::Client::connect([server.etcd.url()], None).await?;
    let resp = etcd.get(format!("/registry/secrets/default/{name}"), None).await?;
    Ok(resp.kvs().first().map(|kv| kv.value().to_vec()).unwrap_or_default())
}

async fn password(client: &Client, name: &str) -> rkube_api::Result<String> {
    let obj = client.get(lookup("secrets").expect("secrets"), "default", name).await?;
    let v: Value = serde_json::from_slice(&obj.json).expect("JSON");
    Ok(v["data"]["password"].as_str().unwrap_or_default().to_string())
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn secrets_are_ciphertext_in_etcd_and_keys_rotate() -> anyhow::Result<()> {
    let secrets = lookup("secrets")?;
    // Before encryption: a secret stored as plain JSON.
    let mut plain = TestApiserver::start().await?;
    Client::new(&plain.url())?.create(secrets, "default", secret("old")).await?;
    assert!(contains(&raw(&plain, "old").await?, DATA));
    plain.stop().await?;

    // aesgcm k1, identity to read what came before.
    let first = config("first", &(aesgcm(&[("k1", K1)]) + "  - identity: {}\n"))?;
    let mut one = plain.peer(|a| a.encryption_provider_config = Some(first.clone())).await?;
    let client = Client::new(&one.url())?;
    let mut watch = client.watch(secrets, "default", &ListParams::default(), "").await?;
    client.create(secrets, "default", secret("new")).await?;
    let stored = raw(&one, "new").await?;
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:k1:"), "{}", String::from_utf8_lossy(&stored));
    assert!(!contains(&stored, DATA) && !contains(&stored, "password"), "no plain text in etcd");
    assert_eq!(password(&client, "new").await?, DATA);
    assert_eq!(password(&client, "old").await?, DATA, "identity reads what was written before");
    let listed = client.list(secrets, "default", &ListParams::default()).await?;
    assert_eq!(listed.items.len(), 2);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), watch.next()).await?.expect("an event")?;
        let v: Value = serde_json::from_slice(&ev.object.json)?;
        seen.push((ev.object.name.clone(), v["data"]["password"].as_str().unwrap_or_default().to_string()));
    }
    seen.sort();
    assert_eq!(seen, [("new".to_string(), DATA.to_string()), ("old".to_string(), DATA.to_string())]);
    one.stop().await?;

    // Rotation: k2 first writes, k1 still reads.
    let second = config("second", &aesgcm(&[("k2", K2), ("k1", K1)]))?;
    let two = plain.peer(|a| a.encryption_provider_config = Some(second.clone())).await?;
    let client = Client::new(&two.url())?;
    assert_eq!(password(&client, "new").await?, DATA, "k1 reads what it sealed");
    // An update that changes nothing still writes a value sealed by an old
    // key (what `kubectl replace` of every secret relies on).
    let before = client.get(secrets, "default", "new").await?;
    let after = client.update(secrets, "default", "new", before.json.to_vec()).await?;
    assert_ne!(after.resource_version, before.resource_version, "written again");
    assert!(raw(&two, "new").await?.starts_with(b"k8s:enc:aesgcm:v1:k2:"), "rewritten with k2");
    let again = client.update(secrets, "default", "new", after.json.to_vec()).await?;
    assert_eq!(again.resource_version, after.resource_version, "sealed by the first key: no write");
    // Without identity, what is still plain is refused, saying why.
    let e = password(&client, "old").await.expect_err("no identity provider");
    assert_eq!(e.reason, Reason::InternalError);
    assert!(e.message.contains("stored unencrypted"), "{}", e.message);
    assert!(!e.message.contains(K1) && !e.message.contains(K2));
    for path in [first, second] {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

#[tokio::test]
async fn a_bad_encryption_configuration_stops_the_apiserver_naming_the_field() -> anyhow::Result<()> {
    let path = config("bad", &aesgcm(&[("k1", "c2hvcnQ=")]))?;
    let e = TestApiserver::start_with(|a| a.encryption_provider_config = Some(path.clone()))
        .await
        .expect_err("a 5-byte key");
    let text = format!("{e:#}");
    assert!(text.contains("resources[0].providers[0].aesgcm.keys[0].secret: must be 16, 24 or 32 bytes"), "{text}");
    std::fs::remove_file(path)?;
    Ok(())
}
