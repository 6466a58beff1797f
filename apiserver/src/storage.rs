//! The etcd storage layer: objects as JSON under `/registry/<resource>/...`,
//! resourceVersion = etcd mod_revision, creates and updates as transactions.
//!
//! Every call is one etcd round trip. Errors are mapped to API errors: a
//! missing etcd is `ServiceUnavailable` with a message that says so, a
//! compacted revision is `Expired`.

use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse,
    WatchOptions, WatchStream,
};
use rkube_api::{ApiError, Result};
use std::time::Duration;

/// One stored object as etcd returned it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The etcd key.
    pub key: String,
    /// The JSON value as stored (without metadata.resourceVersion).
    pub value: Bytes,
    /// The etcd mod_revision: the object's resourceVersion.
    pub mod_revision: i64,
}

impl Stored {
    fn from_kv(kv: &KeyValue) -> Stored {
        Stored {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: Bytes::copy_from_slice(kv.value()),
            mod_revision: kv.mod_revision(),
        }
    }

    fn from_owned_kv(kv: KeyValue) -> Stored {
        let mod_revision = kv.mod_revision();
        let (key, value) = kv.into_key_value();
        let key = String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Stored { key, value: Bytes::from(value), mod_revision }
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

/// A handle on etcd. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    client: Client,
    endpoints: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("endpoints", &self.endpoints).finish()
    }
}

/// Largest etcd response accepted (a List of many objects).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// How long one etcd request may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Storage {
    /// Connects lazily: no request is made until the first call, and a call
    /// made while etcd is down fails at once instead of waiting.
    pub async fn connect(endpoints: &[String]) -> Result<Storage, etcd_client::Error> {
        let mut channels = Vec::new();
        for e in endpoints {
            let url = if e.contains("://") { e.clone() } else { format!("http://{e}") };
            let endpoint = tonic::transport::Endpoint::from_shared(url)
                .map_err(|e| etcd_client::Error::InvalidArgs(e.to_string()))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(REQUEST_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            channels.push(endpoint);
        }
        let channel = match channels.len() {
            0 => return Err(etcd_client::Error::InvalidArgs("no etcd endpoints given (--etcd-servers)".into())),
            1 => channels.remove(0).connect_lazy(),
            _ => tonic::transport::Channel::balance_list(channels.into_iter()),
        };
        let options = ConnectOptions::new().with_timeout(REQUEST_TIMEOUT);
        let client = Client::from_channel(etcd_client::Channel::Tonic(channel), Some(options)).await?;
        Ok(Storage { client, endpoints: endpoints.join(",") })
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.client.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    fn map_err(&self, e: etcd_client::Error) -> ApiError {
        let text = e.to_string();
        if text.contains("required revision has been compacted") {
            return ApiError::expired(format!("too old resource version: {text}"));
        }
        if text.contains("future revision") {
            return ApiError::new(rkube_api::Reason::Timeout, format!("Too large resource version: {text}"));
        }
        ApiError::unavailable(format!("etcd is unavailable ({}): {text}", self.endpoints))
    }

    /// The current etcd revision.
    pub async fn current_revision(&self) -> Result<i64> {
        let resp = self
            .client
            .kv_client()
            .get("/registry/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Reads one key.
    pub async fn get(&self, key: &str) -> Result<Option<Stored>> {
        let resp = self.kv().get(key, None).await.map_err(|e| self.map_err(e))?;
        Ok(resp.kvs().first().map(Stored::from_kv))
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
        let mut resp = self.kv().get(start, Some(options)).await.map_err(|e| self.map_err(e))?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let more = resp.more();
        let items: Vec<Stored> = resp.take_kvs().into_iter().map(Stored::from_owned_kv).collect();
        Ok((items, if revision > 0 { revision } else { rev }, more))
    }

    /// Creates `key` if it is absent, together with `also` (extra keys that
    /// must also be absent, such as an IP reservation).
    pub async fn create(&self, key: &str, value: Vec<u8>, also: &[(String, Vec<u8>)]) -> Result<Write> {
        let mut compares = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
        let mut puts = vec![TxnOp::put(key, value, None)];
        for (k, v) in also {
            compares.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
            puts.push(TxnOp::put(k.as_str(), v.clone(), None));
        }
        let txn = Txn::new().when(compares).and_then(puts).or_else(vec![TxnOp::get(key, None)]);
        self.run(txn).await
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
        let mut ops = vec![TxnOp::put(key, value, None)];
        for (k, v) in reserve {
            compares.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(k.as_str(), v.clone(), None));
        }
        ops.extend(release.iter().map(|k| TxnOp::delete(k.as_str(), None)));
        let txn = Txn::new().when(compares).and_then(ops).or_else(vec![TxnOp::get(key, None)]);
        self.run(txn).await
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
        self.run(txn).await
    }

    /// Deletes every key under `prefix` (used by tests and clean-up tools).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.client
            .kv_client()
            .delete(prefix, Some(DeleteOptions::new().with_prefix()))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    async fn run(&self, txn: Txn) -> Result<Write> {
        let resp = self.kv().txn(txn).await.map_err(|e| self.map_err(e))?;
        if resp.succeeded() {
            return Ok(Write::Done(resp.header().map_or(0, |h| h.revision())));
        }
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g.kvs().first().map(Stored::from_kv)),
            _ => None,
        });
        Ok(Write::Failed(current.flatten()))
    }

    /// Opens an etcd watch on `prefix` from `start_revision`, with previous values.
    pub async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchStream> {
        let options = WatchOptions::new().with_prefix().with_prev_key().with_start_revision(start_revision);
        self.client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .watch(prefix, Some(options))
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Whether etcd answers (for /readyz).
    pub async fn healthy(&self) -> Result<()> {
        self.current_revision().await.map(|_| ())
    }
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
