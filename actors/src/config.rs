//! One settings section per actor, named like its module. Every field has the default an
//! operator would expect; `config/hermod.toml` writes each one out. Durations are human
//! (`"30s"`, `"5m"`, `"1h"`, `"5d"`) or a plain number of seconds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The SMTP listener and sessions.
    pub smtp: SmtpConfig,
    /// Who may relay where.
    pub relay: RelayConfig,
    /// The durable queue and its retry schedule.
    pub queue: QueueConfig,
    /// Outbound delivery.
    pub delivery: DeliveryConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[smtp]`: the Listener and Session actors.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Addresses to listen on for SMTP.
    pub listen: Vec<SocketAddr>,
    /// Our host name in the banner, EHLO and Received: headers.
    pub hostname: String,
    /// Connections open at once, in total (421 4.7.0 past it).
    pub max_connections: usize,
    /// Connections open at once from one client IP.
    pub max_connections_per_ip: usize,
    /// Largest message accepted, in bytes (552 5.3.4 past it).
    pub max_message_size: usize,
    /// Recipients per message (452 4.5.3 past it).
    pub max_recipients: usize,
    /// Longest command or message line in bytes without CRLF (500 5.5.2 past it).
    pub max_line_length: usize,
    /// Protocol errors tolerated on one connection before it is closed.
    pub max_errors: u32,
    /// Received: headers past which a message is refused as a loop (554 5.4.6).
    pub max_received_headers: usize,
    /// Time from the banner until the client's first complete command line.
    #[serde(with = "duration")]
    pub greeting_timeout: Duration,
    /// Time for each further complete command line (a deadline, not a per-read wait: a
    /// client trickling bytes does not restart it).
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    /// Time for the whole message content of one DATA or BDAT chunk, unless the client
    /// keeps `min_data_rate`.
    #[serde(with = "duration")]
    pub data_timeout: Duration,
    /// Average bytes per second that earns a large message more than `data_timeout`
    /// (Postfix's `smtpd_min_data_rate`); 0 disables the extension.
    pub min_data_rate: u64,
    /// Time sessions get to finish on SIGTERM before they are cut.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// Arbiters (threads) that run sessions and deliveries, the main one included; 0 means
    /// one per core.
    pub workers: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            hostname: "localhost".into(),
            max_connections: 1000,
            max_connections_per_ip: 100,
            max_message_size: 26_214_400,
            max_recipients: 100,
            max_line_length: 1000,
            max_errors: 10,
            max_received_headers: 50,
            greeting_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            min_data_rate: 500,
            drain_timeout: Duration::from_secs(30),
            workers: 0,
        }
    }
}

impl QueueConfig {
    /// `postmaster` parsed as a mailbox; `None` when it is empty.
    pub fn postmaster_mailbox(
        &self,
    ) -> Result<Option<crate::protocol::address::Mailbox>, crate::protocol::address::AddressError>
    {
        let address = self.postmaster.trim();
        if address.is_empty() {
            return Ok(None);
        }
        crate::protocol::address::parse_forward_path(&format!("<{address}>"), "invalid")
            .map(|(mailbox, _)| Some(mailbox))
    }
}

/// `[relay]`: the relay policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Domains accepted from anyone (the MX gateway's `relay_domains`); `.example.com`
    /// covers its sub-domains.
    pub domains: Vec<String>,
    /// Client networks allowed to relay to any domain (Postfix's `mynetworks`).
    pub networks: Vec<IpNet>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            domains: Vec::new(),
            networks: vec![
                "127.0.0.0/8".parse().expect("literal"),
                "::1/128".parse().expect("literal"),
            ],
        }
    }
}

/// `[queue]`: the spool and the retry schedule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Where the sled spool lives.
    pub data_dir: PathBuf,
    /// Delay before the first retry of a deferred recipient.
    #[serde(with = "duration")]
    pub retry_interval: Duration,
    /// Longest delay between retries (the delay doubles up to this).
    #[serde(with = "duration")]
    pub max_retry_interval: Duration,
    /// Age after which a message still undelivered is bounced.
    #[serde(with = "duration")]
    pub max_lifetime: Duration,
    /// Delivery attempts per recipient before it is bounced; 0 means no limit.
    pub max_attempts: u32,
    /// How often the schedule is checked for due retries.
    #[serde(with = "duration")]
    pub scan_interval: Duration,
    /// Longest time a change of delivery state (a recipient delivered, a message removed)
    /// stays unflushed when no new message arrives to carry it to disk: after a crash,
    /// what was delivered in this window is delivered again.
    #[serde(with = "duration")]
    pub state_flush_interval: Duration,
    /// The postmaster's address (Postfix's `notify_classes`/`2bounce_notice_recipient`):
    /// a bounce that cannot be delivered is reported here, and `RCPT TO:<postmaster>` is
    /// delivered here. Empty: such a bounce stays queued with an error log line.
    pub postmaster: String,
    /// Free bytes the spool's file system must keep (Postfix's `queue_minfree`): below
    /// it, MAIL FROM gets `452 4.3.1 Insufficient system storage`; 0 turns it off.
    pub min_free_space: u64,
    /// Bodies larger than this many octets are written to a file beside sled while they
    /// arrive (and deleted with the message), instead of being held in memory: the
    /// memory one message can take, and the size past which a body never enters sled.
    pub large_message_threshold: usize,
    /// Postfix's `soft_bounce`: a safety net while a configuration is being fixed. Mail
    /// that would bounce stays queued: permanent failures from next hops (and hermod's
    /// own) are deferred instead, and no recipient expires.
    pub soft_bounce: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            data_dir: PathBuf::from("./data"),
            retry_interval: Duration::from_secs(300),
            max_retry_interval: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(5 * 86400),
            max_attempts: 0,
            scan_interval: Duration::from_secs(1),
            state_flush_interval: Duration::from_millis(200),
            postmaster: String::new(),
            min_free_space: 100 * 1024 * 1024,
            large_message_threshold: 256 * 1024,
            soft_bounce: false,
        }
    }
}

/// `[delivery]`: routing and the Delivery actors.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Smarthost for every domain not in the transport map: `[host]:port` (no MX lookup)
    /// or `host:port` (MX lookup of host). Empty: deliver by MX.
    pub relayhost: String,
    /// Transport map: domain pattern (`example.com`, `.example.com`, `*`) to target
    /// (`smtp:[host]:port`, `smtp:host:port`, `lmtp:[host]:port`).
    pub transport: BTreeMap<String, String>,
    /// DNS servers (`ip:port`) for MX and address lookups; empty: the system resolver.
    pub dns_servers: Vec<SocketAddr>,
    /// Port used for delivery to MX hosts.
    pub mx_port: u16,
    /// Name we give in EHLO; empty: `smtp.hostname`.
    pub helo_name: String,
    /// Connections open at once to one next hop.
    pub max_connections_per_destination: usize,
    /// Messages sent over one connection before it is closed.
    pub max_messages_per_connection: u32,
    /// Messages per second to one next hop; 0 means no limit.
    pub rate_per_destination: u32,
    /// Recipients per transaction to one next hop.
    pub max_recipients_per_transaction: usize,
    /// Time to establish a TCP connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Time to wait for each reply from the next hop.
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    /// Time an open connection may wait for the next message.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Send with BDAT (RFC 3030) when the next hop offers CHUNKING and PIPELINING: one
    /// write and one read per message instead of two round trips.
    pub chunking: bool,
    /// Consecutive connection failures after which a next hop is considered down.
    pub dead_host_failures: u32,
    /// How long a next hop considered down is left alone.
    #[serde(with = "duration")]
    pub dead_host_backoff: Duration,
    /// How long a next hop's Delivery actor lives on with nothing to do (it is started
    /// again when mail for the hop comes).
    #[serde(with = "duration")]
    pub retire_idle_after: Duration,
    /// DNS lookup timeout.
    #[serde(with = "duration")]
    pub dns_timeout: Duration,
    /// Outbound connections open at once over all next hops, each a file descriptor;
    /// when the budget is full, idle connections are closed first to make room. 0: the
    /// open-files limit less `smtp.max_connections` and a reserve for the spool.
    pub max_connections_total: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            relayhost: String::new(),
            transport: BTreeMap::new(),
            dns_servers: Vec::new(),
            mx_port: 25,
            helo_name: String::new(),
            max_connections_per_destination: 20,
            max_messages_per_connection: 1000,
            rate_per_destination: 0,
            max_recipients_per_transaction: 100,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(5),
            chunking: true,
            dead_host_failures: 5,
            dead_host_backoff: Duration::from_secs(60),
            retire_idle_after: Duration::from_secs(300),
            dns_timeout: Duration::from_secs(5),
            max_connections_total: 0,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// A tracing filter such as `info` or `hermod=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            json: false,
            level: "info".into(),
        }
    }
}

/// Parses `"30s"`, `"5m"`, `"1h"`, `"5d"`, `"250ms"` or `"300"` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 30s, 5m, 1h or 5d, got {text:?}"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs(seconds))
}

/// Renders a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        format!("{}ms", d.as_millis())
    } else if s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

mod duration {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for text in ["30s", "5m", "1h", "5d", "250ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
