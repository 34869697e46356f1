//! The configuration: one file per section, each section named like the actor it
//! configures. A section's file declares each of its settings once: the field (its TOML
//! key) with a doc comment saying why, its default, the seeds' environment name that
//! sets it, whether a reload applies it, the checks serde cannot make, and the settings
//! its actor is built from. Nothing outside a section copies its fields one by one.
//!
//! Loading is the TOML file, then environment overrides ([`env`]), then validation that
//! names the key and the reason for every problem ([`load`]); `--validate-only` prints a
//! summary ([`summary`]).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use section::Key;

pub mod admin;
pub mod auth;
pub mod bounce;
pub mod debug_peers;
pub mod delivery;
mod delivery_security;
pub mod dkim;
pub mod dnsbl;
pub mod duration;
pub mod egress;
pub mod env;
pub mod events;
pub mod greylist;
pub mod http_inject;
mod load;
pub mod log;
pub mod mail_auth;
pub mod queue;
pub mod rate_limit;
pub mod redis;
pub mod relay;
pub mod reload;
pub mod secret_file;
pub mod section;
pub mod shaping;
pub mod smtp;
mod summary;
pub mod tls;
pub mod tls_report;
pub mod traces;

pub use admin::AdminConfig;
pub use auth::AuthConfig;
pub use bounce::BounceConfig;
pub use delivery::DeliveryConfig;
pub use dkim::DkimConfig;
pub use dnsbl::DnsblConfig;
pub use egress::EgressConfig;
pub use events::EventsConfig;
pub use greylist::GreylistConfig;
pub use http_inject::HttpInjectConfig;
pub use load::{DEFAULT_CONFIG_PATH, Source, load};
pub use log::LogConfig;
pub use mail_auth::MailAuthConfig;
pub use queue::QueueConfig;
pub use rate_limit::RateLimitConfig;
pub use redis::RedisConfig;
pub use relay::RelayConfig;
pub use smtp::SmtpConfig;
pub use summary::settings;
pub use summary::{non_defaults, summary};
pub use tls::TlsConfig;
pub use tls_report::TlsReportConfig;
pub use traces::TracingConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The SMTP listener and sessions.
    pub smtp: SmtpConfig,
    /// The server's certificate and what TLS is required for.
    pub tls: TlsConfig,
    /// AUTH for submission.
    pub auth: AuthConfig,
    /// Who may relay where.
    pub relay: RelayConfig,
    /// The RateLimiter actor.
    pub rate_limit: RateLimitConfig,
    /// The Greylist actor.
    pub greylist: GreylistConfig,
    /// The DNSBL actor.
    pub dnsbl: DnsblConfig,
    /// The Redis server a fleet shares its policy state through.
    pub redis: RedisConfig,
    /// DKIM signing.
    pub dkim: DkimConfig,
    /// SPF, DKIM and DMARC verification.
    pub mail_auth: MailAuthConfig,
    /// The durable queue and its retry schedule.
    pub queue: QueueConfig,
    /// Outbound delivery.
    pub delivery: DeliveryConfig,
    /// The local addresses mail leaves from.
    pub egress: EgressConfig,
    /// Bounce classification.
    pub bounce: BounceConfig,
    /// Delivery events and their destinations.
    pub events: EventsConfig,
    /// The HTTP injection API.
    pub http_inject: HttpInjectConfig,
    /// Logging.
    pub log: LogConfig,
    /// OpenTelemetry traces of messages.
    pub tracing: TracingConfig,
    /// TLS reports (RFC 8460) to the domains delivered to.
    pub tls_report: TlsReportConfig,
    /// The admin HTTP server.
    pub admin: AdminConfig,
}

