//! A client given several apiservers (`--server a,b`) moves to the next
//! when the current one cannot be reached.

use k8s_openapi::api::core::v1::ConfigMap;
use rkube_client::{Api, Client, ListParams};
use rkube_testkit::{TestApiserver, free_port};

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": name}})).expect("a ConfigMap")
}

#[tokio::test]
async fn calls_move_to_the_next_apiserver_when_the_current_one_stops() -> anyhow::Result<()> {
    let mut a = TestApiserver::start().await?;
    let b = a.peer(|_| {}).await?;
    let client = Client::new(&format!("{},{}", a.url(), b.url()))?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    maps.create(&config_map("one")).await?;
    assert_eq!(client.server(), a.url(), "the first server serves while it is up");

    a.stop().await?;
    // The connection to a fails, so nothing was sent: the create goes to b.
    maps.create(&config_map("two")).await?;
    assert_eq!(client.server(), b.url(), "b stays current after serving");
    let mut names: Vec<String> =
        maps.list(&ListParams::default()).await?.items.into_iter().filter_map(|m| m.metadata.name).collect();
    names.sort();
    assert_eq!(names, ["one", "two"], "each create stored once");
    Ok(())
}

#[tokio::test]
async fn a_dead_first_server_is_skipped_and_when_all_are_dead_each_is_named() -> anyhow::Result<()> {
    let live = TestApiserver::start().await?;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let client = Client::new(&format!("{dead}, {}", live.url()))?;
    assert_eq!(client.version().await?["major"], "1");
    assert_eq!(client.server(), live.url());

    let other = format!("http://127.0.0.1:{}", free_port());
    let e = Client::new(&format!("{dead},{other}"))?.version().await.expect_err("nothing listens");
    assert_eq!(e.reason, rkube_api::Reason::ServiceUnavailable, "{e:?}");
    assert!(e.message.contains(&dead) && e.message.contains(&other), "{}", e.message);

    let e = Client::new(" , ").expect_err("no URL");
    assert!(e.message.contains("no URL given"), "{}", e.message);
    Ok(())
}
