//! `[delivery]`: routing (transport map, relay host, MX) and the Delivery actors — how
//! many connections and messages each next hop gets, the client's timeouts, and when a
//! hop counts as down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hermod_actors::outbound::connection_budget::ConnectionBudget;
use hermod_actors::outbound::dane::Dane;
use hermod_actors::outbound::delivery::DeliverySettings;
use hermod_actors::outbound::hop_health::HopPolicy;
use hermod_actors::outbound::mta_sts::MtaSts;
use hermod_actors::outbound::mx::MxResolver;
use hermod_actors::outbound::routing::{Router, TransportMap, parse_target};
use hermod_actors::outbound::shaping::ShapingRules;
use hermod_actors::outbound::smtp_client::ClientTimeouts;
use hermod_actors::outbound::tls::{OutboundSecurity, TlsMode};
use hermod_actors::outbound::tls_report::TlsReports;
use serde::{Deserialize, Serialize};

use super::section::{Key, section};
use super::{ConfigIssue, Section, at_least_one, longer_than_zero};

section! {
    /// `[delivery]`: routing and the Delivery actors.
    ///
    /// Routes change for mail dispatched after the reload; running Delivery actors keep
    /// their connection settings until a restart.
    pub struct DeliveryConfig {
        /// Smarthost for every domain not in the transport map: `[host]:port` (no MX lookup)
        /// or `host:port` (MX lookup of host). Empty: deliver by MX.
        pub relayhost: String = String::new()
            => (live, ["SMTP_RELAYHOST"]),
        /// Transport map: domain pattern (`example.com`, `.example.com`, `*`) to target
        /// (`smtp:[host]:port`, `smtp:host:port`, `lmtp:[host]:port`).
        pub transport: BTreeMap<String, String> = BTreeMap::new()
            => (live, ["SMTP_TRANSPORT"]),
        /// DNS servers (`ip:port`) for MX and address lookups; empty: the system resolver.
        pub dns_servers: Vec<SocketAddr> = Vec::new()
            => (restart, ["SMTP_DNS_SERVERS"]),
        /// Port used for delivery to MX hosts.
        pub mx_port: u16 = 25
            => (restart, ["SMTP_DELIVERY_PORT"]),
        /// Name we give in EHLO; empty: `smtp.hostname`.
        pub helo_name: String = String::new()
            => (restart, []),
        /// Connections open at once to one next hop.
        pub max_connections_per_destination: usize = 20
            => (restart, []),
        /// Messages sent over one connection before it is closed.
        pub max_messages_per_connection: u32 = 1000
            => (restart, []),
        /// Messages per second to one next hop; 0 means no limit.
        pub rate_per_destination: u32 = 0
            => (restart, []),
        /// Recipients per transaction to one next hop.
        pub max_recipients_per_transaction: usize = 100
            => (restart, []),
        /// Time to establish a TCP connection.
        #[serde(with = "super::duration")]
        pub connect_timeout: Duration = Duration::from_secs(30)
            => (restart, []),
        /// Time to wait for each reply from the next hop.
        #[serde(with = "super::duration")]
        pub command_timeout: Duration = Duration::from_secs(300)
            => (restart, []),
        /// Time an open connection may wait for the next message.
        #[serde(with = "super::duration")]
        pub idle_timeout: Duration = Duration::from_secs(5)
            => (restart, []),
        /// Send with BDAT (RFC 3030) when the next hop offers CHUNKING and PIPELINING: one
        /// write and one read per message instead of two round trips.
        pub chunking: bool = true
            => (restart, []),
        /// Consecutive connection failures after which a next hop is considered down.
        pub dead_host_failures: u32 = 5
            => (restart, []),
        /// How long a next hop considered down is left alone.
        #[serde(with = "super::duration")]
        pub dead_host_backoff: Duration = Duration::from_secs(60)
            => (restart, []),
        /// How long a next hop's Delivery actor lives on with nothing to do (it is started
        /// again when mail for the hop comes).
        #[serde(with = "super::duration")]
        pub retire_idle_after: Duration = Duration::from_secs(300)
            => (restart, []),
        /// DNS lookup timeout.
        #[serde(with = "super::duration")]
        pub dns_timeout: Duration = Duration::from_secs(5)
            => (restart, []),
        /// Outbound connections open at once over all next hops, each a file descriptor;
        /// when the budget is full, idle connections are closed first to make room. 0: the
        /// open-files limit less `smtp.max_connections` and a reserve for the spool.
        pub max_connections_total: usize = 0
            => (restart, []),
        /// TLS towards next hops: `none`, `opportunistic` (STARTTLS when offered, any
        /// certificate, plaintext retry after a failed handshake), `required` (TLS, any
        /// certificate) or `verify` (TLS, chain and name checked).
        pub tls: TlsMode = TlsMode::Opportunistic
            => (restart, []),
        /// CA certificates (PEM) that `verify` trusts; empty: the system's roots
        /// (/etc/ssl/certs), or Mozilla's built in when the system has none.
        pub tls_ca_file: PathBuf = PathBuf::new()
            => (restart, []),
        /// TLS policy per next hop, keyed by the target as written in `relayhost` or the
        /// transport map (`"[smtp.example.com]:587" = "verify"`).
        pub tls_policy: BTreeMap<String, TlsMode> = BTreeMap::new()
            => (restart, []),
        /// AUTH credentials per next hop, keyed by the target as written
        /// (`"[smtp.example.com]:587" = { username = "u", password_file = "/etc/hermod/pw" }`).
        pub auth: BTreeMap<String, HopCredentials> = BTreeMap::new()
            => (restart, []),
        /// AUTH user name for `relayhost` (`SMTP_RELAYHOST_USERNAME`).
        pub relayhost_username: String = String::new()
            => (restart, ["SMTP_RELAYHOST_USERNAME"]),
        /// AUTH password for `relayhost` (`SMTP_RELAYHOST_PASSWORD`); better kept in
        /// `relayhost_password_file`.
        pub relayhost_password: String = String::new()
            => (restart, ["SMTP_RELAYHOST_PASSWORD"]),
        /// A file, readable by hermod's user only, whose first line is the `relayhost`
        /// password.
        pub relayhost_password_file: PathBuf = PathBuf::new()
            => (restart, []),
        /// Send AUTH to a next hop without TLS (an operator's explicit choice; never by
        /// default).
        pub auth_in_clear: bool = false
            => (restart, []),
        /// Honour the MTA-STS policies (RFC 8461) that receiving domains publish: mail to
        /// a domain in `enforce` goes only to the MX hosts its policy lists, over TLS that
        /// verifies against `tls_ca_file` or the system's roots, or waits (4.7.5).
        pub mta_sts: bool = true
            => (restart, []),
        /// The port policies are fetched from (`https://mta-sts.DOMAIN/`): 443, as RFC 8461
        /// says; another only for tests.
        pub mta_sts_port: u16 = 443
            => (restart, []),
        /// Honour DANE (RFC 7672): mail to a domain whose DNSSEC-signed MX hosts publish
        /// TLSA records goes only over TLS those records authenticate, or waits (4.7.5).
        /// Off by default, as in Postfix: it needs DNS servers that pass DNSSEC records
        /// through (hermod validates them itself).
        pub dane: bool = false
            => (restart, []),
        /// DNSKEY records (zone-file lines) DANE's DNSSEC validation trusts; empty: the
        /// root zone's keys built in. Another only for tests and private DNS trees.
        pub dane_trust_anchor: PathBuf = PathBuf::new()
            => (restart, []),
        /// The shaping file (sites, providers, per-domain limits, automation rules; see
        /// config/shaping.toml); empty: each next hop is shaped alone by the keys above.
        /// Its contents are read again on SIGHUP.
        pub shaping_file: PathBuf = PathBuf::new()
            => (restart, []),
    }
}