impl Config {
    /// Checks what serde cannot (relations, ranges, syntax inside strings), section by
    /// section; every problem is named by its `section.key`.
    pub fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        self.smtp.check(&mut issues);
        self.tls.check(&mut issues);
        self.auth.check(&mut issues);
        self.relay.check(&mut issues);
        self.rate_limit.check(&mut issues);
        self.greylist.check(&mut issues);
        self.dnsbl.check(&mut issues);
        self.redis.check(&mut issues);
        self.dkim.check(&mut issues);
        self.mail_auth.check(&mut issues);
        self.queue.check(&mut issues);
        self.delivery.check(&mut issues);
        self.bounce.check(&mut issues);
        self.events.check(&mut issues);
        if !self.events.redis_stream.is_empty() && self.redis.url.is_empty() {
            issues.push(ConfigIssue::new(
                "events.redis_stream",
                "the Redis Streams destination needs redis.url (SMTP_REDIS_URL)",
            ));
        }
        self.http_inject.check(&mut issues);
        if self.http_inject.enabled && self.http_inject.tls && !self.tls.offered() {
            issues.push(ConfigIssue::new(
                "http_inject.tls",
                "HTTPS needs tls.cert and tls.key (and tls.enabled)",
            ));
        }
        self.log.check(&mut issues);
        self.tracing.check(&mut issues);
        self.tls_report.check(&mut issues);
        self.egress.check(&mut issues);
        self.admin.check(&mut issues);
        self.check_listeners(&mut issues);
        issues
    }

    /// What each listener's kind needs from `[tls]` and `[auth]`.
    fn check_listeners(&self, issues: &mut Vec<ConfigIssue>) {
        use hermod_actors::protocol::security::ListenerKind;
        for entry in &self.smtp.listen {
            let endpoint = entry.endpoint;
            if endpoint.kind == ListenerKind::Submissions && !self.tls.offered() {
                issues.push(ConfigIssue::new(
                    "smtp.listen",
                    format!("{entry}: TLS from the first byte needs tls.cert and tls.key (and tls.enabled)"),
                ));
            }
            if endpoint.require_auth && !self.auth.enabled {
                issues.push(ConfigIssue::new(
                    "smtp.listen",
                    format!("{entry}: requires AUTH, but auth.enabled is off (SMTP_ENABLE_AUTH=true), so nobody could send; or set require_auth = false"),
                ));
            }
        }
    }

    /// What TLS and AUTH offer and require, for the Sessions.
    pub fn security(&self) -> hermod_actors::protocol::security::Security {
        hermod_actors::protocol::security::Security {
            tls: self.tls.offered(),
            require_tls: self.tls.require,
            auth: self.auth.enabled,
            require_auth_for_relay: self.auth.require_auth_for_relay,
        }
    }
}

/// What a section declares about its keys, beside them in its own file (most through
/// `section!` in [`section`], which declares each key once).
pub trait Section: Default + Serialize + DeserializeOwned {
    /// The table's name in the file and in `HERMOD_<SECTION>_<KEY>`.
    const NAME: &'static str;
    /// Its keys: the seeds' environment names that set each, and whether a reload
    /// (SIGHUP) applies it while hermod runs (the others wait for a restart).
    const KEYS: &'static [Key];
    /// Adds to `issues` what serde cannot check.
    fn check(&self, issues: &mut Vec<ConfigIssue>);
}

/// A section's declarations without its type, so the loader can go over all of them.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    /// See [`Section::NAME`].
    pub name: &'static str,
    /// See [`Section::KEYS`].
    pub keys: &'static [Key],
}

impl Declared {
    fn of<S: Section>() -> Declared {
        Declared {
            name: S::NAME,
            keys: S::KEYS,
        }
    }

    /// Each seed name and the key it sets.
    pub fn seed_env(&self) -> impl Iterator<Item = (&'static str, &'static str)> + use<> {
        self.keys
            .iter()
            .flat_map(|key| key.env.iter().map(move |name| (*name, key.name)))
    }

    /// The keys a reload applies.
    pub fn live(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.keys.iter().filter(|key| key.live).map(|key| key.name)
    }
}

/// Every section, in the order of the file.
pub fn sections() -> [Declared; 20] {
    [
        Declared::of::<SmtpConfig>(),
        Declared::of::<TlsConfig>(),
        Declared::of::<AuthConfig>(),
        Declared::of::<RelayConfig>(),
        Declared::of::<RateLimitConfig>(),
        Declared::of::<GreylistConfig>(),
        Declared::of::<DnsblConfig>(),
        Declared::of::<RedisConfig>(),
        Declared::of::<DkimConfig>(),
        Declared::of::<MailAuthConfig>(),
        Declared::of::<QueueConfig>(),
        Declared::of::<DeliveryConfig>(),
        Declared::of::<EgressConfig>(),
        Declared::of::<BounceConfig>(),
        Declared::of::<EventsConfig>(),
        Declared::of::<HttpInjectConfig>(),
        Declared::of::<LogConfig>(),
        Declared::of::<TracingConfig>(),
        Declared::of::<TlsReportConfig>(),
        Declared::of::<AdminConfig>(),
    ]
}

/// One problem with the configuration: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// `section.key`, or the environment variable that set it.
    pub key: String,
    /// What is wrong and what would be right.
    pub reason: String,
}

impl ConfigIssue {
    /// A problem with `key`; `reason` is a text or a typed error, kept as its text.
    pub fn new(key: impl Into<String>, reason: impl fmt::Display) -> ConfigIssue {
        ConfigIssue {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Adds "must be at least 1" for each `(key, value)` that is zero.
fn at_least_one(issues: &mut Vec<ConfigIssue>, keys: &[(&str, u64)]) {
    for (key, value) in keys {
        if *value == 0 {
            issues.push(ConfigIssue::new(*key, "must be at least 1"));
        }
    }
}

/// Adds "must be longer than zero" for each `(key, duration)` that is zero.
fn longer_than_zero(issues: &mut Vec<ConfigIssue>, keys: &[(&str, std::time::Duration)]) {
    for (key, value) in keys {
        if value.is_zero() {
            issues.push(ConfigIssue::new(*key, "must be longer than zero"));
        }
    }
}
