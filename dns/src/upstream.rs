//! Forwarding to the host's resolvers: names outside the cluster domain are
//! sent, as they came, to the first upstream nameserver that answers (UDP,
//! then TCP when the answer was truncated), each attempt from a fresh socket
//! with a fresh random ID.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why a query could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No nameserver is configured.
    #[error("no upstream nameserver: give --upstream or list nameservers in /etc/resolv.conf")]
    NoServers,
    /// The resolver configuration could not be read.
    #[error("reading {path}: {source}")]
    ResolvConf {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An `--upstream` entry is not an address.
    #[error("--upstream \"{0}\" is not an IP address or IP:port")]
    InvalidAddress(String),
    /// Talking to a nameserver failed.
    #[error("upstream {server}: {source}")]
    Io {
        /// The nameserver.
        server: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A nameserver did not answer in time.
    #[error("upstream {server} did not answer within {timeout:?}")]
    Timeout {
        /// The nameserver.
        server: SocketAddr,
        /// How long it was given.
        timeout: Duration,
    },
    /// The query is not a DNS message (shorter than a header).
    #[error("not a DNS message")]
    NotAMessage,
}

/// The largest UDP answer read; a larger one is asked again over TCP (a
/// buffer per query in flight, so it is kept small).
const MAX_UDP_ANSWER: usize = 4096;

/// The upstream nameservers.
#[derive(Debug, Clone)]
pub struct Upstream {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

impl Upstream {
    /// Forwards to `servers`, in order, giving each `timeout`.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Upstream {
        Upstream { servers, timeout }
    }

    /// The nameservers of a resolv.conf file (port 53).
    pub fn from_resolv_conf(path: &Path, timeout: Duration) -> Result<Upstream, UpstreamError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| UpstreamError::ResolvConf { path: path.into(), source })?;
        Ok(Upstream::new(nameservers(&text), timeout))
    }

    /// `--upstream` entries: `IP` (port 53) or `IP:port` (`[IPv6]:port`).
    pub fn parse_servers(specs: &[String]) -> Result<Vec<SocketAddr>, UpstreamError> {
        specs
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| UpstreamError::InvalidAddress(s.to_string()))
            })
            .collect()
    }

    /// Removes the nameservers that are this server itself, listening on
    /// `listen` (a pod whose resolv.conf names 127.0.0.1 or 127.0.0.53 on
    /// port 53, where rkube-dns listens on 0.0.0.0:53, would forward every
    /// query to itself, in a loop); returns the removed ones.
    pub fn remove_self(&mut self, listen: SocketAddr) -> Vec<SocketAddr> {
        let is_self = |s: &SocketAddr| {
            s == &listen
                || (s.port() == listen.port()
                    && s.ip().is_loopback()
                    && (listen.ip().is_unspecified() || listen.ip().is_loopback()))
        };
        let (removed, kept) = self.servers.iter().partition(|s| is_self(s));
        self.servers = kept;
        removed
    }

    /// The nameservers, in the order they are tried.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Sends `query` (a DNS message) upstream and returns the answer, with
    /// the query's ID. Tries each nameserver in turn; the last failure is
    /// returned when none answers.
    pub async fn forward(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        if query.len() < 12 {
            return Err(UpstreamError::NotAMessage);
        }
        let mut last = UpstreamError::NoServers;
        for &server in &self.servers {
            match self.exchange(server, query).await {
                Ok(mut answer) => {
                    answer[..2].copy_from_slice(&query[..2]);
                    return Ok(answer);
                }
                Err(e) => {
                    tracing::debug!(%server, error = %e, "upstream failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// One query to one server, with a fresh ID: over UDP, then over TCP if
    /// the answer was truncated.
    async fn exchange(&self, server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let mut query = query.to_vec();
        let id = fastrand::u16(..);
        query[..2].copy_from_slice(&id.to_be_bytes());
        let io = |source| UpstreamError::Io { server, source };
        let timeout = UpstreamError::Timeout { server, timeout: self.timeout };
        let answer = tokio::time::timeout(self.timeout, udp_exchange(server, &query, id))
            .await
            .map_err(|_| timeout)?
            .map_err(io)?;
        let truncated = answer.len() > MAX_UDP_ANSWER || answer[2] & 0x02 != 0;
        if !truncated {
            return Ok(answer);
        }
        let timeout = UpstreamError::Timeout { server, timeout: self.timeout };
        tokio::time::timeout(self.timeout, tcp_exchange(server, &query)).await.map_err(|_| timeout)?.map_err(io)
    }
}

/// Sends `query` from a fresh socket connected to `server` and waits for
/// the response with `id` (anything else is ignored).
async fn udp_exchange(server: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    // One byte more than the largest answer taken: a longer one shows as too long.
    let mut buf = vec![0u8; MAX_UDP_ANSWER + 1];
    loop {
        let n = socket.recv(&mut buf).await?;
        let is_response = n >= 12 && buf[2] & 0x80 != 0;
        if is_response && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// Sends `query` over a new TCP connection to `server` and reads the answer.
async fn tcp_exchange(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("query longer than 65535 bytes"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    conn.write_all(&framed).await?;
    let len = conn.read_u16().await?;
    let mut answer = vec![0u8; usize::from(len)];
    conn.read_exact(&mut answer).await?;
    if answer.len() < 12 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "answer shorter than a DNS header"));
    }
    Ok(answer)
}

/// The `nameserver` addresses of resolv.conf text, port 53.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        // A scoped IPv6 address (fe80::1%eth0) does not parse; it is skipped.
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_of_resolv_conf() {
        let text = "# generated\nsearch default.svc.cluster.local\nnameserver 10.0.0.2\nnameserver  fd00::53 \n\
                    nameserver fe80::1%eth0\noptions ndots:5\n";
        let want: Vec<SocketAddr> = vec!["10.0.0.2:53".parse().unwrap(), "[fd00::53]:53".parse().unwrap()];
        assert_eq!(nameservers(text), want);
    }

    #[test]
    fn upstream_flags_take_an_ip_or_an_ip_and_port() {
        let specs = ["127.0.0.1:5353".to_string(), "10.0.0.2".into(), "[::1]:53".into()];
        let servers = Upstream::parse_servers(&specs).unwrap();
        assert_eq!(servers[1], "10.0.0.2:53".parse().unwrap());
        let e = Upstream::parse_servers(&["dns.example".into()]).unwrap_err();
        assert!(e.to_string().contains("dns.example"), "{e}");
    }

    #[test]
    fn never_forwards_to_itself() {
        let servers = ["127.0.0.53:53", "127.0.0.1:5353", "10.0.0.2:53", "10.0.0.3:53"].map(|s| s.parse().unwrap());
        let mut upstream = Upstream::new(servers.to_vec(), Duration::from_secs(1));
        assert_eq!(upstream.remove_self("0.0.0.0:53".parse().unwrap()), vec![servers[0]]);
        assert_eq!(upstream.servers(), &servers[1..]);
        assert_eq!(upstream.remove_self("10.0.0.3:53".parse().unwrap()), vec![servers[3]]);
        assert_eq!(upstream.servers(), &servers[1..3]);
    }

    #[tokio::test]
    async fn no_servers_is_an_error_not_a_hang() {
        let upstream = Upstream::new(vec![], Duration::from_millis(10));
        let e = upstream.forward(&[0u8; 12]).await.unwrap_err();
        assert!(matches!(e, UpstreamError::NoServers), "{e}");
        assert!(matches!(upstream.forward(&[1, 2]).await, Err(UpstreamError::NotAMessage)));
    }

    #[tokio::test]
    async fn a_truncated_answer_is_asked_again_over_tcp_and_keeps_the_query_id() {
        // The fake server: over UDP a truncated echo, over TCP a whole one.
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let udp = UdpSocket::bind(addr).await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
            buf[2] |= 0x82;
            udp.send_to(&buf[..n], peer).await.unwrap();
        });
        tokio::spawn(async move {
            let (mut conn, _) = tcp.accept().await.unwrap();
            let len = conn.read_u16().await.unwrap();
            let mut query = vec![0u8; usize::from(len)];
            conn.read_exact(&mut query).await.unwrap();
            query[2] |= 0x80;
            query.extend_from_slice(b"whole");
            conn.write_all(&u16::try_from(query.len()).unwrap().to_be_bytes()).await.unwrap();
            conn.write_all(&query).await.unwrap();
        });
        let upstream = Upstream::new(vec![addr], Duration::from_secs(2));
        let query = [0xbe, 0xef, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let answer = upstream.forward(&query).await.unwrap();
        assert_eq!(&answer[..2], &[0xbe, 0xef], "the client's ID");
        assert_eq!(answer[2] & 0x02, 0, "not truncated");
        assert!(answer.ends_with(b"whole"), "{answer:?}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let upstream = Upstream::new(vec![silent.local_addr().unwrap()], Duration::from_millis(100));
        let e = upstream.forward(&[0u8; 12]).await.unwrap_err();
        assert!(matches!(e, UpstreamError::Timeout { .. }), "{e}");
    }
}
