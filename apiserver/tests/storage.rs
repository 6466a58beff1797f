//! The etcd storage layer on real etcd: a cluster member dying moves
//! requests to another member, and a write sent again after its answer was
//! lost is recognized as done.

use rkube_apiserver::storage::{Storage, Write};
use rkube_testkit::{Etcd, EtcdCluster, wait_for};
use std::time::Duration;

#[tokio::test]
async fn requests_move_to_another_member_when_the_current_one_dies() -> anyhow::Result<()> {
    let mut cluster = EtcdCluster::start(3).await?;
    let storage = Storage::connect(&cluster.urls()).await?;
    wait_for(Duration::from_secs(30), || async { storage.current_revision().await.is_ok() }).await?;
    assert!(matches!(storage.create("/registry/t/a", b"a".to_vec(), &[]).await?, Write::Done(_)));

    // Requests go to the first member until it fails: kill it.
    cluster.members[0].stop();
    let Write::Done(rev) = storage.create("/registry/t/b", b"b".to_vec(), &[]).await? else {
        panic!("b was absent, so its create must succeed");
    };
    assert_eq!(storage.get("/registry/t/a").await?.map(|s| s.value.to_vec()), Some(b"a".to_vec()));
    let (items, _, _) = storage.list("/registry/t/", None, 0, 0).await?;
    assert_eq!(items.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["/registry/t/a", "/registry/t/b"]);
    // A watch opened now is on a live member and sees b.
    let mut watch = storage.watch("/registry/t/", rev).await?;
    let first_key = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // The first answer may only say the watch was created.
            match watch.message().await? {
                Some(resp) if resp.events().is_empty() => continue,
                Some(resp) => {
                    return anyhow::Ok(resp.events().first().and_then(|e| e.kv()).map(|kv| kv.key().to_vec()));
                }
                None => anyhow::bail!("the watch ended"),
            }
        }
    })
    .await??;
    assert_eq!(first_key, Some(b"/registry/t/b".to_vec()));

    // With a majority gone there is no leader: a request fails, naming etcd.
    cluster.members[1].stop();
    let e = storage.get("/registry/t/a").await.expect_err("no quorum");
    assert!(e.message.contains("etcd is unavailable"), "{}", e.message);
    Ok(())
}

#[tokio::test]
async fn a_write_that_finds_its_own_value_stored_succeeded() -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let storage = Storage::connect(&[etcd.url()]).await?;
    let Write::Done(first) = storage.create("/registry/t/x", b"v1".to_vec(), &[]).await? else {
        panic!("x was absent");
    };
    // The same value again (a create whose answer was lost, sent again):
    // done, at the revision that stored it.
    assert!(matches!(storage.create("/registry/t/x", b"v1".to_vec(), &[]).await?, Write::Done(r) if r == first));
    // Another value: the key is taken.
    assert!(
        matches!(storage.create("/registry/t/x", b"v2".to_vec(), &[]).await?, Write::Failed(Some(s)) if s.mod_revision == first)
    );
    // An update from a stale revision that would write what is stored: done.
    let Write::Done(second) = storage.update("/registry/t/x", first, b"v2".to_vec()).await? else {
        panic!("x was at {first}");
    };
    assert!(matches!(storage.update("/registry/t/x", first, b"v2".to_vec()).await?, Write::Done(r) if r == second));
    assert!(matches!(storage.update("/registry/t/x", first, b"v3".to_vec()).await?, Write::Failed(Some(_))));
    Ok(())
}
