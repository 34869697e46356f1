//! What a shaping file says, once parsed: limits per scope (the default, a provider, a
//! site, a recipient domain), the providers that roll many domains up into one site, and
//! the automation rules that react to replies. Plain values built by the binary's
//! configuration loader; nothing here reads a file.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use regex::Regex;

use crate::outbound::tls::TlsMode;
use crate::protocol::status::{EnhancedCode, Status};

/// A number of events per period: `10/s`, `600/min`, `3600/h`, `5 per hour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many events.
    pub count: u32,
    /// In how long.
    pub per: Duration,
}

impl Rate {
    /// The time one event costs when the rate is spread evenly.
    pub fn interval(self) -> Duration {
        self.per / self.count.max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            86400 => "d",
            _ => return write!(f, "{}/{}s", self.count, self.per.as_secs()),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Why a text is not a rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a rate (expected COUNT/UNIT or COUNT per UNIT, unit s, min, h or d): {0:?}")]
pub struct NotRate(pub String);

impl FromStr for Rate {
    type Err = NotRate;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || NotRate(text.to_string());
        let (count, unit) = text
            .split_once('/')
            .or_else(|| text.split_once(" per "))
            .ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86400,
            _ => return Err(bad()),
        };
        // Zero, or faster than a microsecond apart (no limit at all): refused.
        if count == 0 || u64::from(count) > per * 1_000_000 {
            return Err(bad());
        }
        Ok(Rate {
            count,
            per: Duration::from_secs(per),
        })
    }
}

/// The limits one scope sets; `None` leaves the limit to the wider scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: Option<usize>,
    /// Messages over one connection before it is closed.
    pub max_messages_per_connection: Option<u32>,
    /// Messages sent (transactions started).
    pub message_rate: Option<Rate>,
    /// New connections opened.
    pub connection_rate: Option<Rate>,
    /// TLS towards the site (or domain), in place of `delivery.tls` and `tls_policy`
    /// (DANE and MTA-STS still apply over it).
    pub tls: Option<TlsMode>,
}

impl Limits {
    /// These limits, with what they leave unset taken from `wider`.
    pub fn over(&self, wider: &Limits) -> Limits {
        Limits {
            max_connections: self.max_connections.or(wider.max_connections),
            max_messages_per_connection: self
                .max_messages_per_connection
                .or(wider.max_messages_per_connection),
            message_rate: self.message_rate.or(wider.message_rate),
            connection_rate: self.connection_rate.or(wider.connection_rate),
            tls: self.tls.or(wider.tls),
        }
    }

    /// The limits as one line, for `hermod route` and the logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.max_connections {
            parts.push(format!("max_connections={n}"));
        }
        if let Some(n) = self.max_messages_per_connection {
            parts.push(format!("max_messages_per_connection={n}"));
        }
        if let Some(rate) = self.message_rate {
            parts.push(format!("message_rate={rate}"));
        }
        if let Some(rate) = self.connection_rate {
            parts.push(format!("connection_rate={rate}"));
        }
        if let Some(tls) = self.tls {
            parts.push(format!("tls={}", tls.name()));
        }
        if parts.is_empty() {
            "no limits".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// A mailbox provider: every destination whose MX hosts all end in one of its suffixes
/// is one site, named after the provider, with one budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The provider's name, which is also its site's name.
    pub name: String,
    /// MX host suffixes, lowercase (`.google.com`); one without a leading dot matches
    /// that host exactly and the hosts under it.
    pub mx_suffix: Vec<String>,
    /// The limits of its site.
    pub limits: Limits,
}

