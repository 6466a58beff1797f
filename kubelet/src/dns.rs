//! A pod's `/etc/resolv.conf`, by Kubernetes' rules
//! (`pkg/kubelet/network/dns/dns.go`):
//!
//! - `ClusterFirst` (the default): the `--cluster-dns` servers only, the
//!   search path `<ns>.svc.<domain> svc.<domain> <domain>` followed by the
//!   host's, and `options ndots:5`. Without `--cluster-dns` the pod falls
//!   back to `Default` (with a `MissingClusterDNS` warning); a hostNetwork
//!   pod does too, unless its policy is `ClusterFirstWithHostNet`;
//! - `Default`: the host's resolver configuration (`--resolv-conf`; with
//!   `--resolv-conf=""`, `nameserver 127.0.0.1` and `search .`);
//! - `None`: nothing but the pod's `dnsConfig`.
//!
//! The pod's `dnsConfig` is merged into every policy: nameservers and
//! searches appended without duplicates, options by name (a later value
//! wins). The result is cut to Kubernetes' limits (3 nameservers, 32 search
//! domains of at most 2048 characters in all), with a warning.
//!
//! The file is written into the pod's directory ([`write_resolv_conf`]) and
//! bind-mounted on `/etc/resolv.conf` in every container, as containerd
//! does for its sandboxes; when the configuration is empty the host's file
//! is copied instead.

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The name of the file in the pod's directory.
pub const RESOLV_CONF_FILE: &str = "resolv.conf";
/// Where it is mounted in every container.
pub const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";
/// The most nameservers a resolver reads (glibc's MAXNS).
pub const MAX_NAMESERVERS: usize = 3;
/// The most search domains (Kubernetes' MaxDNSSearchPaths).
pub const MAX_SEARCH_PATHS: usize = 32;
/// The longest search line, in characters (Kubernetes' MaxDNSSearchListChars).
pub const MAX_SEARCH_CHARS: usize = 2048;
/// `options` of cluster DNS.
const CLUSTER_OPTIONS: &str = "ndots:5";

