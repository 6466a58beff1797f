//! The `rkube-certs` command line, with kubeadm's flag names where kubeadm has one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use clap::Parser;

use crate::pki::{server_host, validate_node_name};
use crate::{Error, Pki, Result};

/// Creates the cluster's CA, certificates and kubeconfigs in a directory, keeping any that exist.
#[derive(Debug, Parser)]
#[command(name = "rkube-certs", version, about)]
pub struct Args {
    /// Directory for the certificates, keys and kubeconfigs (created with mode 0700).
    #[arg(long, visible_alias = "cert-dir", env = "RKUBE_CERT_DIR")]
    pub dir: PathBuf,

    /// The apiserver URL written into the kubeconfigs, e.g. https://127.0.0.1:6443. Its host also
    /// goes into the apiserver's serving certificate.
    #[arg(long, env = "RKUBE_SERVER", value_parser = parse_server)]
    pub server: String,

    /// Extra DNS names or IP addresses for the apiserver's serving certificate, comma-separated.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', value_parser = parse_san, env = "RKUBE_APISERVER_CERT_EXTRA_SANS")]
    pub apiserver_cert_extra_sans: Vec<String>,

    /// The Service CIDR, e.g. 10.96.0.0/12. Its first address, the `kubernetes` Service's ClusterIP,
    /// goes into the apiserver's serving certificate.
    #[arg(long = "service-cidr", value_name = "CIDR", value_parser = parse_service_cidr, env = "RKUBE_SERVICE_CIDR")]
    pub service_ip: Option<IpAddr>,

    /// Extra DNS names or IP addresses for etcd's serving and peer certificates (its members'
    /// addresses), comma-separated; localhost, 127.0.0.1 and ::1 are always in them.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', value_parser = parse_san, env = "RKUBE_ETCD_CERT_EXTRA_SANS")]
    pub etcd_cert_extra_sans: Vec<String>,

    /// A node to issue a kubelet client and serving certificate for; `NAME=IP,IP` adds the node's
    /// IPs to its serving certificate. Repeat for more nodes.
    #[arg(long = "node", value_name = "NAME[=IP,...]", value_parser = parse_node)]
    pub nodes: Vec<NodeArg>,
}

/// One `--node` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeArg {
    /// The node name.
    pub name: String,
    /// Its IPs, for the kubelet serving certificate.
    pub ips: Vec<IpAddr>,
}

impl Args {
    /// The PKI these flags describe. Fails if a node is given twice (its files would be ambiguous).
    pub fn into_pki(self) -> Result<Pki> {
        let mut pki = Pki {
            dir: self.dir,
            server: self.server,
            apiserver_names: self.apiserver_cert_extra_sans,
            service_ip: self.service_ip,
            etcd_names: self.etcd_cert_extra_sans,
            ..Pki::default()
        };
        for node in self.nodes {
            if pki.nodes.contains(&node.name) {
                return Err(Error::InvalidNodeName { name: node.name, reason: "given twice in --node".to_owned() });
            }
            pki.node_ips.insert(node.name.clone(), node.ips);
            pki.nodes.push(node.name);
        }
        Ok(pki)
    }
}

fn parse_server(value: &str) -> Result<String, String> {
    let usage = "expected an https URL such as https://127.0.0.1:6443";
    if !value.starts_with("https://") || value.contains(char::is_whitespace) {
        return Err(format!("not an https URL; {usage}"));
    }
    if server_host(value).is_none() {
        return Err(format!("the URL has no host; {usage}"));
    }
    Ok(value.to_owned())
}

fn parse_san(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty name (a stray comma?)".to_owned());
    }
    let dns_name = value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b));
    if value.parse::<IpAddr>().is_err() && !dns_name {
        return Err(format!("{value:?} is neither an IP address nor a DNS name"));
    }
    Ok(value.to_owned())
}

/// The first host address of a CIDR, as Kubernetes assigns it to the `kubernetes` Service.
fn parse_service_cidr(value: &str) -> Result<IpAddr, String> {
    let (address, prefix) = value.split_once('/').ok_or("expected ADDRESS/PREFIX, e.g. 10.96.0.0/12")?;
    let address: IpAddr = address.parse().map_err(|_| format!("{address:?} is not an IP address"))?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|prefix| *prefix < bits)
        .ok_or_else(|| format!("{prefix:?} is not a prefix length with room for addresses (0 to {})", bits - 1))?;
    Ok(match address {
        IpAddr::V4(address) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from((u32::from(address) & mask) + 1))
        }
        IpAddr::V6(address) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from((u128::from(address) & mask) + 1))
        }
    })
}