/// The longest a policy fetch may take (`connect_timeout` if shorter): jobs to the domain
/// wait for it.
pub const MTA_STS_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// AUTH credentials for one next hop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HopCredentials {
    /// User name.
    pub username: String,
    /// Password (better kept in `password_file`).
    pub password: String,
    /// A file, readable by hermod's user only, whose first line is the password.
    pub password_file: PathBuf,
}

impl Section for DeliveryConfig {
    const KEYS: &'static [Key] = DeliveryConfig::DECLARED;
    const NAME: &'static str = "delivery";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        at_least_one(
            issues,
            &[
                (
                    "delivery.max_connections_per_destination",
                    self.max_connections_per_destination as u64,
                ),
                (
                    "delivery.max_recipients_per_transaction",
                    self.max_recipients_per_transaction as u64,
                ),
                (
                    "delivery.max_messages_per_connection",
                    u64::from(self.max_messages_per_connection),
                ),
            ],
        );
        longer_than_zero(
            issues,
            &[
                ("delivery.connect_timeout", self.connect_timeout),
                ("delivery.command_timeout", self.command_timeout),
                ("delivery.dns_timeout", self.dns_timeout),
            ],
        );
        if !self.relayhost.trim().is_empty()
            && let Err(e) = parse_target(self.relayhost.trim(), 25)
        {
            issues.push(ConfigIssue::new("delivery.relayhost", e.to_string()));
        }
        self.check_security(issues);
        if self.dane
            && let Err(e) = self.dane()
        {
            issues.push(ConfigIssue::new(
                "delivery.dane_trust_anchor",
                e.to_string(),
            ));
        }
        if let Err(e) = self.shaping_rules() {
            issues.push(ConfigIssue::new("delivery.shaping_file", format!("{e:#}")));
        }
        for (pattern, target) in &self.transport {
            // The strict parser checks the pattern's syntax as well as the target's.
            if let Err(e) = TransportMap::parse(&format!("{pattern}={target}"), 25) {
                issues.push(ConfigIssue::new(
                    format!("delivery.transport.{pattern}"),
                    e.to_string(),
                ));
            }
        }
    }
}

