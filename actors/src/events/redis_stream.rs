//! The Redis Streams destination: each event is one `XADD` (field `event`, the JSON) on
//! the stream the fleet shares, so every node's events land in one place; a batch is one
//! pipeline, acknowledged when Redis has answered every entry. The stream is trimmed to
//! about `max_len` entries.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::events::destination::{Destination, DestinationError};

/// Appends to one stream.
pub struct RedisStream {
    manager: ConnectionManager,
    key: String,
    max_len: u64,
    timeout: Duration,
}

impl RedisStream {
    /// The stream `key` on the Redis at `url`, kept to about `max_len` entries; connects
    /// at the first batch and reconnects by itself.
    pub fn new(
        url: &str,
        key: &str,
        max_len: u64,
        timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStream {
            manager,
            key: key.to_string(),
            max_len,
            timeout,
        })
    }
}

impl Destination for RedisStream {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn send(&self, batch: Vec<Vec<u8>>) -> LocalBoxFuture<'static, Result<(), DestinationError>> {
        let mut pipe = redis::pipe();
        for event in &batch {
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg("event")
                .arg(event.as_slice());
        }
        let mut manager = self.manager.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let sent =
                tokio::time::timeout(timeout, pipe.query_async::<Vec<redis::Value>>(&mut manager))
                    .await
                    .map_err(|_| {
                        DestinationError::Unreachable(format!("no answer in {timeout:?}"))
                    })?;
            match sent {
                Ok(ids) if ids.len() == batch.len() => Ok(()),
                Ok(ids) => Err(DestinationError::Refused(format!(
                    "{} of {} entries added",
                    ids.len(),
                    batch.len()
                ))),
                Err(e) => Err(DestinationError::Unreachable(e.to_string())),
            }
        })
    }
}
