//! Address slots: what keeps test clusters that run at the same time on
//! one host from stepping on each other.
//!
//! A cluster holds one slot for its life: a lock file under the temp dir
//! naming the process. Slot `i` owns the pod CIDR `10.249.<16i>.0/20`, the
//! service range `10.248.<i>.0/24`, the node ports `30000+100i` to
//! `+99`, the multi-host test bed's underlay `10.245.<i>.0/24`, and the
//! address `10.250.255.<100+i>` its apiserver advertises to
//! pods, on a bridge of its own (`rke2e<i>`) that the slot creates and
//! removes. A lock left by a process that died is taken over.

use anyhow::{Context as _, bail};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How many clusters may run at once.
pub const SLOTS: u8 = 16;

/// One cluster's share of the host's addresses; see the module docs.
#[derive(Debug)]
pub struct Slot {
    index: u8,
    lock: PathBuf,
    bridge: bool,
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("rkube-e2e-slots")
}

fn alive(pid: &str) -> bool {
    pid.trim().parse::<u32>().is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Creates the lock file `lock` holding this process's id; fails with
/// `AlreadyExists` when another holds it.
fn claim(lock: &std::path::Path) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(lock)?;
    std::io::Write::write_all(&mut f, std::process::id().to_string().as_bytes())
}

impl Slot {
    /// Takes a free slot (in random order, so parallel tests spread).
    pub fn acquire() -> anyhow::Result<Slot> {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir)?;
        let start = fastrand::u8(..SLOTS);
        for k in 0..SLOTS {
            let index = (start + k) % SLOTS;
            let lock = dir.join(index.to_string());
            match claim(&lock) {
                Ok(()) => return Ok(Slot { index, lock, bridge: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Held by a process that is gone: take it over.
                    let holder = std::fs::read_to_string(&lock).unwrap_or_default();
                    if !holder.is_empty() && !alive(&holder) && std::fs::remove_file(&lock).is_ok() {
                        claim(&lock)?;
                        return Ok(Slot { index, lock, bridge: false });
                    }
                }
                Err(e) => return Err(e).context("taking an address slot"),
            }
        }
        bail!("all {SLOTS} address slots are taken: too many clusters at once")
    }

    /// The slot's number, `0..SLOTS`.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The pod CIDR the controller-manager cuts node ranges from.
    pub fn cluster_cidr(&self) -> String {
        format!("10.249.{}.0/20", 16 * u32::from(self.index))
    }

    /// The ClusterIP range.
    pub fn service_range(&self) -> String {
        format!("10.248.{}.0/24", self.index)
    }

    /// The cluster DNS Service's address.
    pub fn dns_ip(&self) -> String {
        format!("10.248.{}.10", self.index)
    }

    /// The node port range, `first-last`.
    pub fn node_port_range(&self) -> String {
        let first = 30000 + 100 * u32::from(self.index);
        format!("{first}-{}", first + 99)
    }

    /// The address the apiserver advertises to pods.
    pub fn advertise_ip(&self) -> String {
        format!("10.250.255.{}", 100 + u32::from(self.index))
    }

    /// The proxy's nftables table.
    pub fn proxy_table(&self) -> String {
        format!("rkube-e2e-{}", self.index)
    }

    fn bridge_name(&self) -> String {
        format!("rke2e{}", self.index)
    }

    /// Creates the bridge that holds the advertised address (a bridge with
    /// no ports: a local address pods reach through their gateway).
    pub fn create_bridge(&mut self) -> anyhow::Result<()> {
        let name = self.bridge_name();
        let _ = ip(&["link", "del", &name]);
        ip(&["link", "add", &name, "type", "bridge"])?;
        self.bridge = true;
        ip(&["addr", "add", &format!("{}/32", self.advertise_ip()), "dev", &name])?;
        ip(&["link", "set", &name, "up"])
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    if !status.success() {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.bridge {
            let _ = ip(&["link", "del", &self.bridge_name()]);
        }
        let _ = std::fs::remove_file(&self.lock);
    }
}
