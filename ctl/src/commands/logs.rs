//! `logs`: a container's output, relayed by the apiserver from the kubelet.

use crate::cli::LogsArgs;
use crate::session::Session;
use futures::StreamExt;
use rkube_api::resource::lookup;
use std::io::Write as _;

/// The pod name from `NAME` or `pod/NAME`.
pub fn pod_name(arg: &str) -> anyhow::Result<&str> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some((kind, name)) if lookup(kind).is_ok_and(|r| r.kind == "Pod") => Ok(name),
        Some((kind, _)) => Err(crate::report::usage(format!("cannot get logs of a {kind}: only pods have logs"))),
    }
}

/// The container to use when none was named: the pod's only one, or the first
/// with kubectl's notice.
pub async fn default_container(session: &Session, pod: &str, named: Option<&str>) -> anyhow::Result<String> {
    if let Some(c) = named {
        return Ok(c.to_string());
    }
    let pods = lookup("pods")?;
    let obj: serde_json::Value =
        serde_json::from_slice(&session.client.get(pods, &session.namespace, pod).await?.json)?;
    let names: Vec<&str> = obj["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let first = names.first().ok_or_else(|| anyhow::anyhow!("pod {pod} has no containers"))?.to_string();
    if names.len() > 1 {
        eprintln!("Defaulted container \"{first}\" out of: {}", names.join(", "));
    }
    Ok(first)
}

/// Runs `logs`.
pub async fn run(session: &Session, a: &LogsArgs) -> anyhow::Result<()> {
    let pod = pod_name(&a.pod)?;
    let container = default_container(session, pod, a.container.as_deref()).await?;
    let req = rkube_proto::v1::LogsRequest {
        namespace: session.namespace.clone(),
        pod: pod.to_string(),
        container,
        follow: a.follow,
        tail_lines: (a.tail >= 0).then_some(a.tail),
        previous: a.previous,
        timestamps: a.timestamps,
        since_seconds: None,
    };
    let mut stream = Box::pin(session.client.logs(req).await?);
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_may_carry_their_type() {
        assert_eq!(pod_name("web").expect("plain"), "web");
        assert_eq!(pod_name("pod/web").expect("typed"), "web");
        assert_eq!(pod_name("po/web").expect("short"), "web");
        assert!(pod_name("configmap/web").is_err());
    }
}
