//! rkubelet against a real apiserver and the real Docker engine: node
//! registration, pods with shared networks and volumes, env and volumes
//! from ConfigMaps, restart policies, waiting for missing objects,
//! deletion, and adoption of running containers by a restarted kubelet.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Node, Pod};
use rkube_client::{Api, DeleteParams};
use serde_json::json;
use std::time::Duration;
use support::{Harness, TOOLBOX};

const START: Duration = Duration::from_secs(60);

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

fn statuses(p: &Pod) -> Vec<ContainerStatus> {
    p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default()
}

fn status_of(p: &Pod, name: &str) -> ContainerStatus {
    statuses(p).into_iter().find(|s| s.name == name).unwrap_or_default()
}

fn running_and_ready(p: &Pod) -> bool {
    let s = statuses(p);
    phase(p) == "Running" && !s.is_empty() && s.iter().all(|c| c.ready)
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

fn waiting_reason(p: &Pod, name: &str) -> Option<String> {
    status_of(p, name).state.and_then(|s| s.waiting).and_then(|w| w.reason)
}

fn sleeper(name: &str) -> serde_json::Value {
    json!({"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 2,
        "containers": [{"name": "app", "image": TOOLBOX, "command": ["sleep", "3600"]}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_registers_ready_with_its_docker_version_and_lease() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let nodes: Api<Node> = Api::all(h.client.clone());
    let ready = |n: &Node| {
        n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
            c.iter().any(|c| c.type_ == "Ready" && c.status == "True" && c.reason.as_deref() == Some("KubeletReady"))
        })
    };
    rkube_testkit::wait_for(START, || async { nodes.get_opt(&h.node).await.ok().flatten().is_some_and(|n| ready(&n)) })
        .await?;
    let node = nodes.get(&h.node).await?;
    let status = node.status.clone().unwrap_or_default();
    let info = status.node_info.clone().unwrap_or_default();
    assert!(info.container_runtime_version.starts_with("docker://20."), "{}", info.container_runtime_version);
    assert!(info.kubelet_version.starts_with("v1.33.0-rkube"), "{}", info.kubelet_version);
    assert_eq!(info.operating_system, "linux");
    assert!(!info.kernel_version.is_empty() && !info.os_image.is_empty());
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&h.node));
    assert_eq!(labels.get("kubernetes.io/os").map(String::as_str), Some("linux"));
    assert_eq!(labels.get("zone").map(String::as_str), Some("a"));
    let addresses = status.addresses.unwrap_or_default();
    assert!(addresses.iter().any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"));
    assert!(addresses.iter().any(|a| a.type_ == "Hostname" && a.address == h.node));
    let capacity = status.capacity.unwrap_or_default();
    for r in ["cpu", "memory", "pods"] {
        assert!(capacity.contains_key(r), "capacity lacks {r}");
    }
    assert_eq!(capacity["pods"].0, "110");
    assert_eq!(node.spec.and_then(|s| s.pod_cidr), Some(h.claim.cidr.clone()));
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), "kube-node-lease");
    let lease = leases.get(&h.node).await?;
    let spec = lease.spec.unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some(h.node.as_str()));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert!(spec.renew_time.is_some());
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_localhost_and_one_ip() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let created = h
        .run_pod(json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {
        "terminationGracePeriodSeconds": 2,
        "containers": [
            {"name": "server", "image": TOOLBOX, "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
             "ports": [{"containerPort": 8080}]},
            {"name": "client", "image": TOOLBOX, "command": ["sh", "-c",
                "until wget -q -O /tmp/page http://localhost:8080/; do sleep 0.2; done; exec sleep 3600"]}
        ]}}))
        .await?;
    let pod = h.wait_pod("web", START, running_and_ready).await?;
    let status = pod.status.clone().unwrap_or_default();
    let ip = status.pod_ip.clone().unwrap_or_default();
    let cidr: rkube_api::cidr::Ipv4Cidr = h.claim.cidr.parse()?;
    assert!(ip.parse().is_ok_and(|ip| cidr.contains(ip)), "pod IP {ip} is not in {cidr}");
    assert_eq!(status.pod_ips.unwrap_or_default().len(), 1);
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(status.start_time.is_some());
    let conditions = status.conditions.unwrap_or_default();
    for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(conditions.iter().any(|c| c.type_ == t && c.status == "True"), "{t} is not True");
    }
    for s in statuses(&pod) {
        assert!(s.container_id.as_deref().is_some_and(|id| id.starts_with("docker://")), "{s:?}");
        assert!(s.image_id.starts_with("docker://sha256:"), "{s:?}");
        assert_eq!(s.image, TOOLBOX);
        assert_eq!((s.restart_count, s.started), (0, Some(true)));
    }

    let client = h.container_id(&uid(&created), "client").await?;
    rkube_testkit::wait_for(Duration::from_secs(20), || async {
        h.exec(&client, &["cat", "/tmp/page"]).await.is_ok_and(|page| page.contains("rkube toolbox"))
    })
    .await?;
    let (code, body) = rkube_testkit::http_get(&format!("http://{ip}:8080/")).await?;
    assert_eq!(code, 200, "the pod IP answers from the host");
    assert!(body.contains("rkube toolbox"));
    let containers = h.containers(Some(&uid(&created))).await?;
    assert_eq!(containers.len(), 3, "a pause container and two app containers");
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_comes_from_config_maps_values_and_pod_fields() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    cms.create(&serde_json::from_value(json!({"metadata": {"name": "settings"},
        "data": {"GREETING": "hello", "LEVEL": "debug"}}))?)
        .await?;
    // The command is expanded too: `$$(GREETING)` reaches the shell as `$(GREETING)`.
    let check = r#"test "$GREETING" = hello && test "$CFG_LEVEL" = debug && test "$MSG" = "hello world" \
        && test "$POD" = env && test "$1" = hello && test "$2" = '$$(GREETING)'"#;
    h.run_pod(json!({"metadata": {"name": "env"}, "spec": {"restartPolicy": "Never", "containers": [{
    "name": "app", "image": TOOLBOX, "command": ["sh", "-c", check, "sh"],
    "args": ["$(GREETING)", "$$(GREETING)"],
    "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
    "env": [
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "GREETING"}}},
        {"name": "MSG", "value": "$(GREETING) world"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "OPTIONAL", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x", "optional": true}}}
    ]}]}}))
    .await?;
    let pod = h.wait_pod("env", START, |p| matches!(phase(p), "Succeeded" | "Failed")).await?;
    let t = status_of(&pod, "app").state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!((phase(&pod), t.exit_code, t.reason.as_deref()), ("Succeeded", 0, Some("Completed")));
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_volumes_project_items_and_follow_updates() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    cms.create(&serde_json::from_value(json!({"metadata": {"name": "files"}, "data": {"a": "alpha", "b": "beta"}}))?)
        .await?;
    let created = h
        .run_pod(json!({"metadata": {"name": "cfg"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": TOOLBOX, "command": ["sleep", "3600"],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "files", "defaultMode": 288,
                "items": [{"key": "a", "path": "conf/a.txt"}]}}]}}))
        .await?;
    h.wait_pod("cfg", START, running_and_ready).await?;
    let app = h.container_id(&uid(&created), "app").await?;
    assert_eq!(h.exec(&app, &["cat", "/etc/cfg/conf/a.txt"]).await?, "alpha");
    assert!(h.exec(&app, &["ls", "/etc/cfg/b"]).await.is_err(), "only the listed items are projected");
    let mode = h.exec(&app, &["stat", "-L", "-c", "%a", "/etc/cfg/conf/a.txt"]).await?;
    assert_eq!(mode.trim(), "440", "defaultMode 0440 applies");
    assert!(h.exec(&app, &["touch", "/etc/cfg/new"]).await.is_err(), "configMap volumes are read-only");

    let mut cm = cms.get("files").await?;
    cm.data.get_or_insert_with(Default::default).insert("a".into(), "changed".into());
    cms.replace(&cm).await?;
    rkube_testkit::wait_for(Duration::from_secs(40), || async {
        h.exec(&app, &["cat", "/etc/cfg/conf/a.txt"]).await.is_ok_and(|s| s == "changed")
    })
    .await?;
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_dirs_are_shared_by_the_pods_containers_and_removed_with_it() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let created = h
        .run_pod(json!({"metadata": {"name": "share"}, "spec": {"restartPolicy": "Never", "containers": [
            {"name": "writer", "image": TOOLBOX, "command": ["sh", "-c", "echo shared > /cache/msg && echo fast > /mem/msg"],
             "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "mem", "mountPath": "/mem"}]},
            {"name": "reader", "image": TOOLBOX, "command": ["sh", "-c",
                "for i in $(seq 1 300); do test -f /in/msg && test -f /mem/msg && grep -q shared /in/msg && exit 0; sleep 0.1; done; exit 1"],
             "volumeMounts": [{"name": "cache", "mountPath": "/in"}, {"name": "mem", "mountPath": "/mem"}]}],
            "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory"}}]}}))
        .await?;
    let pod = h.wait_pod("share", START, |p| matches!(phase(p), "Succeeded" | "Failed")).await?;
    assert_eq!(phase(&pod), "Succeeded", "the reader saw the writer's file");
    let pod_dir = h.root_dir.join("pods").join(uid(&created));
    let cache = pod_dir.join("volumes/kubernetes.io~empty-dir/cache/msg");
    assert_eq!(std::fs::read_to_string(&cache)?.trim(), "shared");
    let mem = pod_dir.join("volumes/kubernetes.io~empty-dir/mem");
    let mounts = rkube_kubelet::volumes::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo")?);
    assert!(mounts.contains(&mem), "medium: Memory is a tmpfs");

    h.pods().delete("share", &DeleteParams::default()).await?;
    rkube_testkit::wait_for(Duration::from_secs(30), || async { !pod_dir.exists() }).await?;
    let mounts = rkube_kubelet::volumes::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo")?);
    assert!(!mounts.contains(&mem), "the tmpfs is unmounted");
    rkube_testkit::wait_for(Duration::from_secs(30), || async {
        h.containers(Some(&uid(&created))).await.is_ok_and(|c| c.is_empty())
    })
    .await?;
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_pods_fail_with_their_exit_code() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "fail"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "app", "image": TOOLBOX, "command": ["sh", "-c", "exit 1"]}]}}))
        .await?;
    let pod = h.wait_pod("fail", START, |p| phase(p) == "Failed").await?;
    let s = status_of(&pod, "app");
    let t = s.state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
    assert!(t.started_at.is_some() && t.finished_at.is_some());
    assert!(t.container_id.is_some_and(|id| id.starts_with("docker://")));
    assert_eq!(s.restart_count, 0);
    let ready = pod.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        ready.iter().any(|c| c.type_ == "Ready" && c.status == "False" && c.reason.as_deref() == Some("PodCompleted"))
    );
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_with_back_off() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "crash"}, "spec": {"restartPolicy": "OnFailure",
        "containers": [{"name": "app", "image": TOOLBOX, "command": ["sh", "-c", "exit 2"]}]}}))
        .await?;
    let pod = h
        .wait_pod("crash", Duration::from_secs(90), |p| {
            status_of(p, "app").restart_count >= 2 && waiting_reason(p, "app").as_deref() == Some("CrashLoopBackOff")
        })
        .await?;
    let s = status_of(&pod, "app");
    let last = s.last_state.and_then(|l| l.terminated).unwrap_or_default();
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    let message = s.state.and_then(|s| s.waiting).and_then(|w| w.message).unwrap_or_default();
    assert!(message.starts_with("back-off "), "{message}");
    assert_eq!(phase(&pod), "Running");
    h.wait_for_events("crash", &["Started"]).await?;
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_holds_the_pod_until_it_appears() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "late"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "app", "image": TOOLBOX, "command": ["sleep", "3600"],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}],
        "volumes": [{"name": "cfg", "configMap": {"name": "later"}}]}}))
        .await?;
    let pod = h
        .wait_pod("late", START, |p| waiting_reason(p, "app").as_deref() == Some("CreateContainerConfigError"))
        .await?;
    let message = status_of(&pod, "app").state.and_then(|s| s.waiting).and_then(|w| w.message);
    assert_eq!(message.as_deref(), Some("configmap \"later\" not found"));
    assert_eq!(phase(&pod), "Pending");
    rkube_testkit::wait_for(Duration::from_secs(20), || async {
        h.event_reasons("late").await.is_ok_and(|r| r.iter().any(|r| r == "FailedMount"))
    })
    .await?;

    // Waiting is polling every few seconds, not a busy loop.
    let syncs = h.metric("rkubelet_pod_syncs_total").await?;
    assert!(syncs < 40.0, "{syncs} syncs while waiting for a ConfigMap");

    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    cms.create(&serde_json::from_value(json!({"metadata": {"name": "later"}, "data": {"k": "v"}}))?).await?;
    h.wait_pod("late", START, running_and_ready).await?;
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_missing_under_pull_policy_never_are_reported() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "noimage"}, "spec": {"containers": [{
        "name": "app", "image": "rkube/not-there:0.0", "imagePullPolicy": "Never"}]}}))
        .await?;
    let pod =
        h.wait_pod("noimage", START, |p| waiting_reason(p, "app").as_deref() == Some("ErrImageNeverPull")).await?;
    let message = status_of(&pod, "app").state.and_then(|s| s.waiting).and_then(|w| w.message).unwrap_or_default();
    assert!(message.contains("is not present with pull policy of Never"), "{message}");
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_stops_and_removes_everything_then_deletes_the_pod() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let created = h.run_pod(sleeper("doomed")).await?;
    h.wait_pod("doomed", START, running_and_ready).await?;
    let pod_dir = h.root_dir.join("pods").join(uid(&created));
    assert_eq!(h.containers(Some(&uid(&created))).await?.len(), 2);

    let params = DeleteParams { grace_period_seconds: Some(2), ..Default::default() };
    let (marked, gone) = h.pods().delete("doomed", &params).await?;
    assert!(!gone && marked.metadata.deletion_timestamp.is_some(), "a pod on a node waits for its kubelet");
    rkube_testkit::wait_for(Duration::from_secs(30), || async {
        h.pods().get_opt("doomed").await.is_ok_and(|p| p.is_none())
    })
    .await?;
    assert!(h.containers(Some(&uid(&created))).await?.is_empty(), "no container is left behind");
    assert!(!pod_dir.exists(), "the pod directory is removed");
    h.wait_for_events("doomed", &["Killing"]).await?;
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_kubelet_adopts_running_containers_and_removes_orphans() -> anyhow::Result<()> {
    let mut h = Harness::start().await?;
    let kept = h.run_pod(sleeper("kept")).await?;
    let orphan = h.run_pod(sleeper("orphan")).await?;
    h.wait_pod("kept", START, running_and_ready).await?;
    h.wait_pod("orphan", START, running_and_ready).await?;
    let before: Vec<String> = h.containers(Some(&uid(&kept))).await?.into_iter().filter_map(|c| c.id).collect();
    assert_eq!(before.len(), 2);

    h.stop_kubelet().await?;
    let force = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    h.pods().delete("orphan", &force).await?;
    h.start_kubelet().await?;

    // A new pod running proves the new kubelet has synced what it found.
    h.run_pod(sleeper("after")).await?;
    h.wait_pod("after", START, running_and_ready).await?;
    rkube_testkit::wait_for(Duration::from_secs(30), || async {
        h.containers(Some(&uid(&orphan))).await.is_ok_and(|c| c.is_empty())
    })
    .await?;
    let mut after: Vec<String> = h.containers(Some(&uid(&kept))).await?.into_iter().filter_map(|c| c.id).collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(after, before, "the running containers were adopted, not replaced");
    let pod = h.wait_pod("kept", START, running_and_ready).await?;
    assert_eq!(status_of(&pod, "app").restart_count, 0);
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_before_the_app() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let mount = json!([{"name": "work", "mountPath": "/work"}]);
    h.run_pod(json!({"metadata": {"name": "init"}, "spec": {"restartPolicy": "Never",
        "initContainers": [
            {"name": "first", "image": TOOLBOX, "command": ["sh", "-c", "echo one > /work/log"], "volumeMounts": mount},
            {"name": "second", "image": TOOLBOX, "command": ["sh", "-c", "echo two >> /work/log"], "volumeMounts": mount}],
        "containers": [{"name": "app", "image": TOOLBOX, "volumeMounts": mount,
            "command": ["sh", "-c", "test \"$(cat /work/log | tr '\\n' ' ')\" = 'one two '"]}],
        "volumes": [{"name": "work", "emptyDir": {}}]}}))
        .await?;
    let pod = h.wait_pod("init", START, |p| matches!(phase(p), "Succeeded" | "Failed")).await?;
    assert_eq!(phase(&pod), "Succeeded", "the app saw both init containers' output, in order");
    let status = pod.status.clone().unwrap_or_default();
    let init = status.init_container_statuses.unwrap_or_default();
    assert_eq!(init.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    for s in &init {
        let t = s.state.clone().and_then(|s| s.terminated).unwrap_or_default();
        assert_eq!((t.exit_code, t.reason.as_deref(), s.ready), (0, Some("Completed"), true));
    }
    let conditions = status.conditions.unwrap_or_default();
    assert!(conditions.iter().any(|c| c.type_ == "Initialized" && c.status == "True"));
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_host_ports_privilege_and_host_network_reach_docker() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let host_port = rkube_testkit::free_port();
    let web = h
        .run_pod(json!({"metadata": {"name": "limited"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": TOOLBOX, "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
            "workingDir": "/var/www",
            "ports": [{"containerPort": 8080, "hostPort": host_port}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}}))
        .await?;
    let host = h
        .run_pod(json!({"metadata": {"name": "hostnet"}, "spec": {"hostNetwork": true,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": TOOLBOX, "command": ["sleep", "3600"]}]}}))
        .await?;
    // Privileged containers cannot start in every environment (a nested
    // container may lack capabilities); what matters is what Docker is told.
    let privileged = h
        .run_pod(json!({"metadata": {"name": "privileged"}, "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": TOOLBOX, "command": ["sleep", "3600"],
                "securityContext": {"privileged": true}}]}}))
        .await?;
    h.wait_pod("limited", START, running_and_ready).await?;
    let hostnet = h.wait_pod("hostnet", START, running_and_ready).await?;
    assert_eq!(
        hostnet.status.and_then(|s| s.pod_ip).as_deref(),
        Some("127.0.0.1"),
        "host network pods have the node IP"
    );

    let inspect = |id: String| {
        let docker = h.docker.clone();
        async move { docker.inspect_container(&id, None::<bollard::query_parameters::InspectContainerOptions>).await }
    };
    let app = inspect(h.container_id(&uid(&web), "app").await?).await?;
    let hc = app.host_config.unwrap_or_default();
    assert_eq!(hc.memory, Some(64 << 20));
    assert_eq!((hc.cpu_quota, hc.cpu_period, hc.cpu_shares), (Some(50_000), Some(100_000), Some(256)));
    assert_eq!(hc.privileged, Some(false));
    let sandbox = inspect(h.container_id(&uid(&web), "POD").await?).await?;
    let sandbox_id = sandbox.id.clone().unwrap_or_default();
    assert_eq!(hc.network_mode, Some(format!("container:{sandbox_id}")), "the app joins the sandbox's network");
    assert_eq!(app.config.and_then(|c| c.working_dir).as_deref(), Some("/var/www"));
    let bindings = sandbox.host_config.and_then(|c| c.port_bindings).unwrap_or_default();
    let bound = bindings.get("8080/tcp").cloned().flatten().unwrap_or_default();
    assert_eq!(bound.first().and_then(|b| b.host_port.clone()), Some(host_port.to_string()));
    let (code, _) = rkube_testkit::http_get(&format!("http://127.0.0.1:{host_port}/")).await?;
    assert_eq!(code, 200, "the host port reaches the pod");

    // A privileged container that cannot start here is removed and retried:
    // it may go between listing and inspecting, so look again until one holds still.
    let deadline = std::time::Instant::now() + START;
    let privileged_app = loop {
        let ids = h.container_ids(&uid(&privileged), "app").await.unwrap_or_default();
        if let Some(id) = ids.first()
            && let Ok(c) = inspect(id.clone()).await
        {
            break c;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no privileged app container within {START:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(privileged_app.host_config.and_then(|c| c.privileged), Some(true));

    let host_sandbox = inspect(h.container_id(&uid(&host), "POD").await?).await?;
    assert_eq!(host_sandbox.host_config.and_then(|c| c.network_mode).as_deref(), Some("host"));
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pulls_report_docker_and_back_off() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "unpullable"}, "spec": {"containers": [{
        "name": "app", "image": "localhost:5999/nothing:1", "imagePullPolicy": "IfNotPresent"}]}}))
        .await?;
    let pod = h.wait_pod("unpullable", START, |p| waiting_reason(p, "app").as_deref() == Some("ErrImagePull")).await?;
    let message = status_of(&pod, "app").state.and_then(|s| s.waiting).and_then(|w| w.message).unwrap_or_default();
    assert!(message.contains("connection refused"), "Docker's message is kept: {message}");
    let pod =
        h.wait_pod("unpullable", START, |p| waiting_reason(p, "app").as_deref() == Some("ImagePullBackOff")).await?;
    assert_eq!(phase(&pod), "Pending");
    h.wait_for_events("unpullable", &["Pulling", "Failed", "BackOff"]).await?;
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_paths_claims_secrets_sub_paths_and_read_only_mounts() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Secret};
    let h = Harness::start().await?;
    let host_dir = h.root_dir.join("host-data");
    let pv_dir = h.root_dir.join("pv-data");
    std::fs::create_dir_all(&pv_dir)?;

    let pvs: Api<PersistentVolume> = Api::all(h.client.clone());
    let pv_name = format!("{}-pv", h.node);
    pvs.create(&serde_json::from_value(json!({"metadata": {"name": pv_name}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": pv_dir.display().to_string()}}}))?)
        .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(h.client.clone(), "default");
    claims
        .create(&serde_json::from_value(json!({"metadata": {"name": "claim"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "volumeName": pv_name,
            "resources": {"requests": {"storage": "1Gi"}}}}))?)
        .await?;
    // No controller-manager here: bind the claim the way its PV controller would.
    claims.patch_status("claim", &json!({"status": {"phase": "Bound"}})).await?;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "default");
    secrets
        .create(&serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}))?)
        .await?;

    let script = "echo written > /data/file && test -f /ro/sub/file && ! touch /ro/denied 2>/dev/null \
        && test \"$(cat /secret/password)\" = s3cret && echo claimed > /claim/out";
    let created = h
        .run_pod(json!({"metadata": {"name": "mounts"}, "spec": {"restartPolicy": "Never", "containers": [{
            "name": "app", "image": TOOLBOX, "command": ["sh", "-c", script],
            "volumeMounts": [
                {"name": "host", "mountPath": "/data", "subPath": "sub"},
                {"name": "host", "mountPath": "/ro", "readOnly": true},
                {"name": "secret", "mountPath": "/secret"},
                {"name": "claim", "mountPath": "/claim"}]}],
            "volumes": [
                {"name": "host", "hostPath": {"path": host_dir.display().to_string(), "type": "DirectoryOrCreate"}},
                {"name": "secret", "secret": {"secretName": "creds"}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "claim"}}]}}))
        .await?;
    let pod = h.wait_pod("mounts", START, |p| matches!(phase(p), "Succeeded" | "Failed")).await?;
    assert_eq!(phase(&pod), "Succeeded", "every mount behaved");
    assert_eq!(std::fs::read_to_string(host_dir.join("sub/file"))?.trim(), "written");
    assert_eq!(std::fs::read_to_string(pv_dir.join("out"))?.trim(), "claimed");
    let secret_dir = h.root_dir.join("pods").join(uid(&created)).join("volumes/kubernetes.io~secret/secret");
    let mounts = rkube_kubelet::volumes::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo")?);
    assert!(mounts.contains(&secret_dir), "secrets live on a tmpfs");
    h.shutdown().await
}
