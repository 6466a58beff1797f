//! The multi-host test bed (`deploy/testbed.sh`) from a test: a master and
//! node "hosts" as network namespaces, each node with its own Docker engine,
//! joined by an underlay bridge. One per address slot, so test beds of
//! parallel tests do not collide: slot `i` owns the underlay `10.245.<i>.0/24`
//! and the names `e2e<i>`. Dropping a [`TestBed`] runs `down`.
//!
//! The test bed is secure: TLS on the apiservers' port 6443, RBAC, kubelets
//! that answer only the apiserver. [`TestBed::rkubectl`] is the cluster
//! admin ([`TestBed::kubeconfig`]); [`TestBed::pki`] holds every other
//! credential.

use crate::Slot;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A running test bed.
#[derive(Debug)]
pub struct TestBed {
    name: String,
    underlay: String,
    /// Three masters (etcd cluster, two apiservers) instead of one.
    ha: bool,
    _slot: Slot,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/testbed.sh")
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    Ok(out)
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

impl TestBed {
    /// Brings up a master and `nodes` node hosts (every node Ready);
    /// `controller_manager_flags` are added to the controller manager's.
    pub fn up(nodes: u8, controller_manager_flags: &str) -> anyhow::Result<TestBed> {
        Self::start(nodes, controller_manager_flags, false)
    }

    /// Brings up the highly available form (`--ha`): three master hosts
    /// with an etcd member each, apiservers, controller managers and
    /// schedulers on `master` and `master-2`, and `nodes` node hosts.
    pub fn up_ha(nodes: u8) -> anyhow::Result<TestBed> {
        Self::start(nodes, "", true)
    }

    fn start(nodes: u8, controller_manager_flags: &str, ha: bool) -> anyhow::Result<TestBed> {
        let slot = Slot::acquire()?;
        let bed = TestBed {
            name: format!("e2e{}", slot.index()),
            underlay: format!("10.245.{}", slot.index()),
            ha,
            _slot: slot,
        };
        // A previous holder of the slot that was killed may have left one.
        bed.script(&["down"])?;
        let nodes = nodes.to_string();
        let mut args = vec!["up", "--name", &bed.name, "--nodes", &nodes, "--underlay", &bed.underlay];
        if ha {
            args.push("--ha");
        }
        let out = run(Command::new("bash")
            .arg(script())
            .args(args)
            .env("TESTBED_CONTROLLER_MANAGER_FLAGS", controller_manager_flags))?;
        if !out.status.success() {
            bail!("deploy/testbed.sh up failed:\n{}\n{}", text(&out), bed.logs());
        }
        Ok(bed)
    }

    /// Runs `up` again: starts whatever of the test bed is not running.
    pub fn up_again(&self, nodes: u8) -> anyhow::Result<()> {
        let nodes = nodes.to_string();
        let out = self.script(&["up", "--nodes", &nodes, "--underlay", &self.underlay])?;
        if !out.status.success() {
            bail!("deploy/testbed.sh up (again) failed:\n{}\n{}", text(&out), self.logs());
        }
        Ok(())
    }

    /// The test bed's state directory.
    fn state(&self) -> PathBuf {
        Path::new("/var/lib/rkube-testbed").join(&self.name)
    }

    /// The cluster's certificate directory (`rkube-certs`): `ca.crt`,
    /// `admin.crt`/`.key`, `node-<node>.crt`/`.key`, the kubeconfigs…
    pub fn pki(&self) -> PathBuf {
        self.state().join("pki")
    }

    /// The cluster admin's kubeconfig (system:masters; names the master's
    /// apiserver).
    pub fn kubeconfig(&self) -> PathBuf {
        self.pki().join("admin.kubeconfig")
    }

    /// The pid of `daemon` (`dockerd`, `kubelet`, `apiserver`…) on `host`.
    pub fn pid(&self, host: &str, daemon: &str) -> anyhow::Result<u32> {
        let path = self.state().join(host).join(format!("{daemon}.pid"));
        let pid = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        pid.trim().parse().with_context(|| format!("{} holds no pid", path.display()))
    }

    fn script(&self, args: &[&str]) -> anyhow::Result<Output> {
        let (cmd, rest) = args.split_first().context("a subcommand")?;
        run(Command::new("bash").arg(script()).arg(cmd).args(["--name", &self.name]).args(rest))
    }

