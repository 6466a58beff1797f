//! What the kubelet reports about the machine it runs on: hostname, OS,
//! kernel, CPUs, memory and its IP address. Read from `/proc`, `/etc` and
//! `/sys`; each reader has a pure parser beside it so the formats are tested.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// Facts about the host, as the Node object reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// The lower-cased hostname (the default node name).
    pub hostname: String,
    /// `PRETTY_NAME` of `/etc/os-release` (e.g. `Debian GNU/Linux 12 (bookworm)`).
    pub os_image: String,
    /// The running kernel's release (`uname -r`).
    pub kernel_version: String,
    /// The Go-style architecture name (`amd64`, `arm64`).
    pub architecture: String,
    /// The operating system (`linux`).
    pub operating_system: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// The DMI product UUID, when readable.
    pub system_uuid: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// Logical CPUs.
    pub cpus: u32,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

impl HostInfo {
    /// Reads the facts of this machine; missing files leave fields empty
    /// rather than failing (a container may hide some of them).
    pub fn detect() -> HostInfo {
        let hostname = [read_trimmed("/proc/sys/kernel/hostname"), read_trimmed("/etc/hostname")]
            .into_iter()
            .find(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
            .to_lowercase();
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| pretty_name(&t))
            .unwrap_or_else(|| "Linux".into());
        let cpus = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .map(|t| count_processors(&t))
            .filter(|n| *n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get() as u32))
            .unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| mem_total(&t)).unwrap_or(0);
        HostInfo {
            hostname,
            os_image,
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            operating_system: std::env::consts::OS.to_string(),
            machine_id: read_trimmed("/etc/machine-id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            cpus,
            memory_bytes,
        }
    }
}

/// `PRETTY_NAME` from the text of `/etc/os-release`, unquoted.
pub fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        let v = l.trim().strip_prefix("PRETTY_NAME=")?;
        Some(v.trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// The number of `processor` entries in `/proc/cpuinfo`.
pub fn count_processors(cpuinfo: &str) -> u32 {
    cpuinfo.lines().filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor")).count() as u32
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    Some(match parts.next() {
        Some("kB") => n * 1024,
        _ => n,
    })
}

/// Rust's architecture name in Go's (and so Kubernetes') spelling.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The host's first non-loopback IPv4 address: the source address of the
/// default route if there is one, else the first local address the kernel
/// lists, else 127.0.0.1.
pub fn default_node_ip() -> IpAddr {
    // Connecting a UDP socket sends nothing; it only asks the kernel for a route.
    let routed = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    routed
        .or_else(|| {
            let text = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
            local_addresses(&text).into_iter().next().map(IpAddr::V4)
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The non-loopback local IPv4 addresses in `/proc/net/fib_trie`, in order.
pub fn local_addresses(fib_trie: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start();
        if let Some(addr) = t.strip_prefix("|-- ").or_else(|| t.strip_prefix("+-- ")) {
            last = addr.split('/').next().and_then(|a| a.trim().parse().ok());
        } else if t.contains("host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_name_is_unquoted() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(pretty_name(text).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(pretty_name("ID=alpine\n"), None);
    }

    #[test]
    fn processors_are_counted_once_each() {
        let text = "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n";
        assert_eq!(count_processors(text), 2);
    }

    #[test]
    fn mem_total_is_read_in_bytes() {
        let text = "MemTotal:       16314144 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(text), Some(16314144 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn architectures_use_go_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
    }

    #[test]
    fn local_addresses_skip_loopback_and_duplicates() {
        let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     \
                    +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\n     \
                    |-- 10.0.0.5\n        /32 host LOCAL\nLocal:\n     |-- 10.0.0.5\n        /32 host LOCAL\n";
        assert_eq!(local_addresses(text), vec![Ipv4Addr::new(10, 0, 0, 5)]);
    }
}
