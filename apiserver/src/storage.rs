//! The etcd storage layer: objects as JSON under `/registry/<resource>/...`,
//! resourceVersion = etcd mod_revision, creates and updates as transactions.
//!
//! Every call is one etcd round trip. Errors are mapped to API errors: a
//! missing etcd is `ServiceUnavailable` with a message that says so, a
//! compacted revision is `Expired`.

use crate::encryption::Encryption;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions, WatchStream,
};
use rkube_api::{ApiError, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::ClientTlsConfig;
use tracing::{debug, info};

/// One stored object as etcd returned it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The etcd key.
    pub key: String,
    /// The JSON value as stored (without metadata.resourceVersion).
    pub value: Bytes,
    /// The etcd mod_revision: the object's resourceVersion.
    pub mod_revision: i64,
    /// Sealed otherwise than a write would seal it now (encryption at
    /// rest): an update must write it even when nothing else changed.
    pub stale: bool,
}

impl Stored {
    fn from_kv(kv: &KeyValue) -> Stored {
        Stored {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: Bytes::copy_from_slice(kv.value()),
            mod_revision: kv.mod_revision(),
            stale: false,
        }
    }

    fn from_owned_kv(kv: KeyValue) -> Stored {
        let mod_revision = kv.mod_revision();
        let (key, value) = kv.into_key_value();
        let key = String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Stored { key, value: Bytes::from(value), mod_revision, stale: false }
    }
}

/// The outcome of a conditional write.
#[derive(Debug)]
pub enum Write {
    /// Written at this revision.
    Done(i64),
    /// The condition failed; here is what is stored now (None: absent).
    Failed(Option<Stored>),
}

/// A handle on etcd: one member, or several of one cluster. Cheap to clone.
///
/// Requests go to the current member. With several, a request that fails
/// because the member is unreachable, times out or has no leader goes to
/// the next one, which then stays current, for up to [`FAILOVER_BUDGET`]
/// (as etcd's own client pins one endpoint and moves on failure). Writes
/// are transactions conditional on what was read, so sending one again
/// cannot apply it twice; a write whose answer was lost and that finds
/// its own value stored on the next try reports success.
#[derive(Clone)]
pub struct Storage {
    members: Arc<Members>,
    /// How values are sealed and opened (encryption at rest).
    encryption: Arc<Encryption>,
}

struct Members {
    list: Vec<Member>,
    /// Index into `list` of the member requests go to first.
    current: AtomicUsize,
    /// Every endpoint, for messages.
    endpoints: String,
}

struct Member {
    url: String,
    client: Client,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("endpoints", &self.members.endpoints).finish()
    }
}

/// Largest etcd response accepted (a List of many objects).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// How long one etcd request may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request keeps trying other members of a cluster (an etcd
/// leader election takes about a second).
pub const FAILOVER_BUDGET: Duration = Duration::from_secs(10);

/// Whether a failed request may be sent to another member: it did not
/// reach one, or the member could not serve it (no leader, timed out).
fn another_member_may_serve(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
        ),
        _ => false,
    }
}

impl Storage {
    /// Connects lazily: no request is made until the first call, and a call
    /// made while etcd is down fails at once instead of waiting (with
    /// several endpoints, once each has been tried for [`FAILOVER_BUDGET`]).
    pub async fn connect(endpoints: &[String]) -> Result<Storage, etcd_client::Error> {
        Storage::connect_tls(endpoints, None).await
    }

