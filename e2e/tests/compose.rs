//! docker-compose.yml end to end: `docker-compose up -d` starts etcd, the
//! control plane and two nodes (rkubelet + rkube-proxy each) from the images
//! `images/build.sh compose` builds FROM scratch; both nodes go Ready, the
//! walkthrough's two-container pod and a pod with a secret volume (a tmpfs
//! the containerised kubelet mounts, seen by the host's dockerd) run, logs
//! and exec are relayed by the apiserver to the kubelets; then
//! `docker-compose down` and `images/compose-host.sh cleanup` leave no pod
//! container, pod network, iptables rule, nftables table, mount or PKI of
//! the compose nodes.
//!
//! Secure by default: `compose-host.sh prepare` makes the PKI (rkube-certs
//! from the rkube/certs image) in `/var/lib/rkube-compose/pki`, 0700 with
//! 0600 keys; every client here is the admin of `admin.kubeconfig` (the real
//! kubectl reads it too); an anonymous request gets 401 and a plain-HTTP
//! one no answer, a kubelet's API refuses a client without the apiserver's
//! certificate, the proxy's credentials may not read Secrets (RBAC), and no
//! container is given the CA key.
//!
//! No daemon runs privileged: the kubelets get NET_ADMIN and SYS_ADMIN, the
//! proxies NET_ADMIN, all in the host's network namespace. The one thing a
//! container cannot do here is write `/proc/sys` (Docker mounts it
//! read-only): `compose-host.sh prepare` sets the proxy's
//! `route_localnet` on the host.
//!
//! The highly available topology (`docker-compose.ha.yml` over it): a
//! three-member etcd cluster, two apiservers, controller manager and
//! scheduler pairs, every client given both apiservers. etcd member 1 and
//! the first apiserver are killed (`docker kill -s KILL`, which restart
//! policies leave dead); the kubelets keep renewing their Leases, a new pod
//! is scheduled and runs, and the nodes stay Ready.
//!
//! The compose cluster's addresses are fixed and apart from every other
//! test's (apiservers 127.0.0.1:18080 and 18081, etcd 12379-12387, daemons'
//! ports 122xx, pods 10.247.0.0/16, Services 10.246.0.0/16, node ports
//! 31800-31899, nodes compose-1/2, tables rkube-compose-1/2), so it runs
//! beside them. Only one compose cluster runs on a host at a time: both
//! tests take [`HostLock`] first.

use anyhow::{Context as _, bail};
use rkube_e2e::stdout_of;
use rkube_testkit::wait_for;
use serde_json::Value;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODES: [&str; 2] = ["compose-1", "compose-2"];
const PROJECT_PREFIX: &str = "rkube-e2e-compose-";
const ROOT_DIR: &str = "/var/lib/rkube-compose";
const PKI_DIR: &str = "/var/lib/rkube-compose/pki";

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn admin_kubeconfig() -> String {
    format!("{PKI_DIR}/admin.kubeconfig")
}

/// The kubelets' API ports, as in docker-compose.yml.
const KUBELET_PORTS: [u16; 2] = [12250, 12260];

/// `curl` `url` with `args`: the HTTP status, or None when no HTTP answer
/// came (refused, TLS handshake failed, not HTTP).
fn http_status(url: &str, args: &[&str]) -> anyhow::Result<Option<u16>> {
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .context("running curl")?;
    let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    Ok((code != 0).then_some(code))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    stdout_of(&format!("{program} {args:?}"), out)
}

fn host_script(action: &str) -> anyhow::Result<String> {
    let script = repo().join("images/compose-host.sh");
    stdout_of(&format!("images/compose-host.sh {action}"), Command::new("bash").arg(&script).arg(action).output()?)
}

/// The compose files a project runs and the apiservers its clients use.
struct Topology {
    files: &'static [&'static str],
    /// `--server` for rkubectl beside the admin kubeconfig: every apiserver,
    /// comma-separated; None: the kubeconfig's one server.
    server: Option<&'static str>,
    /// The apiservers' ports, which must be free.
    ports: &'static [u16],
}