/// The kubelet's DNS flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// `--cluster-dns`: the cluster's DNS servers (empty: none).
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain` (`cluster.local`).
    pub cluster_domain: String,
    /// `--resolv-conf`: the host's resolver file ("" for none).
    pub resolv_conf: String,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: "/etc/resolv.conf".into(),
        }
    }
}

/// A resolver configuration: what a resolv.conf says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line (`ndots:5`, `edns0`).
    pub options: Vec<String>,
}

impl DnsConfig {
    /// Whether it says nothing at all.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.searches.is_empty() && self.options.is_empty()
    }

    /// The file, as containerd writes it: search, nameservers, options.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for s in &self.servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// Parses a resolv.conf: every `nameserver`, the last `search` line (without
/// `.` and trailing dots), and the options (one per name, the last wins).
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut out = DnsConfig::default();
    for line in text.lines() {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => out.servers.extend(fields.next().map(str::to_string)),
            Some("search") => {
                out.searches = fields.filter(|s| *s != ".").map(|s| s.trim_end_matches('.').to_string()).collect();
            }
            Some("options") => fields.for_each(|o| set_option(&mut out.options, o)),
            _ => {}
        }
    }
    out
}

/// Sets option `option` (`name` or `name:value`), replacing one of its name.
fn set_option(options: &mut Vec<String>, option: &str) {
    let name = |o: &str| o.split(':').next().unwrap_or_default().to_string();
    match options.iter_mut().find(|o| name(o) == name(option)) {
        Some(existing) => *existing = option.to_string(),
        None => options.push(option.to_string()),
    }
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// Which base configuration a pod starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodDnsType {
    Cluster,
    Host,
    None,
}

fn dns_type(pod: &Pod) -> PodDnsType {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network) == Some(true);
    match spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst") {
        "None" => PodDnsType::None,
        "ClusterFirstWithHostNet" => PodDnsType::Cluster,
        "Default" => PodDnsType::Host,
        _ if host_network => PodDnsType::Host,
        _ => PodDnsType::Cluster,
    }
}

/// A pod's resolver configuration and what to warn about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDns {
    /// The configuration to write.
    pub config: DnsConfig,
    /// Warnings for events: (reason, message).
    pub warnings: Vec<(&'static str, String)>,
}

/// The resolver configuration of `pod` under `settings`, with `host` the
/// parsed `--resolv-conf` (ignored when it is "").
pub fn pod_dns(pod: &Pod, settings: &DnsSettings, host: &DnsConfig) -> PodDns {
    let mut warnings = Vec::new();
    let host_config = || {
        if settings.resolv_conf.is_empty() {
            DnsConfig { servers: vec!["127.0.0.1".into()], searches: vec![".".into()], options: vec![] }
        } else {
            host.clone()
        }
    };
    let mut config = match dns_type(pod) {
        PodDnsType::None => DnsConfig::default(),
        PodDnsType::Cluster if !settings.cluster_dns.is_empty() => DnsConfig {
            servers: settings.cluster_dns.iter().map(IpAddr::to_string).collect(),
            searches: cluster_searches(pod, &settings.cluster_domain, &host.searches),
            options: vec![CLUSTER_OPTIONS.into()],
        },
        PodDnsType::Cluster => {
            warnings.push((
                "MissingClusterDNS",
                "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. \
                 Falling back to \"Default\" policy."
                    .to_string(),
            ));
            host_config()
        }
        PodDnsType::Host => host_config(),
    };
    if let Some(extra) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        merge(&mut config, extra);
    }
    fit_limits(&mut config, &mut warnings);
    PodDns { config, warnings }
}

/// `<ns>.svc.<domain> svc.<domain> <domain>`, then the host's searches.
fn cluster_searches(pod: &Pod, domain: &str, host_searches: &[String]) -> Vec<String> {
    if domain.is_empty() {
        return host_searches.to_vec();
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    push_unique(
        &mut out,
        [format!("{namespace}.svc.{domain}"), format!("svc.{domain}"), domain.to_string()]
            .into_iter()
            .chain(host_searches.iter().cloned()),
    );
    out
}

/// Kubernetes' `appendDNSConfig`.
fn merge(config: &mut DnsConfig, extra: &PodDNSConfig) {
    push_unique(&mut config.servers, extra.nameservers.iter().flatten().cloned());
    push_unique(&mut config.searches, extra.searches.iter().flatten().cloned());
    for o in extra.options.iter().flatten() {
        let Some(name) = o.name.as_deref().filter(|n| !n.is_empty()) else { continue };
        match o.value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => set_option(&mut config.options, &format!("{name}:{v}")),
            None => set_option(&mut config.options, name),
        }
    }
}

/// Kubernetes' `formDNSConfigFitsLimits`.
fn fit_limits(config: &mut DnsConfig, warnings: &mut Vec<(&'static str, String)>) {
    if config.servers.len() > MAX_NAMESERVERS {
        config.servers.truncate(MAX_NAMESERVERS);
        warnings.push((
            "DNSConfigForming",
            format!("Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}", config.servers.join(" ")),
        ));
    }
    let before = config.searches.len();
    config.searches.truncate(MAX_SEARCH_PATHS);
    let mut chars = 0;
    let fitting = config
        .searches
        .iter()
        .take_while(|s| {
            chars += s.len() + usize::from(chars > 0);
            chars <= MAX_SEARCH_CHARS
        })
        .count();
    config.searches.truncate(fitting);
    if config.searches.len() < before {
        warnings.push((
            "DNSConfigForming",
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                config.searches.join(" ")
            ),
        ));
    }
}

/// The pod's resolv.conf path: `<pod dir>/resolv.conf`.
pub fn resolv_conf_path(pod_dir: &Path) -> PathBuf {
    pod_dir.join(RESOLV_CONF_FILE)
}

/// Reads and parses the host's resolver file (empty when `path` is "" or
/// unreadable, with the text kept for copying).
pub fn read_host(path: &str) -> (DnsConfig, String) {
    if path.is_empty() {
        return (DnsConfig::default(), String::new());
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    (parse_resolv_conf(&text), text)
}

/// Writes `config` to `<pod_dir>/resolv.conf` (the host's file `host_text`
/// when the configuration is empty, as containerd does), atomically.
pub fn write_resolv_conf(pod_dir: &Path, config: &DnsConfig, host_text: &str) -> io::Result<PathBuf> {
    std::fs::create_dir_all(pod_dir)?;
    let path = resolv_conf_path(pod_dir);
    let text = if config.is_empty() { host_text.to_string() } else { config.render() };
    let tmp = pod_dir.join(format!(".{RESOLV_CONF_FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOST: &str = "# generated\nnameserver 192.168.1.1\nnameserver 192.168.1.2\n\
        search corp.example. lab.example .\noptions timeout:2 edns0\n";

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([]);
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "prod"}, "spec": spec})).unwrap()
    }

    fn cluster() -> DnsSettings {
        DnsSettings { cluster_dns: vec!["10.254.0.10".parse().unwrap()], ..Default::default() }
    }

    fn render(pod: &Pod, settings: &DnsSettings) -> String {
        pod_dns(pod, settings, &parse_resolv_conf(HOST)).config.render()
    }

    #[test]
    fn host_files_parse_like_kubernetes() {
        let c = parse_resolv_conf(HOST);
        assert_eq!(c.servers, ["192.168.1.1", "192.168.1.2"]);
        assert_eq!(c.searches, ["corp.example", "lab.example"]);
        assert_eq!(c.options, ["timeout:2", "edns0"]);
        let c = parse_resolv_conf("search a\nsearch b c\noptions ndots:1\noptions ndots:2 rotate\n");
        assert_eq!(
            (c.searches, c.options),
            (vec!["b".to_string(), "c".into()], vec!["ndots:2".into(), "rotate".into()])
        );
    }

    #[test]
    fn cluster_first_uses_cluster_dns_and_namespace_search_path() {
        assert_eq!(
            render(&pod(json!({})), &cluster()),
            "search prod.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
             nameserver 10.254.0.10\noptions ndots:5\n"
        );
        let custom = DnsSettings { cluster_domain: "rkube.test".into(), ..cluster() };
        let text = render(&pod(json!({"dnsPolicy": "ClusterFirst"})), &custom);
        assert!(text.starts_with("search prod.svc.rkube.test svc.rkube.test rkube.test corp.example"), "{text}");
    }

    #[test]
    fn cluster_first_without_cluster_dns_falls_back_to_default_with_a_warning() {
        let dns = pod_dns(&pod(json!({})), &DnsSettings::default(), &parse_resolv_conf(HOST));
        assert_eq!(dns.config, parse_resolv_conf(HOST));
        assert_eq!(dns.warnings.len(), 1);
        assert_eq!(dns.warnings[0].0, "MissingClusterDNS");
    }

    #[test]
    fn default_uses_the_hosts_configuration() {
        assert_eq!(
            render(&pod(json!({"dnsPolicy": "Default"})), &cluster()),
            "search corp.example lab.example\nnameserver 192.168.1.1\nnameserver 192.168.1.2\n\
             options timeout:2 edns0\n"
        );
        let no_host = DnsSettings { resolv_conf: String::new(), ..cluster() };
        assert_eq!(render(&pod(json!({"dnsPolicy": "Default"})), &no_host), "search .\nnameserver 127.0.0.1\n");
    }

    #[test]
    fn host_network_pods_use_default_unless_cluster_first_with_host_net() {
        let host_net = pod(json!({"hostNetwork": true}));
        assert!(render(&host_net, &cluster()).contains("nameserver 192.168.1.1"));
        let with_host_net = pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert!(render(&with_host_net, &cluster()).contains("nameserver 10.254.0.10\n"));
    }

    #[test]
    fn none_uses_only_the_dns_config() {
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["my.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(render(&p, &cluster()), "search my.example\nnameserver 1.1.1.1\noptions ndots:2 edns0\n");
    }

    #[test]
    fn dns_config_merges_into_every_policy() {
        let p = pod(json!({"dnsConfig": {
            "nameservers": ["10.254.0.10", "8.8.8.8"], "searches": ["cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"}]}}));
        assert_eq!(
            render(&p, &cluster()),
            "search prod.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example extra.example\n\
             nameserver 10.254.0.10\nnameserver 8.8.8.8\noptions ndots:1 single-request-reopen\n"
        );
    }

    #[test]
    fn limits_cut_nameservers_and_search_paths_with_warnings() {
        let p = pod(json!({"dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8"],
            "searches": (0..40).map(|i| format!("d{i}.example")).collect::<Vec<_>>()}}));
        let dns = pod_dns(&p, &cluster(), &DnsConfig::default());
        assert_eq!(dns.config.servers, ["10.254.0.10", "1.1.1.1", "1.0.0.1"]);
        assert_eq!(dns.config.searches.len(), MAX_SEARCH_PATHS);
        let reasons: Vec<_> = dns.warnings.iter().map(|w| w.0).collect();
        assert_eq!(reasons, ["DNSConfigForming", "DNSConfigForming"]);
    }

    #[test]
    fn the_file_is_written_into_the_pod_dir_or_copied_from_the_host() {
        let dir = std::env::temp_dir().join(format!("rkubelet-dns-{}-{}", std::process::id(), line!()));
        let config = DnsConfig { servers: vec!["10.0.0.10".into()], ..Default::default() };
        let path = write_resolv_conf(&dir, &config, HOST).unwrap();
        assert_eq!(path, dir.join("resolv.conf"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "nameserver 10.0.0.10\n");
        write_resolv_conf(&dir, &DnsConfig::default(), HOST).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), HOST);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