fn parse_node(value: &str) -> Result<NodeArg, String> {
    let (name, ips) = match value.split_once('=') {
        Some((name, ips)) => (name, Some(ips)),
        None => (value, None),
    };
    validate_node_name(name).map_err(|reason| format!("node name {name:?} {reason}"))?;
    let ips = ips
        .map(|ips| ips.split(',').map(|ip| ip.trim().parse().map_err(|_| format!("{ip:?} is not an IP address"))))
        .into_iter()
        .flatten()
        .collect::<Result<_, _>>()?;
    Ok(NodeArg { name: name.to_owned(), ips })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let base = ["rkube-certs", "--dir", "/tmp/pki", "--server", "https://127.0.0.1:6443"];
        Args::try_parse_from(base.iter().chain(extra))
    }

    fn error(extra: &[&str]) -> String {
        parse(extra).expect_err("invalid input").to_string()
    }

    #[test]
    fn service_ip_is_the_first_address_of_the_cidr() {
        let ip = |cidr| parse(&["--service-cidr", cidr]).expect("valid").service_ip.expect("set").to_string();
        assert_eq!(ip("10.254.0.0/16"), "10.254.0.1");
        assert_eq!(ip("10.96.3.7/12"), "10.96.0.1");
        assert_eq!(ip("fd00:10:96::/108"), "fd00:10:96::1");
        assert_eq!(ip("0.0.0.0/0"), "0.0.0.1");
    }

    #[test]
    fn bad_service_cidr_names_the_flag_and_the_problem() {
        let err = error(&["--service-cidr", "10.254.0.0"]);
        assert!(err.contains("--service-cidr") && err.contains("ADDRESS/PREFIX"), "{err}");
        let err = error(&["--service-cidr", "10.254.0.0/33"]);
        assert!(err.contains("--service-cidr") && err.contains("prefix length"), "{err}");
        let err = error(&["--service-cidr", "10.254.x.0/16"]);
        assert!(err.contains("not an IP address"), "{err}");
    }

    #[test]
    fn nodes_take_optional_ips() {
        let args = parse(&["--node", "n1=10.0.0.1,10.0.0.2", "--node", "n2"]).expect("valid");
        let pki = args.into_pki().expect("pki");
        assert_eq!(pki.nodes, ["n1", "n2"]);
        assert_eq!(pki.node_ips["n1"], ["10.0.0.1".parse::<IpAddr>().expect("IP"), "10.0.0.2".parse().expect("IP")]);
        assert!(pki.node_ips["n2"].is_empty());
    }

    #[test]
    fn bad_nodes_name_the_flag_and_the_problem() {
        let err = error(&["--node", "=10.0.0.1"]);
        assert!(err.contains("--node") && err.contains("must not be empty"), "{err}");
        let err = error(&["--node", "n1=10.0.0.300"]);
        assert!(err.contains("--node") && err.contains("\"10.0.0.300\" is not an IP address"), "{err}");
        let err = error(&["--node", "../x"]);
        assert!(err.contains("lower case letters"), "{err}");
        let twice = parse(&["--node", "n1", "--node", "n1"]).expect("parses").into_pki();
        assert!(twice.is_err_and(|err| err.to_string().contains("given twice")));
    }

    #[test]
    fn server_must_be_an_https_url() {
        let args = |server| Args::try_parse_from(["rkube-certs", "--dir", "d", "--server", server]);
        for bad in ["127.0.0.1:6443", "http://127.0.0.1:6443", "https://", "https://a b"] {
            let err = args(bad).expect_err(bad).to_string();
            assert!(err.contains("--server") && err.contains("https URL"), "{err}");
        }
        assert_eq!(args("https://[::1]:6443").expect("valid").server, "https://[::1]:6443");
    }

    #[test]
    fn extra_sans_are_comma_separated() {
        let args = parse(&["--apiserver-cert-extra-sans", "api.example.com, 192.168.1.10"]).expect("valid");
        assert_eq!(args.apiserver_cert_extra_sans, ["api.example.com", "192.168.1.10"]);
        let err = error(&["--apiserver-cert-extra-sans", "a,,b"]);
        assert!(err.contains("--apiserver-cert-extra-sans") && err.contains("empty"), "{err}");
        let args = parse(&["--etcd-cert-extra-sans", "10.250.0.10,etcd-1"]).expect("valid");
        assert_eq!(args.into_pki().expect("pki").etcd_names, ["10.250.0.10", "etcd-1"]);
        let err = error(&["--etcd-cert-extra-sans", "a b"]);
        assert!(err.contains("--etcd-cert-extra-sans") && err.contains("neither an IP"), "{err}");
    }
}