const SINGLE: Topology = Topology { files: &["docker-compose.yml"], server: None, ports: &[18080] };

const HA: Topology = Topology {
    files: &["docker-compose.yml", "docker-compose.ha.yml"],
    server: Some("https://127.0.0.1:18080,https://127.0.0.1:18081"),
    ports: &[18080, 18081],
};

/// The right to run a compose cluster on this host: the compose files fix
/// their ports and node names, so the tests here must not overlap (nextest
/// runs them in parallel processes, `cargo test` in parallel threads, and
/// another run may share the host). An exclusive flock(1) on a file in the
/// temp dir, held by a child that lives as long as its stdin (this
/// process's pipe): released on drop, and by the kernel if the test dies.
struct HostLock {
    holder: Child,
}

impl HostLock {
    const WAIT: Duration = Duration::from_secs(600);

    fn acquire() -> anyhow::Result<HostLock> {
        let path = std::env::temp_dir().join("rkube-e2e-compose.lock");
        let mut holder = Command::new("flock")
            .args(["--exclusive", "--timeout", &Self::WAIT.as_secs().to_string()])
            .arg(&path)
            .args(["sh", "-c", "echo locked; exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running flock (util-linux)")?;
        let mut line = String::new();
        let stdout = holder.stdout.take().context("flock's stdout")?;
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "locked" {
            let _ = holder.wait();
            bail!("{} was not free within {:?}: another compose test runs here", path.display(), Self::WAIT);
        }
        Ok(HostLock { holder })
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        drop(self.holder.stdin.take());
        let _ = self.holder.wait();
    }
}

/// A compose project, taken down and cleaned up on drop (before its lock
/// is released).
struct Compose {
    project: String,
    topology: &'static Topology,
    _lock: HostLock,
}

impl Compose {
    /// `docker-compose` (1.29, Debian's), else `docker compose` (v2).
    fn command(&self) -> Command {
        let v1 = Command::new("docker-compose").arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        let mut cmd = if v1.is_ok_and(|s| s.success()) {
            Command::new("docker-compose")
        } else {
            let mut c = Command::new("docker");
            c.arg("compose");
            c
        };
        cmd.current_dir(repo()).env("RKUBE_VERSION", env!("CARGO_PKG_VERSION"));
        for file in self.topology.files {
            cmd.args(["-f", file]);
        }
        cmd.args(["-p", &self.project]);
        cmd
    }

    fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command().args(args).output().context("running docker-compose")?;
        stdout_of(&format!("docker-compose {args:?}"), out)
    }

    /// The end of every service's log (for failure messages).
    fn logs(&self) -> String {
        self.command()
            .args(["logs", "--no-color", "--tail", "15"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// rkubectl as the cluster admin (admin.kubeconfig), given every
    /// apiserver of the topology.
    fn rkubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new(rkube_e2e::bin_dir().join("rkubectl"));
        cmd.arg("--kubeconfig").arg(admin_kubeconfig());
        if let Some(server) = self.topology.server {
            cmd.arg("--server").arg(server);
        }
        let out = cmd.args(args).output()?;
        stdout_of(&format!("rkubectl {args:?}"), out).map_err(|e| anyhow::anyhow!("{e}\n{}", self.logs()))
    }

    fn down(&self) -> anyhow::Result<()> {
        self.compose(&["down", "--timeout", "15"])?;
        host_script("cleanup")?;
        Ok(())
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.command().args(["down", "--timeout", "15"]).output();
        let _ = host_script("cleanup");
    }
}

/// Containers of compose projects that earlier runs of this test left (a
/// killed test runs no Drop): they hold the cluster's ports.
fn remove_stale_projects() -> anyhow::Result<()> {
    let listing = run("docker", &["ps", "-a", "--format", "{{.ID}} {{.Label \"com.docker.compose.project\"}}"])?;
    let stale: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, project)| project.starts_with(PROJECT_PREFIX))
        .map(|(id, _)| id)
        .collect();
    if !stale.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(&stale);
        run("docker", &args)?;
    }
    Ok(())
}