    /// The test bed's name (its namespaces are `rktb-<name>-<host>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The apiserver's URL (on the master's underlay address); with
    /// [`TestBed::up_ha`], both apiservers' (master's first). Give it with
    /// [`TestBed::kubeconfig`] (or another credential).
    pub fn server(&self) -> String {
        if self.ha {
            format!("{},{}", self.api_url("master"), self.api_url("master-2"))
        } else {
            self.api_url("master")
        }
    }

    /// The URL of the apiserver on master host `host` (`master`, `master-2`).
    pub fn api_url(&self, host: &str) -> String {
        format!("https://{}:6443", self.master_ip(host))
    }

    /// The underlay address of a master host (`master`, `master-2`, `master-3`).
    pub fn master_ip(&self, host: &str) -> String {
        match host.strip_prefix("master-") {
            Some(k) => format!("{}.{k}0", self.underlay),
            None => format!("{}.10", self.underlay),
        }
    }

    /// A node host's underlay address (`node` from 1).
    pub fn node_ip(&self, node: u8) -> String {
        format!("{}.1{node}", self.underlay)
    }

    /// The host side of a host's veth on the underlay (`node` 0: the master).
    pub fn veth(&self, node: u8) -> String {
        if node == 0 { format!("v{}m", self.name) } else { format!("v{}{node}", self.name) }
    }

    /// Runs rkubectl against the test bed; its stdout, or an error with its output.
    pub fn rkubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run(Command::new(crate::bin_dir().join("rkubectl"))
            .arg("--server")
            .arg(self.server())
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args))?;
        if !out.status.success() {
            bail!("rkubectl {} failed: {}", args.join(" "), text(&out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `command` in `host`'s namespace (`master`, `node-1`, …).
    pub fn exec(&self, host: &str, command: &[&str]) -> anyhow::Result<Output> {
        let mut args = vec!["exec", host];
        args.extend_from_slice(command);
        self.script(&args)
    }

    /// Polls `check` every 300 ms until it holds or `timeout` passes.
    pub async fn eventually(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            match check() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                bail!("{what}: not within {timeout:?} {last}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The end of every daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        let dir = self.state();
        let mut all = String::new();
        for host in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for log in std::fs::read_dir(host.path()).into_iter().flatten().flatten() {
                let path = log.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let body = std::fs::read_to_string(&path).unwrap_or_default();
                    let tail: Vec<&str> = body.lines().rev().take(15).collect();
                    all += &format!("--- {} ---\n", path.display());
                    for line in tail.into_iter().rev() {
                        all += line;
                        all.push('\n');
                    }
                }
            }
        }
        all
    }

    /// Runs `down` now (also done on drop) and reports its output.
    pub fn down(&self) -> anyhow::Result<()> {
        let out = self.script(&["down"])?;
        if !out.status.success() {
            bail!("deploy/testbed.sh down failed: {}", text(&out));
        }
        Ok(())
    }

    /// What of the test bed is left on this machine: namespaces, links,
    /// iptables rules, state directories, processes.
    pub fn leftovers(&self) -> anyhow::Result<Vec<String>> {
        let mut left = Vec::new();
        let netns = run(Command::new("ip").args(["netns", "list"]))?;
        let prefix = format!("rktb-{}-", self.name);
        left.extend(text(&netns).lines().filter(|l| l.starts_with(&prefix)).map(|l| format!("namespace {l}")));
        let links = run(Command::new("ip").args(["-o", "link", "show"]))?;
        let masters = [format!("v{}m2", self.name), format!("v{}m3", self.name)];
        for link in [format!("rktb{}", self.name), self.veth(0), self.veth(1)].into_iter().chain(masters) {
            if text(&links).lines().any(|l| l.split(": ").nth(1).is_some_and(|n| n.split('@').next() == Some(&link))) {
                left.push(format!("link {link}"));
            }
        }
        let rules = run(Command::new("iptables").args(["-w", "-S", "FORWARD"]))?;
        let comment = format!("rkube test bed {}", self.name);
        left.extend(text(&rules).lines().filter(|l| l.contains(&comment)).map(|l| format!("rule {l}")));
        for dir in [format!("/var/lib/rkube-testbed/{}", self.name), format!("/run/rkube-tb/{}", self.name)] {
            if Path::new(&dir).exists() {
                left.push(format!("directory {dir}"));
            }
        }
        let procs = run(Command::new("pgrep").args(["-fa", &format!("rkube-tb/{}/", self.name)]))?;
        left.extend(text(&procs).lines().filter(|l| !l.contains("pgrep")).map(|l| format!("process {l}")));
        Ok(left)
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
    }
}