impl Provider {
    /// Whether `host` (lowercase, no trailing dot) is one of the provider's MX hosts.
    pub fn serves(&self, host: &str) -> bool {
        self.mx_suffix.iter().any(|suffix| {
            let bare = suffix.trim_start_matches('.');
            host == bare
                || host
                    .strip_suffix(bare)
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

/// When a matching reply leads to the rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// At the first matching reply.
    Immediate,
    /// When this many matching replies came within the period.
    Threshold(Rate),
}

impl FromStr for Trigger {
    type Err = NotRate;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "immediate" {
            return Ok(Trigger::Immediate);
        }
        text.parse().map(Trigger::Threshold)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Immediate => f.write_str("immediate"),
            Trigger::Threshold(rate) => write!(f, "{rate}"),
        }
    }
}

/// What a rule does to the (source, site) path for its duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// No new connection and no message: mail for the site waits.
    Suspend,
    /// These limits replace the path's own (each one set is lowered to it).
    Limit(Limits),
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionKind::Suspend => f.write_str("suspend"),
            ActionKind::Limit(limits) => write!(f, "limit {}", limits.describe()),
        }
    }
}

/// One traffic-shaping automation rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name, in logs, metrics and `hermod shaping status`.
    pub name: String,
    /// Only replies on this provider's site (none: any site).
    pub provider: Option<String>,
    /// Only replies on this site (none: any site).
    pub site: Option<String>,
    /// Enhanced status code the reply must start with (`4.7.28`, `4.7`).
    pub enhanced_code: Option<String>,
    /// Regular expression the reply's text must match.
    pub pattern: Option<Regex>,
    /// When it acts.
    pub trigger: Trigger,
    /// What it does.
    pub action: ActionKind,
    /// For how long.
    pub duration: Duration,
}

impl Rule {
    /// Whether a reply with `status`, on `site` (of `provider`, if any), matches.
    pub fn matches(&self, site: &str, provider: Option<&str>, status: &Status) -> bool {
        if self.site.as_deref().is_some_and(|s| s != site)
            || self
                .provider
                .as_deref()
                .is_some_and(|p| Some(p) != provider)
        {
            return false;
        }
        if let Some(prefix) = &self.enhanced_code
            && !code_starts_with(status.code, prefix)
        {
            return false;
        }
        self.pattern
            .as_ref()
            .is_none_or(|pattern| pattern.is_match(&status.text))
    }
}

/// Whether `code` is `prefix` or under it (`4.7.28` is under `4.7`, not under `4.7.2`).
fn code_starts_with(code: EnhancedCode, prefix: &str) -> bool {
    let code = code.to_string();
    code == prefix
        || code
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// A whole shaping file.
#[derive(Debug, Clone, Default)]
pub struct ShapingRules {
    /// Limits of every site the file says nothing else of.
    pub default: Limits,
    /// Providers, in the file's order: the first that serves all of a destination's MX
    /// hosts names its site.
    pub providers: Vec<Provider>,
    /// Limits by site name (a provider's name or the MX host list).
    pub sites: HashMap<String, Limits>,
    /// Limits of one recipient domain's own next hop, beside its site's.
    pub domains: HashMap<String, Limits>,
    /// Automation rules, in the file's order.
    pub automation: Vec<Rule>,
}

/// Where a destination's site came from, for `hermod route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteOrigin {
    /// A provider serves all its MX hosts.
    Provider(String),
    /// Its MX host names, sorted.
    MxHosts,
}