fn ready_nodes(nodes: &Value) -> Vec<String> {
    nodes["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|n| {
                    n["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                })
                .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"].as_array().is_some_and(|cs| cs.iter().all(|c| c["ready"] == true))
}

impl Compose {
    /// Takes the host, clears what earlier runs left, and brings `topology`
    /// up until both nodes are Ready.
    async fn up(topology: &'static Topology) -> anyhow::Result<Compose> {
        let tag = format!(":${{RKUBE_VERSION:-{}}}", env!("CARGO_PKG_VERSION"));
        for name in topology.files {
            let file = std::fs::read_to_string(repo().join(name))?;
            for image in file.lines().filter_map(|l| l.trim().strip_prefix("image: ")) {
                assert!(image.ends_with(&tag), "{name}: {image}'s default tag is not the workspace version ({tag})");
            }
        }
        let lock = HostLock::acquire()?;

        // The images (deploy/run-tests.sh builds them before the tests).
        let mut built = true;
        for image in ["kubelet", "certs"] {
            let image = format!("rkube/{image}:{}", env!("CARGO_PKG_VERSION"));
            built &= Command::new("docker").args(["image", "inspect", &image]).output()?.status.success();
        }
        let mut images = vec!["pause", "toolbox"];
        if !built {
            images.push("compose");
        }
        let mut args = vec![repo().join("images/build.sh").display().to_string()];
        args.extend(images.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("bash", &args)?;

        remove_stale_projects()?;
        host_script("cleanup")?;
        for port in topology.ports {
            if std::net::TcpListener::bind(("127.0.0.1", *port)).is_err() {
                bail!("127.0.0.1:{port} is taken: another compose cluster runs here (docker-compose down it first)");
            }
        }
        let project = format!("{PROJECT_PREFIX}{:06x}", fastrand::u32(..0xff_ffff));
        let compose = Compose { project, topology, _lock: lock };
        host_script("prepare")?;

        let started = Instant::now();
        compose.compose(&["up", "-d"])?;
        let ready = wait_for(Duration::from_secs(90), || async {
            let nodes = compose.rkubectl(&["get", "nodes", "-o", "json"]).ok();
            let nodes = nodes.and_then(|s| serde_json::from_str::<Value>(&s).ok()).unwrap_or_default();
            let ready = ready_nodes(&nodes);
            NODES.iter().all(|n| ready.iter().any(|r| r == n))
        })
        .await;
        if ready.is_err() {
            bail!("the compose nodes are not Ready after 90 s\n{}", compose.logs());
        }
        eprintln!("docker-compose up -d -> both nodes Ready: {:.1} s", started.elapsed().as_secs_f64());
        Ok(compose)
    }

    /// What would break if the cluster were not secure: the PKI's
    /// directory and keys are root's alone, the apiservers answer only TLS
    /// and only authenticated requests, the kubelets' API only the
    /// apiserver, RBAC keeps the proxy's credentials from Secrets, and the
    /// real kubectl reaches the cluster with admin.kubeconfig.
    fn assert_secure(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |path: &Path| -> anyhow::Result<u32> { Ok(std::fs::metadata(path)?.permissions().mode() & 0o777) };
        assert_eq!(mode(Path::new(PKI_DIR))?, 0o700, "{PKI_DIR}");
        for entry in std::fs::read_dir(PKI_DIR)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "key" || e == "kubeconfig") {
                assert_eq!(mode(&path)?, 0o600, "{}", path.display());
            }
        }

        let ca = format!("{PKI_DIR}/ca.crt");
        for port in self.topology.ports {
            let secrets = format!("https://127.0.0.1:{port}/api/v1/namespaces/default/secrets");
            assert_eq!(http_status(&secrets, &["--cacert", &ca])?, Some(401), "anonymous GET {secrets}");
            let plain = format!("http://127.0.0.1:{port}/api/v1/namespaces/default/secrets");
            assert_eq!(http_status(&plain, &[])?, None, "plain HTTP answered: {plain}");
            let ready = format!("https://127.0.0.1:{port}/readyz");
            assert_eq!(http_status(&ready, &["--cacert", &ca])?, Some(200), "{ready}");
        }
        for port in KUBELET_PORTS {
            let pods = format!("https://127.0.0.1:{port}/pods");
            let status = http_status(&pods, &["--cacert", &ca])?;
            assert!(
                matches!(status, None | Some(401 | 403)),
                "the kubelet's API answered {status:?} without a client certificate: {pods}"
            );
        }

        let out = Command::new(rkube_e2e::bin_dir().join("rkubectl"))
            .args(["--kubeconfig", &format!("{PKI_DIR}/proxy.kubeconfig"), "get", "secrets"])
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("forbidden"), "the proxy's credentials read Secrets: {err}");

        match Command::new("kubectl").args(["--kubeconfig", &admin_kubeconfig(), "get", "nodes", "-o", "name"]).output()
        {
            Ok(out) => {
                let nodes = stdout_of("kubectl get nodes", out)?;
                for node in NODES {
                    assert!(nodes.lines().any(|l| l == format!("node/{node}")), "kubectl get nodes: {nodes}");
                }
            }
            Err(e) => eprintln!("kubectl not run ({e}): skipped checking it with admin.kubeconfig"),
        }
        Ok(())
    }

    /// The id of the container of `service`.
    fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self.compose(&["ps", "-q", service])?.trim().to_string();
        if id.is_empty() {
            bail!("no container of service {service}");
        }
        Ok(id)
    }

    async fn wait_pod(&self, name: &str) -> anyhow::Result<Value> {
        let found = wait_for(Duration::from_secs(90), || async {
            self.rkubectl(&["get", "pod", name, "-o", "json"])
                .ok()
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .is_some_and(|p| running(&p))
        })
        .await;
        let pod: Value = serde_json::from_str(&self.rkubectl(&["get", "pod", name, "-o", "json"])?)?;
        if found.is_err() {
            bail!("pod {name} is not Running: {}\n{}", pod["status"], self.logs());
        }
        Ok(pod)
    }
}

