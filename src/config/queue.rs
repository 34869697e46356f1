//! `[queue]`: the spool on disk and the Queue actor's retry schedule — where messages
//! are kept, how often and how long they are retried, what bounces go where, and the
//! disk reserves.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hermod_actors::events::bounce_rules::BounceRules;
use hermod_actors::outbound::hop_health::HopPolicy;
use hermod_actors::protocol::address::{self, AddressError, Mailbox};
use hermod_actors::protocol::receiver::Spill;
use hermod_actors::queue::QueueSettings;
use hermod_actors::store::body_file::BodyFiles;
use hermod_actors::store::room::IntakeRoom;

use super::section::{Key, section};
use super::{ConfigIssue, Section, longer_than_zero};

section! {
    /// `[queue]`: the spool and the retry schedule.
    ///
    /// The schedule and bounce settings; the spool's place and the scan and flush
    /// periods stay until a restart.
    pub struct QueueConfig {
        /// Where the sled spool lives.
        pub data_dir: PathBuf = PathBuf::from("./data")
            => (restart, ["SMTP_DB_PATH"]),
        /// Delay before the first retry of a deferred recipient.
        #[serde(with = "super::duration")]
        pub retry_interval: Duration = Duration::from_secs(300)
            => (live, ["RETRY_INTERVAL"]),
        /// Longest delay between retries (the delay doubles up to this).
        #[serde(with = "super::duration")]
        pub max_retry_interval: Duration = Duration::from_secs(3600)
            => (live, []),
        /// Age after which a message still undelivered is bounced.
        #[serde(with = "super::duration")]
        pub max_lifetime: Duration = Duration::from_secs(5 * 86400)
            => (live, []),
        /// Delivery attempts per recipient before it is bounced; 0 means no limit.
        pub max_attempts: u32 = 0
            => (live, ["MAX_RETRY_ATTEMPTS"]),
        /// How often the schedule is checked for due retries.
        #[serde(with = "super::duration")]
        pub scan_interval: Duration = Duration::from_secs(1)
            => (restart, []),
        /// Longest time a change of delivery state (a recipient delivered, a message removed)
        /// stays unflushed when no new message arrives to carry it to disk: after a crash,
        /// what was delivered in this window is delivered again.
        #[serde(with = "super::duration")]
        pub state_flush_interval: Duration = Duration::from_millis(200)
            => (restart, []),
        /// The postmaster's address (Postfix's `notify_classes`/`2bounce_notice_recipient`):
        /// a bounce that cannot be delivered is reported here, and `RCPT TO:<postmaster>` is
        /// delivered here. Empty: such a bounce stays queued with an error log line.
        pub postmaster: String = String::new()
            => (live, []),
        /// Free bytes the spool's file system must keep (Postfix's `queue_minfree`): below
        /// it, MAIL FROM gets `452 4.3.1 Insufficient system storage`; 0 turns it off.
        pub min_free_space: u64 = 100 * 1024 * 1024
            => (restart, []),
        /// Bodies larger than this many octets are written to a file beside sled while they
        /// arrive (and deleted with the message), instead of being held in memory: the
        /// memory one message can take, and the size past which a body never enters sled.
        pub large_message_threshold: usize = 256 * 1024
            => (live, []),
        /// Octets of the spool's page cache (sled keeps about twice that in memory once the
        /// queue is large). More helps a large backlog's reads little: they come from the
        /// system's page cache.
        pub spool_cache_size: u64 = hermod_actors::store::spool::DEFAULT_CACHE
            => (restart, []),
        /// Postfix's `soft_bounce`: a safety net while a configuration is being fixed. Mail
        /// that would bounce stays queued: permanent failures from next hops (and hermod's
        /// own) are deferred instead, and no recipient expires.
        pub soft_bounce: bool = false
            => (live, []),
    }
}

impl Section for QueueConfig {
    const KEYS: &'static [Key] = QueueConfig::DECLARED;
    const NAME: &'static str = "queue";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.spool_cache_size < 1024 * 1024 {
            issues.push(ConfigIssue::new(
                "queue.spool_cache_size",
                format!("{} is under 1 MiB (1048576)", self.spool_cache_size),
            ));
        }
        if self.large_message_threshold < 4096 {
            issues.push(ConfigIssue::new(
                "queue.large_message_threshold",
                "must be at least 4096 (smaller bodies are cheaper kept in the spool database)",
            ));
        }
        longer_than_zero(
            issues,
            &[
                ("queue.retry_interval", self.retry_interval),
                ("queue.max_retry_interval", self.max_retry_interval),
                ("queue.scan_interval", self.scan_interval),
                ("queue.state_flush_interval", self.state_flush_interval),
                ("queue.max_lifetime", self.max_lifetime),
            ],
        );
        if self.max_retry_interval < self.retry_interval {
            issues.push(ConfigIssue::new(
                "queue.max_retry_interval",
                "is shorter than queue.retry_interval",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            issues.push(ConfigIssue::new("queue.data_dir", "must name a directory"));
        }
        if let Err(e) = self.postmaster_mailbox() {
            issues.push(ConfigIssue::new(
                "queue.postmaster",
                format!("{:?} is not a mail address: {e}", self.postmaster),
            ));
        }
    }
}

impl QueueConfig {
    /// `postmaster` parsed as a mailbox; `None` when it is empty.
    pub fn postmaster_mailbox(&self) -> Result<Option<Mailbox>, AddressError> {
        let address = self.postmaster.trim();
        if address.is_empty() {
            return Ok(None);
        }
        address::parse_forward_path(&format!("<{address}>"), "invalid")
            .map(|(mailbox, _)| Some(mailbox))
    }

    /// The postmaster for the actors. Validated before start and before a reload is
    /// applied, so an unparsable address cannot reach here.
    pub fn postmaster(&self) -> Option<Mailbox> {
        self.postmaster_mailbox().ok().flatten()
    }

    /// Where Sessions write bodies past `large_message_threshold`, their bytes claimed
    /// against the free-space reserve of `disk`.
    pub fn spill(&self, files: &Arc<BodyFiles>, room: &IntakeRoom) -> Option<Spill> {
        Some(Spill {
            files: files.clone(),
            threshold: self.large_message_threshold,
            room: Arc::new(room.clone()),
        })
    }

    /// The Queue actor's settings. `hostname` names hermod in bounces; `hops` is the
    /// next-hop health policy from `[delivery]`; `bounce_rules` classify failures
    /// (`[bounce]`).
    pub fn queue_settings(
        &self,
        hostname: &str,
        hops: HopPolicy,
        bounce_rules: Arc<BounceRules>,
    ) -> QueueSettings {
        QueueSettings {
            hostname: hostname.to_string(),
            retry_interval: self.retry_interval,
            max_retry_interval: self.max_retry_interval,
            max_lifetime: self.max_lifetime,
            max_attempts: self.max_attempts,
            scan_interval: self.scan_interval,
            max_in_flight: 10_000,
            max_bytes_in_flight: 256 * 1024 * 1024,
            state_flush_interval: self.state_flush_interval,
            postmaster: self.postmaster().map(|p| p.to_string()),
            soft_bounce: self.soft_bounce,
            hops,
            bounce_rules,
        }
    }
}
