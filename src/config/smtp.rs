//! `[smtp]`: the Listener and Session actors — where hermod listens, the limits of one
//! session and of all of them, and the session timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hermod_actors::inbound::listener::{ConnectionLimits, Reconfigure};
use hermod_actors::inbound::session::SessionTimeouts;
use hermod_actors::policy::mail_loop::LoopingDomains;
use hermod_actors::policy::set::PolicySet;
use hermod_actors::protocol::ServerSettings;
use hermod_actors::protocol::address::Mailbox;
use hermod_actors::protocol::deadline::PhaseLimits;
use hermod_actors::protocol::receiver::Spill;
use hermod_actors::protocol::relay::RelayPolicy;
use hermod_actors::protocol::security::{Endpoint, ListenerKind, Security};
use hermod_actors::store::room::IntakeRoom;
use serde::{Deserialize, Serialize};

use super::section::{Key, section};
use super::{ConfigIssue, Section, at_least_one, longer_than_zero};

section! {
    /// `[smtp]`: the Listener and Session actors.
    ///
    /// Limits and timeouts reach sessions opened after the reload; the listening
    /// sockets, the host name and the arbiters stay until a restart.
    pub struct SmtpConfig {
        /// Addresses to listen on, each `"ip:port"` (kind `smtp`) or a table `{ address,
        /// kind = "smtp" | "submission" | "submissions", require_auth, plaintext_auth }`
        /// (`SMTP_HOST` and `SMTP_PORT` together set one of kind `smtp`).
        pub listen: Vec<ListenEntry> = vec![ListenEntry::smtp(SocketAddr::from(([127, 0, 0, 1], 2525)))]
            => (restart, []),
        /// Our host name in the banner, EHLO and Received: headers.
        pub hostname: String = "localhost".into()
            => (restart, ["SMTP_HOSTNAME"]),
        /// Connections open at once, in total (421 4.7.0 past it).
        pub max_connections: usize = 1000
            => (live, ["SMTP_MAX_CONNECTIONS"]),
        /// Connections open at once from one client IP.
        pub max_connections_per_ip: usize = 100
            => (live, ["SMTP_MAX_CONNECTIONS_PER_IP"]),
        /// Largest message accepted, in bytes (552 5.3.4 past it).
        pub max_message_size: usize = 26_214_400
            => (live, ["SMTP_MAX_MESSAGE_SIZE"]),
        /// Recipients per message (452 4.5.3 past it).
        pub max_recipients: usize = 100
            => (live, ["SMTP_MAX_RECIPIENTS"]),
        /// Longest command or message line in bytes without CRLF (500 5.5.2 past it).
        pub max_line_length: usize = 1000
            => (live, ["SMTP_MAX_LINE_LENGTH"]),
        /// Protocol errors tolerated on one connection before it is closed.
        pub max_errors: u32 = 10
            => (live, []),
        /// Received: headers past which a message is refused as a loop (554 5.4.6).
        pub max_received_headers: usize = 50
            => (live, []),
        /// Time from the banner until the client's first complete command line.
        #[serde(with = "super::duration")]
        pub greeting_timeout: Duration = Duration::from_secs(30)
            => (live, ["SMTP_GREETING_TIMEOUT_SECONDS"]),
        /// Time for each further complete command line (a deadline, not a per-read wait: a
        /// client trickling bytes does not restart it).
        #[serde(with = "super::duration")]
        pub command_timeout: Duration = Duration::from_secs(300)
            => (live, ["SMTP_TIMEOUT_SECONDS", "SMTP_COMMAND_TIMEOUT_SECONDS"]),
        /// Time for the whole message content of one DATA or BDAT chunk, unless the client
        /// keeps `min_data_rate`.
        #[serde(with = "super::duration")]
        pub data_timeout: Duration = Duration::from_secs(600)
            => (live, ["SMTP_DATA_TIMEOUT_SECONDS"]),
        /// Average bytes per second that earns a large message more than `data_timeout`
        /// (Postfix's `smtpd_min_data_rate`); 0 disables the extension.
        pub min_data_rate: u64 = 500
            => (live, []),
        /// Time sessions get to finish on SIGTERM before they are cut.
        #[serde(with = "super::duration")]
        pub drain_timeout: Duration = Duration::from_secs(30)
            => (restart, []),
        /// The time one transaction (and the commands before its MAIL) may spend waiting
        /// for policies that ask the DNS (DNSBL, SPF, DKIM, DMARC), all of them together;
        /// once spent, their failure rule applies at once (fail open, or 451).
        #[serde(with = "super::duration")]
        pub dns_budget: Duration = Duration::from_secs(5)
            => (restart, []),
        /// Arbiters (threads) that run sessions and deliveries, the main one included; 0 means
        /// one per core but one ([`SmtpConfig::arbiters`]).
        pub workers: usize = 0
            => (restart, ["SMTP_WORKER_THREADS"]),
    }
}