    /// [`Storage::connect`], over TLS when `tls` is given: every endpoint
    /// must then be https (or have no scheme), and without it none may be.
    pub async fn connect_tls(
        endpoints: &[String],
        tls: Option<ClientTlsConfig>,
    ) -> Result<Storage, etcd_client::Error> {
        let mut list = Vec::new();
        for e in endpoints {
            let invalid =
                |problem: String| etcd_client::Error::InvalidArgs(format!("etcd endpoint \"{e}\": {problem}"));
            let url = match (e.split_once("://"), &tls) {
                (None, None) => format!("http://{e}"),
                (None, Some(_)) => format!("https://{e}"),
                (Some(("http", _)), None) | (Some(("https", _)), Some(_)) => e.clone(),
                (Some(("https", _)), None) => {
                    return Err(invalid("https needs the CA that signed etcd's certificate (--etcd-cafile)".into()));
                }
                (Some(("http", _)), Some(_)) => {
                    return Err(invalid("plain http, but --etcd-cafile asks for TLS: use https://".into()));
                }
                (Some((scheme, _)), _) => {
                    return Err(invalid(format!("unknown scheme {scheme:?}, expected http or https")));
                }
            };
            let mut endpoint =
                tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| invalid(e.to_string()))?;
            if let Some(tls) = &tls {
                endpoint = endpoint.tls_config(tls.clone()).map_err(|e| invalid(format!("TLS: {e}")))?;
            }
            let channel = endpoint
                .connect_timeout(Duration::from_secs(2))
                .timeout(REQUEST_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5))
                .connect_lazy();
            let options = ConnectOptions::new().with_timeout(REQUEST_TIMEOUT);
            let client = Client::from_channel(etcd_client::Channel::Tonic(channel), Some(options)).await?;
            list.push(Member { url, client });
        }
        if list.is_empty() {
            return Err(etcd_client::Error::InvalidArgs("no etcd endpoints given (--etcd-servers)".into()));
        }
        let endpoints = endpoints.join(",");
        let members = Arc::new(Members { list, current: AtomicUsize::new(0), endpoints });
        Ok(Storage { members, encryption: Arc::new(Encryption::none()) })
    }

    /// This storage, sealing and opening values as `encryption` says.
    pub fn with_encryption(mut self, encryption: Encryption) -> Storage {
        self.encryption = Arc::new(encryption);
        self
    }

    /// The plain value of what etcd holds under `key`.
    pub fn open(&self, key: &str, value: &[u8]) -> Result<Bytes> {
        self.encryption.open(key, Bytes::copy_from_slice(value))
    }

    fn open_stored(&self, mut stored: Stored) -> Result<Stored> {
        (stored.value, stored.stale) = self.encryption.open_marked(&stored.key, stored.value)?;
        Ok(stored)
    }

    /// Runs `op` on the current member and, while
    /// [`another_member_may_serve`], on the next ones, for at most
    /// [`FAILOVER_BUDGET`]; a member that answered becomes current.
    async fn on_members<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let list = &self.members.list;
        let first = self.members.current.load(Ordering::Relaxed) % list.len();
        let deadline = Instant::now() + FAILOVER_BUDGET;
        let mut at = first;
        for attempt in 1.. {
            let member = &list[at];
            match op(member.client.clone()).await {
                Ok(v) => {
                    if at != first {
                        self.members.current.store(at, Ordering::Relaxed);
                        info!(member = %member.url, "etcd requests go to this member now");
                    }
                    return Ok(v);
                }
                Err(e) if list.len() > 1 && another_member_may_serve(&e) && Instant::now() < deadline => {
                    debug!(member = %member.url, error = %e, "etcd member failed a request; trying the next");
                    at = (at + 1) % list.len();
                    if attempt % list.len() == 0 {
                        // Every member failed once: give an election time.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Err(e) => return Err(self.map_err(e)),
            }
        }
        unreachable!("the attempts never run out")
    }

    fn map_err(&self, e: etcd_client::Error) -> ApiError {
        let text = e.to_string();
        if text.contains("required revision has been compacted") {
            return ApiError::expired(format!("too old resource version: {text}"));
        }
        if text.contains("future revision") {
            return ApiError::new(rkube_api::Reason::Timeout, format!("Too large resource version: {text}"));
        }
        ApiError::unavailable(format!("etcd is unavailable ({}): {text}", self.members.endpoints))
    }

    /// The current etcd revision.
    pub async fn current_revision(&self) -> Result<i64> {
        let resp = self
            .on_members(|mut c| async move { c.get("/registry/", Some(GetOptions::new().with_count_only())).await })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Reads one key.
    pub async fn get(&self, key: &str) -> Result<Option<Stored>> {
        let resp = self.on_members(|c| async move { kv(c).get(key, None).await }).await?;
        resp.kvs().first().map(|kv| self.open_stored(Stored::from_kv(kv))).transpose()
    }

    /// Reads every key under `prefix` (starting at `from`, if given), at
    /// `revision` (0: the latest), at most `limit` (0: all). Returns the items
    /// in key order, the snapshot revision, and whether more remain.
    pub async fn list(
        &self,
        prefix: &str,
        from: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> Result<(Vec<Stored>, i64, bool)> {
        let range_end = prefix_end(prefix);
        let start = from.unwrap_or(prefix).to_string();
        let mut options = GetOptions::new().with_range(range_end);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        if limit > 0 {
            options = options.with_limit(limit);
        }
        let mut resp = self
            .on_members(|c| {
                let (start, options) = (start.clone(), options.clone());
                async move { kv(c).get(start, Some(options)).await }
            })
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let more = resp.more();
        let items: Vec<Stored> =
            resp.take_kvs().into_iter().map(|kv| self.open_stored(Stored::from_owned_kv(kv))).collect::<Result<_>>()?;
        Ok((items, if revision > 0 { revision } else { rev }, more))
    }

    /// Creates `key` if it is absent, together with `also` (extra keys that
    /// must also be absent, such as an IP reservation).
    pub async fn create(&self, key: &str, value: Vec<u8>, also: &[(String, Vec<u8>)]) -> Result<Write> {
        let mut compares = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
        let mut puts = vec![TxnOp::put(key, self.encryption.seal(key, value.clone())?, None)];
        for (k, v) in also {
            compares.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
            puts.push(TxnOp::put(k.as_str(), v.clone(), None));
        }
        let txn = Txn::new().when(compares).and_then(puts).or_else(vec![TxnOp::get(key, None)]);
        self.run(txn, Some(value.as_slice())).await
    }

    /// Replaces `key` if its mod_revision is still `expected`.
    pub async fn update(&self, key: &str, expected: i64, value: Vec<u8>) -> Result<Write> {
        self.update_reserving(key, expected, value, &[], &[]).await
    }

    /// [`update`](Self::update), in the same transaction creating the keys
    /// in `reserve` (which must be absent) and deleting those in `release`.
    /// When `key` is unchanged but a key to reserve exists, it fails with
    /// `key`'s current value.
    pub async fn update_reserving(
        &self,
        key: &str,
        expected: i64,
        value: Vec<u8>,
        reserve: &[(String, Vec<u8>)],
        release: &[String],
    ) -> Result<Write> {
        let mut compares = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
        let mut ops = vec![TxnOp::put(key, self.encryption.seal(key, value.clone())?, None)];
        for (k, v) in reserve {
            compares.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(k.as_str(), v.clone(), None));
        }
        ops.extend(release.iter().map(|k| TxnOp::delete(k.as_str(), None)));
        let txn = Txn::new().when(compares).and_then(ops).or_else(vec![TxnOp::get(key, None)]);
        self.run(txn, Some(value.as_slice())).await
    }

    /// Deletes `key` if its mod_revision is still `expected`, and with it the
    /// keys in `also` (reservations the object held).
    pub async fn delete(&self, key: &str, expected: i64, also: &[String]) -> Result<Write> {
        let mut ops = vec![TxnOp::delete(key, None)];
        ops.extend(also.iter().map(|k| TxnOp::delete(k.as_str(), None)));
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then(ops)
            .or_else(vec![TxnOp::get(key, None)]);
        self.run(txn, None).await
    }

    /// Deletes `key`, whatever its revision (for keys that are not objects).
    pub async fn remove(&self, key: &str) -> Result<()> {
        self.on_members(|mut c| async move { c.delete(key, None).await }).await?;
        Ok(())
    }

    /// Deletes every key under `prefix` (used by tests and clean-up tools).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.on_members(|mut c| async move { c.delete(prefix, Some(DeleteOptions::new().with_prefix())).await })
            .await?;
        Ok(())
    }

    /// Writes `key` to expire `ttl` after this write (on an etcd lease of
    /// its own; the lease of an earlier write expires unused).
    pub async fn put_with_ttl(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        self.on_members(|mut c| {
            let value = value.clone();
            async move {
                let lease = c.lease_grant(seconds, None).await?;
                c.put(key, value, Some(PutOptions::new().with_lease(lease.id()))).await
            }
        })
        .await?;
        Ok(())
    }

    /// Runs a conditional write. When the condition failed because `value`
    /// is already stored under the key, the write is ours (an earlier try
    /// whose answer was lost: values carry the object's uid) and succeeded.
    async fn run(&self, txn: Txn, value: Option<&[u8]>) -> Result<Write> {
        let resp = self
            .on_members(|c| {
                let txn = txn.clone();
                async move { kv(c).txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(Write::Done(resp.header().map_or(0, |h| h.revision())));
        }
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g.kvs().first().map(Stored::from_kv)),
            _ => None,
        });
        match current.flatten().map(|s| self.open_stored(s)).transpose()? {
            Some(stored) if value.is_some_and(|v| stored.value.as_ref() == v) => Ok(Write::Done(stored.mod_revision)),
            other => Ok(Write::Failed(other)),
        }
    }

    /// Opens an etcd watch on `prefix` from `start_revision`, with previous values.
    pub async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchStream> {
        let options = WatchOptions::new().with_prefix().with_prev_key().with_start_revision(start_revision);
        self.on_members(|c| {
            let options = options.clone();
            async move { c.watch_client().max_decoding_message_size(MAX_RESPONSE_BYTES).watch(prefix, Some(options)).await }
        })
        .await
    }

    /// Whether etcd answers (for /readyz).
    pub async fn healthy(&self) -> Result<()> {
        self.current_revision().await.map(|_| ())
    }
}

/// The KV client of a member, taking responses as large as a List may be.
fn kv(c: Client) -> etcd_client::KvClient {
    c.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES)
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end("a"), b"b".to_vec());
    }
}