impl DeliveryConfig {
    /// The transport map and relay host.
    pub fn router(&self) -> anyhow::Result<Router> {
        let mut transport = TransportMap::new();
        for (pattern, target) in &self.transport {
            transport.insert(pattern, parse_target(target, 25)?);
        }
        let relayhost = match self.relayhost.trim() {
            "" => None,
            target => Some(parse_target(target, 25)?),
        };
        Ok(Router {
            transport,
            relayhost,
        })
    }

    /// The resolver for MX and address lookups.
    pub fn resolver(&self) -> anyhow::Result<MxResolver> {
        Ok(MxResolver::new(&self.dns_servers, self.dns_timeout)?)
    }

    /// When the Queue holds a next hop's mail as down; `max_backoff` is the queue's
    /// longest retry interval.
    pub fn hop_policy(&self, max_backoff: Duration) -> HopPolicy {
        HopPolicy {
            down_after: self.dead_host_failures.max(1),
            first_backoff: self.dead_host_backoff,
            max_backoff,
        }
    }

    /// What every Delivery actor is started with. `hostname` is `smtp.hostname`, the
    /// EHLO name when `helo_name` is empty.
    pub fn delivery_settings(
        &self,
        hostname: &str,
        budget: Arc<ConnectionBudget>,
        security: OutboundSecurity,
    ) -> DeliverySettings {
        let helo_name = match self.helo_name.as_str() {
            "" => hostname.to_string(),
            name => name.to_string(),
        };
        DeliverySettings {
            helo_name,
            mx_port: self.mx_port,
            max_connections: self.max_connections_per_destination,
            max_messages_per_connection: self.max_messages_per_connection,
            rate_per_second: self.rate_per_destination,
            max_recipients_per_transaction: self.max_recipients_per_transaction,
            timeouts: ClientTimeouts {
                connect: self.connect_timeout,
                command: self.command_timeout,
            },
            idle_timeout: self.idle_timeout,
            chunking: self.chunking,
            dead_host_failures: self.dead_host_failures.max(1),
            dead_host_backoff: self.dead_host_backoff,
            retire_idle_after: self.retire_idle_after,
            budget,
            security,
            transcripts: None,
            shaping: None,
            mta_sts: None,
            dane: None,
            tls_reports: None,
        }
    }

    /// The shaping file's rules (`shaping_file`); `None` when there is none.
    pub fn shaping_rules(&self) -> anyhow::Result<Option<ShapingRules>> {
        if self.shaping_file.as_os_str().is_empty() {
            return Ok(None);
        }
        super::shaping::load(&self.shaping_file).map(Some)
    }

    /// DANE's validating resolver (`dane`), asking `dns_servers` and trusting
    /// `dane_trust_anchor`; `None` when off.
    pub fn dane(&self) -> anyhow::Result<Option<Arc<Dane>>> {
        if !self.dane {
            return Ok(None);
        }
        let anchor = (!self.dane_trust_anchor.as_os_str().is_empty())
            .then_some(self.dane_trust_anchor.as_path());
        Ok(Some(Arc::new(Dane::new(
            &self.dns_servers,
            self.dns_timeout,
            anchor,
        )?)))
    }

    /// The MTA-STS policies deliveries honour (`mta_sts`), kept in the spool's `mta_sts`
    /// tree; fetched over the roots `verify` trusts, failed fetches counted in `reports`.
    /// `None` when off.
    pub fn mta_sts(
        &self,
        resolver: &MxResolver,
        security: &OutboundSecurity,
        db: &sled::Db,
        reports: Option<Arc<TlsReports>>,
    ) -> anyhow::Result<Option<Arc<MtaSts>>> {
        if !self.mta_sts {
            return Ok(None);
        }
        let tree = db.open_tree("mta_sts")?;
        Ok(Some(Arc::new(
            self.mta_sts_policies(resolver, security, Some(tree))
                .with_reports(reports),
        )))
    }

    /// MTA-STS policies as these settings fetch them, kept in `tree` (none: in memory
    /// only, as `hermod route` looks one up beside the running hermod).
    pub fn mta_sts_policies(
        &self,
        resolver: &MxResolver,
        security: &OutboundSecurity,
        tree: Option<sled::Tree>,
    ) -> MtaSts {
        MtaSts::new(
            resolver.clone(),
            security.verified_config(),
            self.mta_sts_port,
            self.connect_timeout.min(MTA_STS_FETCH_TIMEOUT),
            tree,
        )
    }
}
