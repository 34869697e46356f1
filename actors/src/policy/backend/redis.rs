//! The Redis backend: one connection manager (it reconnects by itself) for the policies
//! of a node, with every command bounded by a response timeout, so that a dead Redis
//! gives an error quickly, never a hang. An outage is logged once when it starts and once
//! when it ends, and counted; each policy then does what its fail mode says.
//!
//! Rate limits are one atomic GCRA step per check, a Lua script that reads Redis's own
//! clock, so that every node spends from one budget; greylist state is plain keys with
//! their TTLs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::core::greylist_state::{ClientState, GreylistBackend, GreylistStoreError, TripletState};

/// One GCRA step: `KEYS[1]` holds the theoretical arrival time in milliseconds of Redis's
/// clock; `ARGV[1]` is the emission interval (ms per unit), `ARGV[2]` the burst. Returns
/// 0 when the unit is spent, else the milliseconds until it could be.
const GCRA: &str = r#"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - interval * burst
if allowed_at > now then
  return allowed_at - now
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return 0
"#;

/// Deletes hash field `ARGV[1]` of `KEYS[1]` only while it holds `ARGV[2]`.
const COMPARE_DELETE: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"#;

/// Renews node `ARGV[1]`'s connection leases on a path (`KEYS[1]`, a sorted set of
/// `NODE|N` scored by expiry in ms of Redis's clock): drops expired leases and the node's
/// own, then grants it up to `ARGV[2]` (what it wants) within `ARGV[3]` (the path's
/// limit) less what the other nodes hold, each for `ARGV[4]` ms. Returns the grant.
const LEASE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local prefix = ARGV[1] .. '|'
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 1, #prefix) == prefix then
    redis.call('ZREM', KEYS[1], member)
  end
end
local others = redis.call('ZCARD', KEYS[1])
local grant = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - others)
if grant < 0 then grant = 0 end
for i = 1, grant do
  redis.call('ZADD', KEYS[1], now + ttl, prefix .. i)
end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return grant
"#;

/// Why Redis could not be used: at start the text names the URL, at a command it is
/// Redis's own (down, slow or refusing), as the log line and the policies' fail modes
/// take it.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// `redis.url` is not a Redis URL.
    #[error("redis url {url:?}: {error}")]
    Url {
        /// The URL as configured.
        url: String,
        /// What the redis crate found wrong with it.
        error: redis::RedisError,
    },
    /// The connection manager could not be made for the URL.
    #[error("redis {url}: {error}")]
    Manager {
        /// The URL as configured.
        url: String,
        /// Why.
        error: redis::RedisError,
    },
    /// A command failed or timed out.
    #[error("redis: {0}")]
    Command(redis::RedisError),
}

/// The greylist's store error of a failed command, with the same text.
fn store_error(error: RedisError) -> GreylistStoreError {
    GreylistStoreError::Redis(error.to_string())
}

/// A node's connection to Redis.
#[derive(Clone)]
pub struct RedisBackend {
    manager: ConnectionManager,
    prefix: String,
    gcra: Arc<Script>,
    compare_delete: Arc<Script>,
    lease: Arc<Script>,
    down: Arc<AtomicBool>,
    url: String,
}

/// `url` for the log: a password in it (`redis://:secret@host`) replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

impl RedisBackend {
    /// A backend for `url` whose keys start with `prefix`; it connects at the first use
    /// (so hermod starts while Redis is down) and reconnects by itself.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(url).map_err(|error| RedisError::Url {
            url: url.to_string(),
            error,
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|error| {
            RedisError::Manager {
                url: url.to_string(),
                error,
            }
        })?;
        Ok(RedisBackend {
            manager,
            prefix: prefix.to_string(),
            gcra: Arc::new(Script::new(GCRA)),
            compare_delete: Arc::new(Script::new(COMPARE_DELETE)),
            lease: Arc::new(Script::new(LEASE)),
            down: Arc::new(AtomicBool::new(false)),
            url: without_password(url),
        })
    }

    /// The full key of `key`.
    pub fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }

    /// Notes the result of a command: the first error of an outage is logged, and the
    /// first success after it.
    fn observe<T>(&self, result: redis::RedisResult<T>) -> Result<T, RedisError> {
        match result {
            Ok(value) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(url = %self.url, "Redis reachable again");
                }
                Ok(value)
            }
            Err(e) => {
                metrics::counter!("redis_errors_total").increment(1);
                if !self.down.swap(true, Ordering::Relaxed) {
                    metrics::counter!("redis_outages_total").increment(1);
                    tracing::error!(url = %self.url, error = %e,
                        "Redis unreachable; the policies that use it follow their fail mode until it is back");
                }
                Err(RedisError::Command(e))
            }
        }
    }

    /// One GCRA step on `key`: `Ok(0)` when spent, else the milliseconds to wait.
    pub async fn gcra(&self, key: &str, interval_ms: u64, burst: u32) -> Result<u64, RedisError> {
        let mut connection = self.manager.clone();
        let result = self
            .gcra
            .key(key)
            .arg(interval_ms)
            .arg(burst)
            .invoke_async::<u64>(&mut connection)
            .await;
        self.observe(result)
    }

    /// The value of `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        let mut connection = self.manager.clone();
        let result = connection.get::<_, Option<Vec<u8>>>(key).await;
        self.observe(result)
    }

    /// Sets `key` to `value` for `ttl_s` seconds.
    pub async fn set(&self, key: &str, value: Vec<u8>, ttl_s: u64) -> Result<(), RedisError> {
        let mut connection = self.manager.clone();
        let result = connection
            .set_ex::<_, _, ()>(key, value, ttl_s.max(1))
            .await;
        self.observe(result)
    }
}

