//! rkube-e2e: a whole cluster from the real binaries, for end-to-end tests.
//!
//! [`Cluster::start`] runs etcd, `rkube-apiserver`, `rkube-controller-manager`,
//! `rkube-scheduler` and two `rkubelet`s (two nodes on this host, on the real
//! Docker engine) as processes on free loopback ports, and [`Cluster::rkubectl`]
//! drives them as a user would. Everything is torn down on drop: processes,
//! containers of the cluster's nodes, their pod networks and rules, temporary
//! directories. Each cluster holds an address [`Slot`]: its own pod CIDR,
//! service range, node ports and apiserver address for pods, so clusters
//! can run side by side. [`Cluster::start_with`] adds rkube-proxy (on its
//! own nftables table) and the cluster DNS add-on.

pub mod slot;
pub mod testbed;

pub use slot::Slot;
pub use testbed::TestBed;

use anyhow::{Context as _, bail};
use rkube_client::Client;
use rkube_testkit::{Etcd, free_port, http_get, wait_for};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Where the workspace's binaries are: next to the running executable (a
/// benchmark in target/<profile>), or next to its deps dir (a test in
/// target/<profile>/deps). `$RKUBE_BIN_DIR` overrides it.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RKUBE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the process knows its own path");
    let dir = exe.parent().expect("an executable lives in a directory");
    match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().expect("deps has a parent").to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir().join(name);
    if !path.exists() {
        bail!("{} is not built (cargo build --workspace --bins)", path.display());
    }
    Ok(path)
}

struct Process {
    name: String,
    bin: String,
    args: Vec<String>,
    child: Child,
    log: PathBuf,
}

/// A running cluster.
pub struct Cluster {
    /// etcd (dropped last).
    etcd: Etcd,
    procs: Vec<Process>,
    /// The apiserver URL.
    pub server: String,
    /// A client for it.
    pub client: Client,
    /// The node names.
    pub nodes: Vec<String>,
    /// The cluster CIDR the controller-manager cuts.
    pub cluster_cidr: String,
    /// The cluster's addresses (dropped after the daemons are stopped).
    pub slot: Slot,
    options: Options,
    dir: PathBuf,
}

/// What a test cluster runs besides the control plane and the kubelets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// How many nodes (kubelets).
    pub nodes: usize,
    /// rkube-proxy, on the slot's own nftables table.
    pub proxy: bool,
    /// The cluster DNS add-on (kubelets get `--cluster-dns`); needs the proxy.
    pub dns: bool,
    /// Flags added to rkube-apiserver's (`--default-unreachable-toleration-seconds=5`).
    pub apiserver_flags: &'static [&'static str],
    /// Flags added to rkube-controller-manager's (`--node-monitor-grace-period=20s`).
    pub controller_manager_flags: &'static [&'static str],
    /// Flags added to rkube-scheduler's (`--leader-elect-lease-duration=4s`).
    pub scheduler_flags: &'static [&'static str],
}

impl Cluster {
    /// Starts a cluster with `nodes` kubelets and waits until every node is Ready.
    pub async fn start(nodes: usize) -> anyhow::Result<Cluster> {
        Cluster::start_with(Options { nodes, ..Options::default() }).await
    }

