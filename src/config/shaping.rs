//! The shaping file (`delivery.shaping_file`, read again on SIGHUP): limits per site,
//! provider and recipient domain, the providers whose MX hosts roll many domains up
//! into one site, and the automation rules. Parsed here into the engine's
//! [`ShapingRules`]; `hermod shaping check FILE` runs the same code.
//!
//! ```toml
//! [default]                       # every site the file says nothing else of
//! max_connections = 10
//! [provider.google]
//! mx_suffix = [".google.com", ".googlemail.com"]
//! max_connections = 20
//! message_rate = "50/s"
//! [site."mx1.example.net,mx2.example.net"]
//! connection_rate = "10/min"
//! tls = "verify"                  # none | opportunistic | required | verify
//! [domain."example.org"]          # that domain's own next hop, beside its site
//! max_messages_per_connection = 10
//! [[automation]]
//! name = "google-unusual-rate"
//! provider = "google"
//! enhanced_code = "4.7.28"
//! regex = "(?i)unusual rate"
//! trigger = "immediate"           # or "5 per hour"
//! action = "suspend"              # or "limit", with the limits it sets
//! duration = "1h"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use hermod_actors::outbound::shaping::{
    ActionKind, Limits, Provider, Rate, Rule, ShapingRules, Trigger,
};
use hermod_actors::outbound::tls::TlsMode;
use regex::Regex;
use serde::Deserialize;

/// The limits of one scope as written; `mx_suffix` only under `[provider.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    #[serde(default)]
    mx_suffix: Option<Vec<String>>,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    max_messages_per_connection: Option<u32>,
    #[serde(default)]
    message_rate: Option<String>,
    #[serde(default)]
    connection_rate: Option<String>,
    #[serde(default)]
    tls: Option<TlsMode>,
}

/// One `[[automation]]` rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    enhanced_code: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    trigger: String,
    action: String,
    #[serde(with = "super::duration")]
    duration: Duration,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    max_messages_per_connection: Option<u32>,
    #[serde(default)]
    message_rate: Option<String>,
    #[serde(default)]
    connection_rate: Option<String>,
}

/// The whole file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapingFile {
    #[serde(default)]
    default: Option<ScopeFile>,
    #[serde(default)]
    provider: BTreeMap<String, ScopeFile>,
    #[serde(default)]
    site: BTreeMap<String, ScopeFile>,
    #[serde(default)]
    domain: BTreeMap<String, ScopeFile>,
    #[serde(default)]
    automation: Vec<RuleFile>,
}

/// Longest automation duration: a rule left on for days is an outage, not shaping.
const MAX_DURATION: Duration = Duration::from_secs(7 * 86400);

fn rate(scope: &str, key: &str, text: Option<&String>) -> anyhow::Result<Option<Rate>> {
    text.map(|t| t.parse::<Rate>())
        .transpose()
        .with_context(|| format!("{scope}: {key}"))
}

fn limits(
    scope: &str,
    max_connections: Option<usize>,
    max_messages_per_connection: Option<u32>,
    message_rate: Option<&String>,
    connection_rate: Option<&String>,
    tls: Option<TlsMode>,
) -> anyhow::Result<Limits> {
    if max_connections == Some(0) || max_messages_per_connection == Some(0) {
        bail!(
            "{scope}: a limit of 0 would stop delivery for good; use an automation rule's suspend, or leave the limit out"
        );
    }
    Ok(Limits {
        max_connections,
        max_messages_per_connection,
        message_rate: rate(scope, "message_rate", message_rate)?,
        connection_rate: rate(scope, "connection_rate", connection_rate)?,
        tls,
    })
}

fn scope_limits(scope: &str, file: &ScopeFile) -> anyhow::Result<Limits> {
    limits(
        scope,
        file.max_connections,
        file.max_messages_per_connection,
        file.message_rate.as_ref(),
        file.connection_rate.as_ref(),
        file.tls,
    )
}

fn no_suffix(scope: &str, file: &ScopeFile) -> anyhow::Result<()> {
    if file.mx_suffix.is_some() {
        bail!("{scope}: mx_suffix belongs under [provider.NAME]");
    }
    Ok(())
}