/// What the compose nodes left on the host: containers, Docker networks,
/// iptables rules, nftables tables, mounts, the host directory and its PKI.
fn leftovers() -> anyhow::Result<Vec<String>> {
    let mut left = Vec::new();
    for node in NODES {
        let ids = run("docker", &["ps", "-aq", "--filter", &format!("label=io.rkube.node={node}")])?;
        if !ids.trim().is_empty() {
            left.push(format!("containers of {node}: {}", ids.split_whitespace().collect::<Vec<_>>().join(" ")));
        }
        let network = format!("rkube-{node}");
        if Command::new("docker").args(["network", "inspect", &network]).output()?.status.success() {
            left.push(format!("Docker network {network}"));
        }
        for table in ["filter", "nat"] {
            let rules = run("iptables-save", &["-t", table])?;
            let comment = format!("rkube pod network of node {node}\"");
            left.extend(rules.lines().filter(|l| l.contains(&comment)).map(|l| format!("iptables rule {l}")));
        }
    }
    let tables = run("nft", &["list", "tables"])?;
    for node in NODES {
        let table = format!("table ip rkube-{node}");
        if tables.lines().any(|l| l.trim() == table) {
            left.push(table);
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    left.extend(
        mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(ROOT_DIR))
            .map(|m| format!("mount {m}")),
    );
    if Path::new(ROOT_DIR).exists() {
        left.push(format!("directory {ROOT_DIR} (the PKI is in it)"));
    }
    Ok(left)
}

/// `docker-compose down`, then `images/compose-host.sh cleanup` (twice: it
/// is idempotent) leave no pod container, network, rule, table, mount or
/// compose container.
fn down_leaves_nothing(compose: &Compose) -> anyhow::Result<()> {
    // Down leaves the nodes' pods by design (kubelets do not stop their
    // pods); the host script removes them and everything else.
    compose.compose(&["down", "--timeout", "15"])?;
    let after_down = leftovers()?;
    assert!(
        after_down.iter().any(|l| l.starts_with("containers of")),
        "docker-compose down alone left no pod containers; if the kubelet now stops its pods, update docs/operations.md: {after_down:#?}"
    );
    compose.down()?;
    compose.down()?; // twice: idempotent
    let left = leftovers()?;
    assert!(left.is_empty(), "left behind after down and cleanup: {left:#?}");
    assert!(
        run("docker", &["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={}", compose.project)])?
            .trim()
            .is_empty(),
        "compose containers remain"
    );
    Ok(())
}

