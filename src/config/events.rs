//! `[events]`: where delivery events go. Each destination is optional and any number of
//! them may be on at once; with none, no event is built or kept.

use std::path::PathBuf;
use std::time::Duration;

use super::section::{Key, section};
use super::{ConfigIssue, Section, at_least_one, longer_than_zero};

section! {
    /// `[events]`: delivery events and their destinations.
    pub struct EventsConfig {
        /// URL the webhook destination POSTs batches to (http or https); empty: off.
        pub webhook_url: String = String::new()
            => (restart, []),
        /// File holding the webhook's HMAC-SHA256 key (first line; mode 0600): each POST
        /// carries `X-Hermod-Signature: sha256=<hex>` of its body. Empty: unsigned.
        pub webhook_secret_file: PathBuf = PathBuf::new()
            => (restart, []),
        /// CA certificates (PEM) an https webhook is verified against instead of the
        /// system's roots: for a private PKI.
        pub webhook_ca_file: PathBuf = PathBuf::new()
            => (restart, []),
        /// Time a destination gets to take one batch.
        #[serde(with = "super::duration")]
        pub timeout: Duration = Duration::from_secs(10)
            => (restart, []),
        /// Stream key of the Redis Streams destination, on `[redis] url`; empty: off.
        pub redis_stream: String = String::new()
            => (restart, []),
        /// About how many entries the stream keeps (`XADD MAXLEN ~`).
        pub redis_stream_max_len: u64 = 1_000_000
            => (restart, []),
        /// Path of the JSON-lines file destination; empty: off.
        pub file: PathBuf = PathBuf::new()
            => (restart, []),
        /// Size in octets past which the file is rotated (`FILE.1`, `FILE.2`, ...).
        pub file_max_size: u64 = 100 * 1024 * 1024
            => (restart, []),
        /// Rotated files kept.
        pub file_keep: u32 = 5
            => (restart, []),
        /// Header fields copied from each message into its events (`X-Campaign-Id`, ...).
        pub headers: Vec<String> = Vec::new()
            => (restart, []),
        /// Events per batch.
        pub batch_size: usize = 100
            => (restart, []),
        /// Longest wait between retries of a destination that is down.
        #[serde(with = "super::duration")]
        pub max_backoff: Duration = Duration::from_secs(60)
            => (restart, []),
        /// Events kept for destinations that have not taken them; past it the oldest are
        /// dropped (`events_dropped_total`, and an error log line).
        pub max_backlog: u64 = 1_000_000
            => (restart, []),
    }
}

impl Section for EventsConfig {
    const KEYS: &'static [Key] = EventsConfig::DECLARED;
    const NAME: &'static str = "events";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        longer_than_zero(
            issues,
            &[
                ("events.timeout", self.timeout),
                ("events.max_backoff", self.max_backoff),
            ],
        );
        at_least_one(
            issues,
            &[
                ("events.batch_size", self.batch_size as u64),
                ("events.max_backlog", self.max_backlog),
                ("events.file_max_size", self.file_max_size),
                ("events.redis_stream_max_len", self.redis_stream_max_len),
            ],
        );
        if !self.webhook_url.is_empty() {
            match self.webhook_url.parse::<awc::http::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some() => {}
                _ => issues.push(ConfigIssue::new(
                    "events.webhook_url",
                    format!("{:?} is not an http:// or https:// URL", self.webhook_url),
                )),
            }
        }
        if !self.webhook_secret_file.as_os_str().is_empty()
            && let Err(e) = self.webhook_secret()
        {
            issues.push(ConfigIssue::new("events.webhook_secret_file", e));
        }
        for name in &self.headers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                issues.push(ConfigIssue::new(
                    "events.headers",
                    format!("{name:?} is not a header field name"),
                ));
            }
        }
    }
}

impl EventsConfig {
    /// Whether any destination is on (else no event is built or kept).
    pub fn enabled(&self) -> bool {
        !self.webhook_url.is_empty()
            || !self.redis_stream.is_empty()
            || !self.file.as_os_str().is_empty()
    }

    /// The webhook's HMAC key, `None` when unsigned.
    pub fn webhook_secret(&self) -> anyhow::Result<Option<Vec<u8>>> {
        if self.webhook_secret_file.as_os_str().is_empty() {
            return Ok(None);
        }
        let path = &self.webhook_secret_file;
        super::secret_file::check(path)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        match text.lines().next().map(str::trim) {
            Some(key) if !key.is_empty() => Ok(Some(key.as_bytes().to_vec())),
            _ => anyhow::bail!("{} is empty", path.display()),
        }
    }
}