/// A name as the engine compares it: lowercase, no trailing dot.
fn host_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Reads and checks the shaping file at `path`.
pub fn load(path: &Path) -> anyhow::Result<ShapingRules> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the shaping file {}", path.display()))?;
    parse(&text).with_context(|| format!("shaping file {}", path.display()))
}

/// Parses and checks a shaping file's text.
pub fn parse(text: &str) -> anyhow::Result<ShapingRules> {
    let file: ShapingFile = toml::from_str(text)?;
    let mut rules = ShapingRules::default();
    if let Some(default) = &file.default {
        no_suffix("[default]", default)?;
        rules.default = scope_limits("[default]", default)?;
    }
    for (name, scope) in &file.provider {
        let label = format!("[provider.{name}]");
        let suffixes: Vec<String> = scope
            .mx_suffix
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        if suffixes.is_empty()
            || suffixes
                .iter()
                .any(|s| s.trim_start_matches('.').is_empty())
        {
            bail!("{label}: mx_suffix must list the provider's MX host suffixes (\".google.com\")");
        }
        rules.providers.push(Provider {
            name: name.clone(),
            mx_suffix: suffixes,
            limits: scope_limits(&label, scope)?,
        });
    }
    for (name, scope) in &file.site {
        let label = format!("[site.\"{name}\"]");
        no_suffix(&label, scope)?;
        // A site of MX hosts is named by its sorted host list.
        let key = if rules.providers.iter().any(|p| &p.name == name) {
            name.clone()
        } else {
            let mut hosts: Vec<String> = name.split(',').map(host_name).collect();
            hosts.sort();
            hosts.dedup();
            hosts.join(",")
        };
        rules.sites.insert(key, scope_limits(&label, scope)?);
    }
    for (name, scope) in &file.domain {
        let label = format!("[domain.\"{name}\"]");
        no_suffix(&label, scope)?;
        if scope.connection_rate.is_some() {
            bail!(
                "{label}: connection_rate is a site's limit; set it under [site.\"…\"] or [provider.NAME]"
            );
        }
        rules
            .domains
            .insert(host_name(name), scope_limits(&label, scope)?);
    }
    let mut names = HashMap::new();
    for (i, rule) in file.automation.iter().enumerate() {
        let parsed = automation_rule(rule, &rules)
            .with_context(|| format!("[[automation]] #{} ({:?})", i + 1, rule.name))?;
        if names.insert(parsed.name.clone(), i).is_some() {
            bail!(
                "[[automation]] #{}: the name {:?} is used twice",
                i + 1,
                rule.name
            );
        }
        rules.automation.push(parsed);
    }
    Ok(rules)
}