#[tokio::test]
async fn compose_up_runs_a_pod_on_two_ready_nodes_and_down_leaves_nothing() -> anyhow::Result<()> {
    let compose = Compose::up(&SINGLE).await?;

    // Up again changes nothing: the same containers keep running.
    let before = compose.compose(&["ps", "-q"])?;
    compose.compose(&["up", "-d"])?;
    assert_eq!(compose.compose(&["ps", "-q"])?, before, "a second up recreated containers");

    // Every daemon in the host's network namespace, none privileged; the
    // PKI's files bound read-only, the CA key to none.
    for id in before.split_whitespace() {
        let inspect: Value = serde_json::from_str(&run("docker", &["inspect", id])?)?;
        let name = &inspect[0]["Name"];
        let host = &inspect[0]["HostConfig"];
        assert_eq!(host["NetworkMode"], "host", "{name}");
        assert_eq!(host["Privileged"], false, "{name}");
        for mount in inspect[0]["Mounts"].as_array().into_iter().flatten() {
            let source = mount["Source"].as_str().unwrap_or_default();
            assert!(!source.ends_with("/ca.key"), "{name} is given the CA key: {mount}");
            if source.starts_with(PKI_DIR) {
                assert_eq!(mount["RW"], false, "{name} may write {source}");
            }
        }
    }
    compose.assert_secure()?;

    // The walkthrough's pod: Running 2/2; logs and exec go through the
    // apiserver to the kubelet's API.
    let example = repo().join("examples/two-container-pod.yaml");
    compose.rkubectl(&["create", "-f", &example.display().to_string()])?;
    let pod = compose.wait_pod("redis-php").await?;
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
    assert!(NODES.contains(&node.as_str()), "scheduled on {node}");
    let ip = pod["status"]["podIP"].as_str().unwrap_or_default().to_string();
    assert!(ip.starts_with("10.247."), "pod IP {ip} is not in the compose cluster CIDR");
    let got = wait_for(Duration::from_secs(30), || async {
        compose.rkubectl(&["logs", "redis-php", "-c", "client"]).is_ok_and(|l| l.contains("hello from the server"))
    })
    .await;
    assert!(got.is_ok(), "the client never fetched the server's page\n{}", compose.logs());
    assert_eq!(compose.rkubectl(&["exec", "redis-php", "-c", "server", "--", "hostname"])?.trim(), "redis-php");

    // A secret volume: a tmpfs the kubelet mounts in its container, which
    // the host's dockerd must see (rshared root dir, SYS_ADMIN).
    compose.rkubectl(&["create", "secret", "generic", "greeting", "--from-literal=word=hello-compose"])?;
    let secret_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: secret-reader}\nspec:\n  containers:\n  - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600'], volumeMounts: [{name: s, mountPath: /s}]}\n  volumes:\n  - {name: s, secret: {secretName: greeting}}\n";
    let path = std::env::temp_dir().join(format!("{}-secret-pod.yaml", compose.project));
    std::fs::write(&path, secret_pod)?;
    let created = compose.rkubectl(&["create", "-f", &path.display().to_string()]);
    let _ = std::fs::remove_file(&path);
    created?;
    compose.wait_pod("secret-reader").await?;
    assert_eq!(compose.rkubectl(&["exec", "secret-reader", "--", "cat", "/s/word"])?, "hello-compose");
    // Its service account token, signed with the PKI's sa.key.
    let token = compose.rkubectl(&["exec", "secret-reader", "--", "cat", &format!("{SA_DIR}/token")])?;
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");
    assert_eq!(compose.rkubectl(&["exec", "secret-reader", "--", "cat", &format!("{SA_DIR}/namespace")])?, "default");

    down_leaves_nothing(&compose)
}