impl ShapingRules {
    /// The site of a destination whose MX hosts (or configured host) are `hosts`: the
    /// first provider serving every one of them, else the sorted host names joined with
    /// commas (KumoMTA's site name), so domains hosted alike share one site.
    pub fn site_of<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) -> (String, SiteOrigin) {
        let mut hosts: Vec<String> = hosts
            .into_iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        hosts.sort();
        hosts.dedup();
        if !hosts.is_empty()
            && let Some(provider) = self
                .providers
                .iter()
                .find(|p| hosts.iter().all(|h| p.serves(h)))
        {
            return (
                provider.name.clone(),
                SiteOrigin::Provider(provider.name.clone()),
            );
        }
        (hosts.join(","), SiteOrigin::MxHosts)
    }

    /// The limits of `site` and where each layer came from: the site's own entry over
    /// its provider's over the default.
    pub fn site_limits(&self, site: &str, origin: &SiteOrigin) -> Limits {
        let provider = match origin {
            SiteOrigin::Provider(name) => self
                .providers
                .iter()
                .find(|p| &p.name == name)
                .map(|p| p.limits.clone()),
            SiteOrigin::MxHosts => None,
        };
        let wider = provider.unwrap_or_default().over(&self.default);
        self.sites
            .get(site)
            .map_or(wider.clone(), |own| own.over(&wider))
    }

    /// The limits of `domain`'s own next hop, if the file names it.
    pub fn domain_limits(&self, domain: &str) -> Option<&Limits> {
        self.domains.get(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google() -> Provider {
        Provider {
            name: "google".into(),
            mx_suffix: vec![".google.com".into(), "googlemail.com".into()],
            limits: Limits {
                max_connections: Some(10),
                ..Limits::default()
            },
        }
    }

    #[test]
    fn rates_read_in_both_spellings_and_refuse_nonsense() {
        let rate: Rate = "600/min".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_millis(100));
        assert_eq!("5 per hour".parse::<Rate>().unwrap().to_string(), "5/h");
        for bad in ["", "0/s", "5/fortnight", "x/s", "5", "2000000/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!("immediate".parse::<Trigger>().unwrap(), Trigger::Immediate);
    }

    #[test]
    fn a_provider_names_the_site_only_when_it_serves_every_mx_host() {
        let rules = ShapingRules {
            providers: vec![google()],
            ..ShapingRules::default()
        };
        let (site, origin) = rules.site_of(["aspmx.l.google.com", "alt1.aspmx.l.google.com."]);
        assert_eq!(site, "google");
        assert_eq!(origin, SiteOrigin::Provider("google".into()));
        assert_eq!(rules.site_of(["googlemail.com"]).0, "google");
        // A backup MX of its own makes it a site of its own.
        let (site, origin) = rules.site_of(["mx.example.com", "aspmx.l.google.com"]);
        assert_eq!(site, "aspmx.l.google.com,mx.example.com");
        assert_eq!(origin, SiteOrigin::MxHosts);
        // A suffix matches at a dot only.
        assert_eq!(rules.site_of(["evilgoogle.com"]).0, "evilgoogle.com");
    }

    #[test]
    fn site_limits_layer_the_site_over_its_provider_over_the_default() {
        let mut rules = ShapingRules {
            providers: vec![google()],
            default: Limits {
                max_connections: Some(2),
                max_messages_per_connection: Some(50),
                ..Limits::default()
            },
            ..ShapingRules::default()
        };
        rules.sites.insert(
            "google".into(),
            Limits {
                message_rate: Some("10/s".parse().unwrap()),
                ..Limits::default()
            },
        );
        let limits = rules.site_limits("google", &SiteOrigin::Provider("google".into()));
        assert_eq!(limits.max_connections, Some(10));
        assert_eq!(limits.max_messages_per_connection, Some(50));
        assert_eq!(limits.message_rate.unwrap().to_string(), "10/s");
        let other = rules.site_limits("mx.example.com", &SiteOrigin::MxHosts);
        assert_eq!(other.max_connections, Some(2));
    }

    #[test]
    fn rules_match_on_scope_code_prefix_and_text() {
        let rule = Rule {
            name: "google-rate".into(),
            provider: Some("google".into()),
            site: None,
            enhanced_code: Some("4.7".into()),
            pattern: Some(Regex::new("(?i)unusual rate").unwrap()),
            trigger: Trigger::Immediate,
            action: ActionKind::Suspend,
            duration: Duration::from_secs(3600),
        };
        let reply = Status::from_reply(421, "4.7.28 Our system has detected an unusual rate");
        assert!(rule.matches("google", Some("google"), &reply));
        assert!(!rule.matches("other", None, &reply));
        let wrong_code = Status::from_reply(421, "4.4.2 unusual rate");
        assert!(!rule.matches("google", Some("google"), &wrong_code));
        let wrong_text = Status::from_reply(421, "4.7.0 try later");
        assert!(!rule.matches("google", Some("google"), &wrong_text));
        assert!(code_starts_with(EnhancedCode::new(4, 7, 28), "4.7.28"));
        assert!(!code_starts_with(EnhancedCode::new(4, 7, 28), "4.7.2"));
    }
}