fn automation_rule(rule: &RuleFile, rules: &ShapingRules) -> anyhow::Result<Rule> {
    if rule.name.trim().is_empty() || rule.name.contains(['|', ' ']) {
        bail!("name: one word, no '|'");
    }
    if let Some(provider) = &rule.provider
        && !rules.providers.iter().any(|p| &p.name == provider)
    {
        bail!("provider {provider:?} is not a [provider.NAME] of this file");
    }
    if rule.enhanced_code.is_none() && rule.regex.is_none() {
        bail!(
            "give enhanced_code, regex or both: a rule matching every reply would act on any deferral"
        );
    }
    if let Some(code) = &rule.enhanced_code {
        let parts: Vec<&str> = code.split('.').collect();
        if !(matches!(parts.first(), Some(&"4" | &"5"))
            && parts.len() <= 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        {
            bail!(
                "enhanced_code {code:?}: expected a class 4 or 5 code or its start (4.7.28, 4.7)"
            );
        }
    }
    let pattern = rule
        .regex
        .as_deref()
        .map(Regex::new)
        .transpose()
        .context("regex")?;
    let trigger: Trigger = rule
        .trigger
        .parse()
        .context("trigger (\"immediate\" or \"COUNT per UNIT\")")?;
    if rule.duration.is_zero() || rule.duration > MAX_DURATION {
        bail!("duration: between 1s and 7d");
    }
    let lowered = limits(
        "limit",
        rule.max_connections,
        rule.max_messages_per_connection,
        rule.message_rate.as_ref(),
        rule.connection_rate.as_ref(),
        None,
    )?;
    let action = match rule.action.as_str() {
        "suspend" if lowered == Limits::default() => ActionKind::Suspend,
        "suspend" => bail!("action \"suspend\" takes no limits; use action = \"limit\""),
        "limit" if lowered == Limits::default() => {
            bail!("action \"limit\" needs the limits it sets (message_rate = \"1/s\", ...)")
        }
        "limit" => ActionKind::Limit(lowered),
        other => bail!("action {other:?}: expected \"suspend\" or \"limit\""),
    };
    Ok(Rule {
        name: rule.name.clone(),
        provider: rule.provider.clone(),
        site: rule.site.as_deref().map(|s| {
            let mut hosts: Vec<String> = s.split(',').map(host_name).collect();
            hosts.sort();
            hosts.dedup();
            hosts.join(",")
        }),
        enhanced_code: rule.enhanced_code.clone(),
        pattern,
        trigger,
        action,
        duration: rule.duration,
    })
}

/// What `hermod shaping check` prints of a valid file.
pub fn summary(rules: &ShapingRules) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "default: {}", rules.default.describe());
    for provider in &rules.providers {
        let _ = writeln!(
            out,
            "provider {}: mx_suffix {} {}",
            provider.name,
            provider.mx_suffix.join(" "),
            provider.limits.describe()
        );
    }
    let mut sites: Vec<_> = rules.sites.iter().collect();
    sites.sort_by_key(|(site, _)| *site);
    for (site, limits) in sites {
        let _ = writeln!(out, "site {site}: {}", limits.describe());
    }
    let mut domains: Vec<_> = rules.domains.iter().collect();
    domains.sort_by_key(|(domain, _)| *domain);
    for (domain, limits) in domains {
        let _ = writeln!(out, "domain {domain}: {}", limits.describe());
    }
    for rule in &rules.automation {
        let scope = match (&rule.provider, &rule.site) {
            (Some(p), _) => format!("provider {p}"),
            (None, Some(s)) => format!("site {s}"),
            (None, None) => "every site".into(),
        };
        let _ = writeln!(
            out,
            "rule {}: on {scope}, replies{}{} -> {} for {}s (trigger {})",
            rule.name,
            rule.enhanced_code
                .as_ref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default(),
            rule.pattern
                .as_ref()
                .map(|p| format!(" matching /{p}/"))
                .unwrap_or_default(),
            rule.action,
            rule.duration.as_secs(),
            rule.trigger
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_is_valid_and_rolls_google_up() {
        let rules = parse(include_str!("../../config/shaping.toml")).unwrap();
        let (site, _) = rules.site_of(["aspmx.l.google.com", "alt1.aspmx.l.google.com"]);
        assert_eq!(site, "google");
        assert!(
            rules
                .automation
                .iter()
                .any(|r| r.name == "google-unusual-rate")
        );
        assert!(summary(&rules).contains("rule google-unusual-rate"));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("[default]\nmax_conections = 3", "unknown field"),
            ("[default]\nmessage_rate = \"3/fortnight\"", "message_rate"),
            ("[provider.x]\nmax_connections = 3", "mx_suffix"),
            ("[domain.\"a.example\"]\nmax_connections = 0", "limit of 0"),
            (
                "[[automation]]\nname = \"r\"\ntrigger = \"immediate\"\naction = \"suspend\"\nduration = \"1h\"",
                "enhanced_code, regex or both",
            ),
            (
                "[[automation]]\nname = \"r\"\nregex = \"(\"\ntrigger = \"immediate\"\naction = \"suspend\"\nduration = \"1h\"",
                "regex",
            ),
            (
                "[[automation]]\nname = \"r\"\nenhanced_code = \"4.7.28\"\ntrigger = \"immediate\"\naction = \"limit\"\nduration = \"1h\"",
                "needs the limits",
            ),
            (
                "[[automation]]\nname = \"r\"\nprovider = \"nobody\"\nenhanced_code = \"4.7\"\ntrigger = \"immediate\"\naction = \"suspend\"\nduration = \"1h\"",
                "not a [provider.NAME]",
            ),
        ] {
            let error = format!("{:#}", parse(text).unwrap_err());
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn site_names_are_written_in_any_order_and_case() {
        let rules =
            parse("[site.\"MX2.example.net, mx1.example.net.\"]\nmax_connections = 2").unwrap();
        let (site, origin) = rules.site_of(["mx1.example.net", "mx2.example.net"]);
        assert_eq!(rules.site_limits(&site, &origin).max_connections, Some(2));
    }
}