/// The node Leases' renewTime, by node.
fn node_lease_renewals(compose: &Compose) -> anyhow::Result<Vec<(String, String)>> {
    let leases: Value =
        serde_json::from_str(&compose.rkubectl(&["get", "lease", "-n", "kube-node-lease", "-o", "json"])?)?;
    Ok(NODES
        .iter()
        .map(|node| {
            let lease = leases["items"].as_array().and_then(|ls| ls.iter().find(|l| l["metadata"]["name"] == *node));
            let renewed = lease.and_then(|l| l["spec"]["renewTime"].as_str()).unwrap_or_default();
            (node.to_string(), renewed.to_string())
        })
        .collect())
}

#[tokio::test]
async fn compose_ha_keeps_serving_without_etcd_member_1_and_the_first_apiserver() -> anyhow::Result<()> {
    let compose = Compose::up(&HA).await?;

    // The topology: one etcd cluster of three members, each apiserver
    // answering on its own.
    let members = run("etcdctl", &["--endpoints", "http://127.0.0.1:12382", "member", "list", "-w", "json"])?;
    let members: Value = serde_json::from_str(&members)?;
    let mut names: Vec<&str> =
        members["members"].as_array().into_iter().flatten().filter_map(|m| m["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["rkube-compose-1", "rkube-compose-2", "rkube-compose-3"], "{members}");
    for server in HA.server.unwrap_or_default().split(',') {
        let bin = rkube_e2e::bin_dir().join("rkubectl");
        let out = Command::new(&bin)
            .args(["--server", server, "--kubeconfig", &admin_kubeconfig(), "get", "nodes"])
            .output()?;
        stdout_of(&format!("rkubectl --server {server} get nodes"), out)?;
    }
    compose.assert_secure()?;
    for service in ["controller-manager-2", "scheduler-2", "etcd-2", "etcd-3", "apiserver-2"] {
        compose.container(service)?;
    }

    // etcd member 1 and the first apiserver in every client's list die.
    // Restart policies leave a container that `docker kill` stopped alone.
    let killed = [compose.container("etcd")?, compose.container("apiserver")?];
    let started = Instant::now();
    run("docker", &["kill", "-s", "KILL", &killed[0], &killed[1]])?;

    // The kubelets renew their Leases through the second apiserver.
    let before = node_lease_renewals(&compose)?;
    let renewed = wait_for(Duration::from_secs(60), || async {
        node_lease_renewals(&compose).is_ok_and(|now| now.iter().zip(&before).all(|(n, b)| n.1 != b.1))
    })
    .await;
    if renewed.is_err() {
        bail!("the node Leases were not renewed after the kills: {before:?}\n{}", compose.logs());
    }

    // A new pod is scheduled, started and reported Running.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: after-the-kills}\nspec:\n  containers:\n  - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}\n";
    let path = std::env::temp_dir().join(format!("{}-pod.yaml", compose.project));
    std::fs::write(&path, pod)?;
    let created = compose.rkubectl(&["create", "-f", &path.display().to_string()]);
    let _ = std::fs::remove_file(&path);
    created?;
    let pod = compose.wait_pod("after-the-kills").await?;
    assert!(NODES.contains(&pod["spec"]["nodeName"].as_str().unwrap_or_default()), "{}", pod["spec"]);
    eprintln!("kills -> Leases renewed and a new pod Running: {:.1} s", started.elapsed().as_secs_f64());

    let nodes: Value = serde_json::from_str(&compose.rkubectl(&["get", "nodes", "-o", "json"])?)?;
    let mut ready = ready_nodes(&nodes);
    ready.sort();
    assert_eq!(ready, NODES, "Ready nodes after the kills");
    for id in &killed {
        let state = run("docker", &["inspect", "-f", "{{.State.Running}} {{.RestartCount}}", id])?;
        assert_eq!(state.trim(), "false 0", "a killed container came back: {id}");
    }

    down_leaves_nothing(&compose)
}