    /// Starts a cluster with what `options` asks for and waits until every
    /// node is Ready (and the DNS add-on, if asked for, is ready).
    pub async fn start_with(options: Options) -> anyhow::Result<Cluster> {
        let nodes = options.nodes;
        ensure_docker_and_images(options.dns).await?;
        let mut slot = Slot::acquire()?;
        slot.create_bridge()?;
        remove_slot_leftovers(&slot.cluster_cidr()).await.context("removing a previous holder's pod networks")?;
        let etcd = Etcd::start().await?;
        let tag = format!("{:06x}", fastrand::u32(..0xff_ffff));
        let dir = std::env::temp_dir().join(format!("rkube-e2e-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let api_port = free_port();
        let server = format!("http://127.0.0.1:{api_port}");
        let cluster_cidr = slot.cluster_cidr();
        let (service_range, node_ports, advertise) =
            (slot.service_range(), slot.node_port_range(), slot.advertise_ip());
        let mut cluster = Cluster {
            etcd,
            procs: Vec::new(),
            client: Client::new(&server)?,
            server: server.clone(),
            nodes: (1..=nodes).map(|i| format!("e2e-{tag}-{i}")).collect(),
            cluster_cidr: cluster_cidr.clone(),
            slot,
            options,
            dir,
        };
        let etcd_url = cluster.etcd.url();
        let api_port = api_port.to_string();
        let mut apiserver_args = vec![
            "--plain-http",
            "--etcd-servers",
            &etcd_url,
            "--port",
            &api_port,
            "--service-cluster-ip-range",
            &service_range,
            "--service-node-port-range",
            &node_ports,
            "--advertise-address",
            &advertise,
        ];
        apiserver_args.extend(options.apiserver_flags);
        cluster.spawn("apiserver", "rkube-apiserver", &apiserver_args)?;
        cluster.wait_healthy("apiserver", &format!("{server}/readyz")).await?;
        let cm_health = format!("127.0.0.1:{}", free_port());
        let mut cm_args = vec![
            "--server",
            &server,
            "--cluster-cidr",
            &cluster_cidr,
            "--node-cidr-mask-size",
            "24",
            "--healthz-bind-address",
            &cm_health,
        ];
        cm_args.extend(options.controller_manager_flags);
        cluster.spawn("controller-manager", "rkube-controller-manager", &cm_args)?;
        let sched_health = format!("127.0.0.1:{}", free_port());
        let mut sched_args = vec!["--server", &server, "--healthz-bind-address", &sched_health];
        sched_args.extend(options.scheduler_flags);
        cluster.spawn("scheduler", "rkube-scheduler", &sched_args)?;
        for i in 0..cluster.nodes.len() {
            cluster.spawn_kubelet(i)?;
        }
        let nodes = cluster.nodes.clone();
        let client = cluster.client.clone();
        let ready = wait_for(Duration::from_secs(60), || {
            let (client, nodes) = (client.clone(), nodes.clone());
            async move { all_ready(&client, &nodes).await }
        })
        .await;
        if ready.is_err() {
            bail!("nodes did not become Ready within 60s\n{}", cluster.logs());
        }
        if options.proxy || options.dns {
            cluster.spawn_proxy().await?;
        }
        if options.dns {
            cluster.start_dns().await?;
        }
        Ok(cluster)
    }

    /// Starts rkube-proxy on the slot's table (one per host, as the nodes
    /// share this host).
    async fn spawn_proxy(&mut self) -> anyhow::Result<()> {
        let health = format!("127.0.0.1:{}", free_port());
        let (server, node, cidr, table) = (
            self.server.clone(),
            self.nodes.first().cloned().unwrap_or_default(),
            self.cluster_cidr.clone(),
            self.slot.proxy_table(),
        );
        self.spawn(
            "proxy",
            "rkube-proxy",
            &[
                "--server",
                &server,
                "--hostname-override",
                &node,
                "--cluster-cidr",
                &cidr,
                "--table",
                &table,
                "--healthz-bind-address",
                &health,
            ],
        )?;
        self.wait_healthy("proxy", &format!("http://{health}/healthz")).await
    }

    /// Deploys the DNS add-on at the slot's DNS address and waits until it
    /// answers (its pod is Ready).
    async fn start_dns(&mut self) -> anyhow::Result<()> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/addons/dns.yaml");
        let yaml = std::fs::read_to_string(&manifest)?.replace("10.254.0.10", &self.slot.dns_ip());
        let path = self.dir.join("dns.yaml");
        std::fs::write(&path, yaml)?;
        self.rkubectl_ok(&["apply", "-f", &path.display().to_string()])?;
        let ready = wait_for(Duration::from_secs(90), || async {
            let out = self.rkubectl(&["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o", "json"]);
            out.ok()
                .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                .and_then(|v| v["items"].as_array().cloned())
                .is_some_and(|items| {
                    items.iter().any(|p| {
                        p["status"]["conditions"]
                            .as_array()
                            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                    })
                })
        })
        .await;
        if ready.is_err() {
            let pods = self
                .rkubectl(&["get", "pods", "-A", "-o", "wide"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            bail!("the DNS add-on did not become ready in 90s: {pods:?}\n{}", self.logs());
        }
        Ok(())
    }

    /// Starts the kubelet of node `i` (0-based); its log is appended to.
    pub fn spawn_kubelet(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes[i].clone();
        let root = self.dir.join(&node);
        let manifests = root.join("manifests");
        std::fs::create_dir_all(&manifests)?;
        let health = format!("127.0.0.1:{}", free_port());
        let (server, cidr) = (self.server.clone(), self.cluster_cidr.clone());
        let root = root.display().to_string();
        let manifests = manifests.display().to_string();
        let mut args = vec![
            "--server",
            &server,
            "--hostname-override",
            &node,
            "--node-ip",
            "127.0.0.1",
            "--root-dir",
            &root,
            "--cluster-cidr",
            &cidr,
            "--pod-manifest-path",
            &manifests,
            "--healthz-bind-address",
            &health,
            // Two nodes on one host: each kubelet API on a port of its own.
            "--port",
            "0",
        ];
        // Without the add-on, pods keep the host's resolvers.
        let dns = self.slot.dns_ip();
        if self.options.dns {
            args.extend(["--cluster-dns", &dns]);
        }
        self.spawn(&node, "rkubelet", &args)
    }

    /// Kills the kubelet of node `i` with SIGKILL, as a crash.
    pub fn kill_kubelet(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes[i].clone();
        self.kill(&node)?;
        self.procs.retain(|p| p.name != node);
        Ok(())
    }

    /// Kills the daemon `name` (`controller-manager`, `scheduler`, a node
    /// name...) with SIGKILL, as a crash; [`restart`](Self::restart) starts
    /// it again with the same flags.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let p = self.procs.iter_mut().find(|p| p.name == name).context("no such daemon")?;
        p.child.kill()?;
        p.child.wait()?;
        Ok(())
    }

    /// Starts the killed daemon `name` again with its flags (its log is appended to).
    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let pos = self.procs.iter().position(|p| p.name == name).context("no such daemon")?;
        let p = self.procs.remove(pos);
        let args: Vec<&str> = p.args.iter().map(String::as_str).collect();
        self.spawn(name, &p.bin, &args)
    }

    /// Starts a second instance of daemon `name` (a standby
    /// `controller-manager` or `scheduler`) as `twin`: the same flags, its
    /// own health address.
    pub fn spawn_twin(&mut self, name: &str, twin: &str) -> anyhow::Result<()> {
        let p = self.procs.iter().find(|p| p.name == name).context("no such daemon")?;
        let (bin, mut args) = (p.bin.clone(), p.args.clone());
        let health = args.iter().position(|a| a == "--healthz-bind-address").context("no --healthz-bind-address")?;
        args[health + 1] = format!("127.0.0.1:{}", free_port());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn(twin, &bin, &args)
    }

    /// Whether daemon `name` leads: its `leader_election_master_status`
    /// gauge (on its health address's `/metrics`) is 1.
    pub async fn leads(&self, name: &str) -> anyhow::Result<bool> {
        let p = self.procs.iter().find(|p| p.name == name).context("no such daemon")?;
        let health = p.args.iter().position(|a| a == "--healthz-bind-address").context("no --healthz-bind-address")?;
        let (_, metrics) = http_get(&format!("http://{}/metrics", p.args[health + 1])).await?;
        Ok(metrics.lines().any(|l| l.contains("leader_election_master_status{") && l.ends_with(" 1")))
    }

    /// Starts another process of the workspace's binaries, stopped with the cluster.
    pub fn spawn(&mut self, name: &str, bin: &str, args: &[&str]) -> anyhow::Result<()> {
        let log = self.dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(binary(bin)?)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let args = args.iter().map(|a| a.to_string()).collect();
        self.procs.push(Process { name: name.to_string(), bin: bin.to_string(), args, child, log });
        Ok(())
    }

    async fn wait_healthy(&mut self, name: &str, url: &str) -> anyhow::Result<()> {
        let url = url.to_string();
        if wait_for(Duration::from_secs(30), || {
            let url = url.clone();
            async move { http_get(&url).await.is_ok_and(|(c, _)| c == 200) }
        })
        .await
        .is_err()
        {
            bail!("{name} did not become healthy\n{}", self.logs());
        }
        Ok(())
    }

    /// The last lines of every daemon's log (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in &self.procs {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!("--- {} ({}) ---\n{}\n", p.name, process_state(p.child.id()), tail.join("\n")));
        }
        out
    }

    /// Runs rkubectl against the cluster.
    pub fn rkubectl(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(binary("rkubectl")?).arg("--server").arg(&self.server).args(args).output()?)
    }

    /// Runs rkubectl and returns its stdout, failing with its stderr if it fails.
    pub fn rkubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        stdout_of(&format!("rkubectl {args:?}"), self.rkubectl(args)?)
    }

    /// The real kubectl (`$KUBECTL`, else `kubectl` on the PATH) with the
    /// cluster's own kubeconfig and discovery cache, ready to run `args`;
    /// its stdin, stdout and stderr are piped.
    pub fn kubectl_command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let config = self.kubeconfig_path()?;
        let mut cmd = Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()));
        cmd.arg("--kubeconfig")
            .arg(&config)
            .arg("--cache-dir")
            .arg(self.dir.join("kube-cache"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(cmd)
    }

    /// A kubeconfig file for this cluster (written on first use).
    pub fn kubeconfig_path(&self) -> anyhow::Result<PathBuf> {
        let config = self.dir.join("kubeconfig");
        if !config.exists() {
            std::fs::write(&config, rkube_client::config::kubeconfig_yaml(&self.server, "rkube-e2e"))?;
        }
        Ok(config)
    }

    /// Runs the real kubectl to the end with `stdin` fed to it (for `-f -`).
    pub fn kubectl_with(&self, args: &[&str], stdin: &str) -> anyhow::Result<Output> {
        let mut child = self.kubectl_command(args)?.spawn().context("running kubectl")?;
        {
            use std::io::Write as _;
            let mut input = child.stdin.take().context("kubectl's stdin")?;
            input.write_all(stdin.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    }

    /// Runs the real kubectl and returns its stdout, failing with its stderr if it fails.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.kubectl_ok_with(args, "")
    }

    /// [`Cluster::kubectl`] with `stdin` fed to kubectl.
    pub fn kubectl_ok_with(&self, args: &[&str], stdin: &str) -> anyhow::Result<String> {
        stdout_of(&format!("kubectl {args:?}"), self.kubectl_with(args, stdin)?)
    }

    /// Creates objects from YAML text through `rkubectl create -f`.
    pub fn create(&self, yaml: &str) -> anyhow::Result<String> {
        let path = self.dir.join(format!("manifest-{:08x}.yaml", fastrand::u32(..)));
        std::fs::write(&path, yaml)?;
        self.rkubectl_ok(&["create", "-f", &path.display().to_string()])
    }

    /// Polls `check` every 300 ms until it holds, for up to two minutes, or
    /// fails with `what`, the last error and the daemons' logs.
    pub async fn eventually(&self, what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
        const TIMEOUT: Duration = Duration::from_secs(120);
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            match check() {
                Ok(true) => return Ok(()),
                Ok(false) | Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(300)).await
                }
                Ok(false) => bail!("{what}: not within {TIMEOUT:?}\n{}", self.logs()),
                Err(e) => bail!("{what}: {e}\n{}", self.logs()),
            }
        }
    }

    /// A pod's JSON.
    pub fn pod(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.rkubectl_ok(&["get", "pod", name, "-o", "json"])?)?)
    }

    /// Waits until pod `name` satisfies `pred`, or fails with its state and the logs.
    pub async fn wait_pod(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(p) = self.pod(name) {
                if pred(&p) {
                    return Ok(p);
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "pod {name} did not reach the expected state in {timeout:?}: {}\n{}",
                        serde_json::to_string_pretty(&p["status"]).unwrap_or_default(),
                        self.logs()
                    );
                }
            } else if std::time::Instant::now() > deadline {
                bail!("pod {name} not found\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The directory of static pod manifests of node `i` (0-based).
    pub fn manifests_dir(&self, i: usize) -> PathBuf {
        self.dir.join(&self.nodes[i]).join("manifests")
    }

    fn cleanup(&mut self) {
        // Stop the daemons (scheduler and kubelets first), then clean what the
        // kubelets leave running by design: containers, networks, rules.
        for p in self.procs.iter_mut().rev() {
            let _ = Command::new("kill").arg(p.child.id().to_string()).status();
        }
        for p in self.procs.iter_mut().rev() {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline && matches!(p.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        let nodes = self.nodes.clone();
        let cidr = self.cluster_cidr.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async move {
                for node in &nodes {
                    let _ = remove_node_leftovers(node, &cidr).await;
                }
                let _ = remove_slot_leftovers(&cidr).await;
            });
        });
        let _ = cleanup.join();
        if (self.options.proxy || self.options.dns)
            && let Ok(proxy) = binary("rkube-proxy")
        {
            let table = self.slot.proxy_table();
            let _ = Command::new(proxy).args(["--cleanup", "--table", &table]).stdout(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A finished command's stdout, or an error naming `what`, its exit status
/// and its output.
pub fn stdout_of(what: &str, out: Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A process's state for failure messages: its state line and, if it is
/// sleeping, where in the kernel (a daemon that logged nothing is told apart
/// from one that never ran).
fn process_state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let state = status.lines().find_map(|l| l.strip_prefix("State:")).map(str::trim);
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    match state {
        Some(state) => format!("pid {pid}, {state}, wchan {wchan}"),
        None => format!("pid {pid}, exited"),
    }
}

async fn all_ready(client: &Client, nodes: &[String]) -> bool {
    let info = rkube_api::resource::lookup("nodes").expect("nodes are in the table");
    let Ok(list) = client.list(info, "", &rkube_client::ListParams::default()).await else { return false };
    let ready: HashMap<String, bool> = list
        .items
        .iter()
        .filter_map(|o| {
            let v: serde_json::Value = serde_json::from_slice(&o.json).ok()?;
            let ok =
                v["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
            Some((o.name.clone(), ok))
        })
        .collect();
    nodes.iter().all(|n| ready.get(n).copied().unwrap_or(false))
}

/// Removes every e2e node's pod network inside `cluster_cidr` (with its
/// containers and rules): what a slot's previous holder left if it was
/// killed, and nodes a test added beyond the cluster's own.
async fn remove_slot_leftovers(cluster_cidr: &str) -> anyhow::Result<()> {
    let cidr: rkube_api::cidr::Cidr = cluster_cidr.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let docker = bollard::Docker::connect_with_local_defaults()?.negotiate_version().await?;
    let networks = docker.list_networks(None::<bollard::query_parameters::ListNetworksOptions>).await?;
    for n in networks {
        let Some(node) = n.name.as_deref().and_then(|name| name.strip_prefix("rkube-")) else { continue };
        let inside = n.ipam.and_then(|i| i.config).unwrap_or_default().iter().any(|c| {
            c.subnet.as_deref().and_then(|s| s.parse::<rkube_api::cidr::Cidr>().ok()).is_some_and(|s| s.overlaps(&cidr))
        });
        if node.starts_with("e2e-") && inside {
            remove_node_leftovers(node, cluster_cidr).await?;
        }
    }
    Ok(())
}

/// Removes a node's containers, pod network and rules.
async fn remove_node_leftovers(node: &str, cluster_cidr: &str) -> anyhow::Result<()> {
    // A create the killed kubelet had in flight may land after the first
    // listing: look again until none is left.
    for attempt in 0..3 {
        let ids =
            Command::new("docker").args(["ps", "-aq", "--filter", &format!("label=io.rkube.node={node}")]).output()?;
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout).split_whitespace().map(str::to_string).collect();
        if ids.is_empty() && attempt > 0 {
            break;
        }
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).stdout(Stdio::null()).status();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let docker = bollard::Docker::connect_with_local_defaults()?.negotiate_version().await?;
    let network = format!("rkube-{node}");
    if let Ok(n) = docker.inspect_network(&network, None::<bollard::query_parameters::InspectNetworkOptions>).await {
        let subnet = n.ipam.and_then(|i| i.config).and_then(|c| c.into_iter().find_map(|c| c.subnet));
        if let Some(subnet) = subnet {
            // ensure() adopts the existing network; teardown() removes it with its rules.
            if let Ok(net) = rkube_podnet::PodNetwork::ensure(&docker, node, &subnet, cluster_cidr).await {
                let _ = net.teardown(&docker).await;
            }
        }
    }
    Ok(())
}

/// Starts Docker if needed and builds the local images if missing (and the
/// DNS image, when `dns`; deploy/run-tests.sh builds it before the tests).
async fn ensure_docker_and_images(dns: bool) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("deploy/start-docker.sh");
    let out = tokio::process::Command::new("bash").arg(&script).output().await?;
    if !out.status.success() {
        bail!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    }
    let image = format!("rkube/dns:{}", env!("CARGO_PKG_VERSION"));
    let missing = || async {
        let inspect = tokio::process::Command::new("docker").args(["image", "inspect", &image]).output().await;
        !inspect.is_ok_and(|o| o.status.success())
    };
    if dns && missing().await {
        let out = tokio::process::Command::new("bash").arg(root.join("images/build.sh")).arg("dns").output().await?;
        if !out.status.success() {
            bail!("images/build.sh dns failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}