impl Section for SmtpConfig {
    const KEYS: &'static [Key] = SmtpConfig::DECLARED;
    const NAME: &'static str = "smtp";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.listen.is_empty() {
            issues.push(ConfigIssue::new(
                "smtp.listen",
                "at least one address to listen on is needed",
            ));
        }
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            issues.push(ConfigIssue::new(
                "smtp.hostname",
                format!("must be a host name, got {:?}", self.hostname),
            ));
        }
        at_least_one(
            issues,
            &[
                ("smtp.max_connections", self.max_connections as u64),
                (
                    "smtp.max_connections_per_ip",
                    self.max_connections_per_ip as u64,
                ),
                ("smtp.max_message_size", self.max_message_size as u64),
                ("smtp.max_recipients", self.max_recipients as u64),
                ("smtp.max_errors", u64::from(self.max_errors)),
            ],
        );
        if self.max_line_length < 512 {
            issues.push(ConfigIssue::new(
                "smtp.max_line_length",
                "must be at least 512 (RFC 5321 §4.5.3.1.4 allows command lines of 512 octets)",
            ));
        }
        if self.max_connections_per_ip > self.max_connections {
            issues.push(ConfigIssue::new(
                "smtp.max_connections_per_ip",
                "is larger than smtp.max_connections",
            ));
        }
        longer_than_zero(
            issues,
            &[
                ("smtp.greeting_timeout", self.greeting_timeout),
                ("smtp.command_timeout", self.command_timeout),
                ("smtp.data_timeout", self.data_timeout),
            ],
        );
    }
}

/// One listening address and its kind: `"127.0.0.1:25"`, or a table for a submission
/// port (`{ address = "0.0.0.0:587", kind = "submission" }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "ListenForm", into = "ListenForm")]
pub struct ListenEntry {
    /// Where to listen.
    pub address: SocketAddr,
    /// Its kind and rules.
    pub endpoint: Endpoint,
}

impl ListenEntry {
    /// A port 25 style listener.
    pub fn smtp(address: SocketAddr) -> Self {
        ListenEntry {
            address,
            endpoint: Endpoint::of_kind(ListenerKind::Smtp),
        }
    }
}

impl std::fmt::Display for ListenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.address, self.endpoint.kind.name())?;
        if self.endpoint.require_auth {
            write!(f, ", AUTH required")?;
        }
        if self.endpoint.plaintext_auth {
            write!(f, ", AUTH allowed without TLS")?;
        }
        Ok(())
    }
}

/// The two ways to write a listen entry in the file.
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum ListenForm {
    Address(SocketAddr),
    Table {
        address: SocketAddr,
        #[serde(default)]
        kind: ListenerKind,
        /// Default: required on submission kinds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        require_auth: Option<bool>,
        #[serde(default)]
        plaintext_auth: bool,
    },
}

impl From<ListenForm> for ListenEntry {
    fn from(form: ListenForm) -> Self {
        match form {
            ListenForm::Address(address) => ListenEntry::smtp(address),
            ListenForm::Table {
                address,
                kind,
                require_auth,
                plaintext_auth,
            } => ListenEntry {
                address,
                endpoint: Endpoint {
                    kind,
                    require_auth: require_auth.unwrap_or(kind.is_submission()),
                    plaintext_auth,
                },
            },
        }
    }
}

impl From<ListenEntry> for ListenForm {
    fn from(entry: ListenEntry) -> Self {
        if entry.endpoint == Endpoint::of_kind(ListenerKind::Smtp) {
            return ListenForm::Address(entry.address);
        }
        ListenForm::Table {
            address: entry.address,
            kind: entry.endpoint.kind,
            require_auth: Some(entry.endpoint.require_auth),
            plaintext_auth: entry.endpoint.plaintext_auth,
        }
    }
}

/// What sessions share that is not configuration: made once by the wiring.
pub struct SessionShared {
    /// The spool's free-space reserve and the process's queue ids.
    pub room: IntakeRoom,
    /// Relay domains found to loop back to hermod.
    pub loops: Arc<LoopingDomains>,
    /// The policy actors, and so where sessions stop for them.
    pub policies: PolicySet,
}

impl SmtpConfig {
    /// How many connections the Listeners admit.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            max_per_ip: self.max_connections_per_ip,
        }
    }

    /// What a Session is started with. The relay policy, the postmaster, where large
    /// bodies go and what TLS and AUTH offer come from their own sections.
    pub fn sessions(
        &self,
        relay: RelayPolicy,
        postmaster: Option<Mailbox>,
        spill: Option<Spill>,
        security: Security,
        shared: &SessionShared,
    ) -> Reconfigure {
        let settings = Arc::new(ServerSettings {
            hostname: self.hostname.clone(),
            max_message_size: self.max_message_size,
            max_recipients: self.max_recipients,
            max_line_length: self.max_line_length,
            max_errors: self.max_errors,
            max_received_headers: self.max_received_headers,
            relay,
            security,
            checks: shared.policies.stages(),
            postmaster,
            room: Arc::new(shared.room.clone()),
            spill,
        });
        let timeouts = SessionTimeouts {
            phases: PhaseLimits {
                greeting: self.greeting_timeout,
                command: self.command_timeout,
                data: self.data_timeout,
                min_data_rate: self.min_data_rate,
            },
            enqueue: Duration::from_secs(60),
            write: self.command_timeout,
        };
        Reconfigure { settings, timeouts }
    }

    /// Arbiters to run: `workers`, or one per core but one (at least one). The core left
    /// over is for the threads every message passes through besides its arbiter (the
    /// spool writer, the commit thread and sled's IO threads: about a quarter of
    /// hermod's CPU per message), which otherwise preempt the arbiters and make each
    /// message cost more wake-ups: on two cores, one message per connection, one arbiter took
    /// 99–117 µs of CPU per message against 140 µs for two (docs/BENCHMARKS.md).
    pub fn arbiters(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| default_arbiters(n.get())),
            n => n,
        }
    }
}

/// The arbiters `workers = 0` means on a machine with `cores` cores.
fn default_arbiters(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::default_arbiters;

    #[test]
    fn the_default_leaves_one_core_to_the_commit_threads_but_never_runs_none() {
        assert_eq!(default_arbiters(1), 1);
        assert_eq!(default_arbiters(2), 1);
        assert_eq!(default_arbiters(8), 7);
    }
}