/// A hash of small records every node reads whole (the fleet's shaping actions).
impl RedisBackend {
    /// Every field of the hash `key` with its value.
    pub async fn hash_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, RedisError> {
        let mut connection = self.manager.clone();
        let result = connection.hgetall::<_, Vec<(String, Vec<u8>)>>(key).await;
        self.observe(result)
    }

    /// Sets `field` of the hash `key` to `value`; the hash expires `ttl_s` seconds after
    /// its last change, so a fleet that stopped leaves nothing behind.
    pub async fn hash_set(
        &self,
        key: &str,
        field: &str,
        value: Vec<u8>,
        ttl_s: u64,
    ) -> Result<(), RedisError> {
        let mut connection = self.manager.clone();
        let result = redis::pipe()
            .atomic()
            .hset(key, field, value)
            .ignore()
            .expire(key, i64::try_from(ttl_s.max(1)).unwrap_or(i64::MAX))
            .ignore()
            .query_async::<()>(&mut connection)
            .await;
        self.observe(result)
    }

    /// Removes `field` from the hash `key` only if it still holds `value` (another node
    /// may have written it again since it was read).
    pub async fn hash_delete_if(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
    ) -> Result<(), RedisError> {
        let mut connection = self.manager.clone();
        let result = self
            .compare_delete
            .key(key)
            .arg(field)
            .arg(value)
            .invoke_async::<i64>(&mut connection)
            .await;
        self.observe(result).map(|_| ())
    }

    /// Renews `node`'s leases on the path `key`: up to `want` of the `max` the fleet
    /// shares, for `ttl_ms` (they lapse if the node stops renewing); returns how many it
    /// holds now.
    pub async fn lease(
        &self,
        key: &str,
        node: &str,
        want: usize,
        max: usize,
        ttl_ms: u64,
    ) -> Result<usize, RedisError> {
        let mut connection = self.manager.clone();
        let result = self
            .lease
            .key(key)
            .arg(node)
            .arg(want)
            .arg(max)
            .arg(ttl_ms)
            .invoke_async::<usize>(&mut connection)
            .await;
        self.observe(result)
    }

    /// Removes `fields` from the hash `key`.
    pub async fn hash_delete(&self, key: &str, fields: &[String]) -> Result<(), RedisError> {
        if fields.is_empty() {
            return Ok(());
        }
        let mut connection = self.manager.clone();
        let result = connection.hdel::<_, _, ()>(key, fields).await;
        self.observe(result)
    }
}

/// Seconds from now until `expires` (Unix seconds), at least one.
fn ttl(expires: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    expires.saturating_sub(now).max(1)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: Option<Vec<u8>>) -> Option<T> {
    bytes.and_then(|b| serde_json::from_slice(&b).ok())
}

/// The greylist in Redis: `PREFIXgrey:TRIPLET` and `PREFIXgreyclient:NETWORK`, JSON with
/// a TTL to their expiry, shared by every node.
impl GreylistBackend for RedisBackend {
    fn triplet(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<TripletState>, GreylistStoreError>> + Send {
        let key = self.key("grey", key);
        async move { self.get(&key).await.map(decode).map_err(store_error) }
    }

    fn set_triplet(
        &self,
        key: &str,
        state: &TripletState,
    ) -> impl Future<Output = Result<(), GreylistStoreError>> + Send {
        let key = self.key("grey", key);
        let (value, ttl_s) = (
            serde_json::to_vec(state).unwrap_or_default(),
            ttl(state.expires),
        );
        async move { self.set(&key, value, ttl_s).await.map_err(store_error) }
    }

    fn client(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ClientState>, GreylistStoreError>> + Send {
        let key = self.key("greyclient", key);
        async move { self.get(&key).await.map(decode).map_err(store_error) }
    }

    fn set_client(
        &self,
        key: &str,
        state: &ClientState,
    ) -> impl Future<Output = Result<(), GreylistStoreError>> + Send {
        let key = self.key("greyclient", key);
        let (value, ttl_s) = (
            serde_json::to_vec(state).unwrap_or_default(),
            ttl(state.expires),
        );
        async move { self.set(&key, value, ttl_s).await.map_err(store_error) }
    }
}

/// Help texts of the metrics recorded in this file.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "redis_errors_total",
        "Redis commands of the policies that failed (Redis down, slow or refusing)."
    );
    metrics::describe_counter!("redis_outages_total", "Times Redis became unreachable.");
}

#[cfg(test)]
mod url_tests {
    use super::without_password;

    #[test]
    fn a_password_never_reaches_the_log() {
        assert_eq!(
            without_password("redis://:s3cret@10.0.0.5:6379/2"),
            "redis://:***@10.0.0.5:6379/2"
        );
        assert_eq!(
            without_password("redis://user:s3cret@h:1"),
            "redis://user:***@h:1"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
