//! Configuration loading: the TOML file, then environment overrides, then validation that
//! names the key and the reason for every problem (`hermod serve --validate-only`).
//!
//! Every setting can be overridden as `HERMOD_<SECTION>_<KEY>` (for example
//! `HERMOD_DELIVERY_MX_PORT=2526`); the names operators already know from the seeds'
//! runbooks (`SMTP_PORT`, `RELAY_ALLOWED_IPS`, `RETRY_INTERVAL`, ...) work too.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use hermod_actors::config::Config;
use hermod_actors::outbound::routing::{TransportMap, parse_target};
use ipnet::IpNet;

/// One problem with the configuration: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// `section.key`, or the environment variable that set it.
    pub key: String,
    /// What is wrong and what would be right.
    pub reason: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

fn issue(key: impl Into<String>, reason: impl Into<String>) -> ConfigIssue {
    ConfigIssue {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Where the configuration came from, for the summary.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// Built-in defaults (no file).
    Defaults,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Defaults => f.write_str("built-in defaults"),
        }
    }
}

/// The default file read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/hermod.toml";

/// Reads the file (or the defaults), applies `env`, and validates. `env` is passed in so
/// tests need not touch the process environment.
pub fn load(
    path: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<(Config, Source), Vec<ConfigIssue>> {
    let (text, source) = match path {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (text, Source::File(path.to_path_buf())),
            Err(e) => {
                return Err(vec![issue(
                    path.display().to_string(),
                    format!("cannot read config file: {e}"),
                )]);
            }
        },
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            match std::fs::read_to_string(DEFAULT_CONFIG_PATH) {
                Ok(text) => (text, Source::File(PathBuf::from(DEFAULT_CONFIG_PATH))),
                Err(e) => {
                    return Err(vec![issue(
                        DEFAULT_CONFIG_PATH,
                        format!("cannot read config file: {e}"),
                    )]);
                }
            }
        }
        None => (String::new(), Source::Defaults),
    };
    let mut table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => return Err(vec![issue("config file", e.to_string())]),
    };
    let mut issues = Vec::new();
    apply_env(&mut table, env, &mut issues);
    let config: Config = match Config::deserialize(toml::Value::Table(table.clone())) {
        Ok(config) => config,
        Err(e) => {
            // Say what is wrong with every key, not only the first serde stopped at.
            let each = key_by_key_issues(&table);
            if each.is_empty() {
                issues.push(issue("config", e.to_string()));
            } else {
                issues.extend(each);
            }
            return Err(issues);
        }
    };
    issues.extend(validate(&config));
    if issues.is_empty() {
        Ok((config, source))
    } else {
        Err(issues)
    }
}

use serde::Deserialize;

/// The seeds' variable names and the key each one sets.
const NAMED_OVERRIDES: &[(&str, &str, &str)] = &[
    ("SMTP_HOSTNAME", "smtp", "hostname"),
    ("SMTP_MAX_CONNECTIONS", "smtp", "max_connections"),
    (
        "SMTP_MAX_CONNECTIONS_PER_IP",
        "smtp",
        "max_connections_per_ip",
    ),
    ("SMTP_MAX_MESSAGE_SIZE", "smtp", "max_message_size"),
    ("SMTP_MAX_RECIPIENTS", "smtp", "max_recipients"),
    ("SMTP_MAX_LINE_LENGTH", "smtp", "max_line_length"),
    ("SMTP_TIMEOUT_SECONDS", "smtp", "command_timeout"),
    ("SMTP_COMMAND_TIMEOUT_SECONDS", "smtp", "command_timeout"),
    ("SMTP_DATA_TIMEOUT_SECONDS", "smtp", "data_timeout"),
    ("SMTP_GREETING_TIMEOUT_SECONDS", "smtp", "greeting_timeout"),
    ("SMTP_WORKER_THREADS", "smtp", "workers"),
    ("SMTP_ENABLE_JSON_LOGGING", "log", "json"),
    ("SMTP_LOG_LEVEL", "log", "level"),
    ("RELAY_ALLOWED_DOMAINS", "relay", "domains"),
    ("RELAY_ALLOWED_IPS", "relay", "networks"),
    ("SMTP_DB_PATH", "queue", "data_dir"),
    ("MAX_RETRY_ATTEMPTS", "queue", "max_attempts"),
    ("RETRY_INTERVAL", "queue", "retry_interval"),
    ("SMTP_RELAYHOST", "delivery", "relayhost"),
    ("SMTP_TRANSPORT", "delivery", "transport"),
    ("SMTP_DNS_SERVERS", "delivery", "dns_servers"),
    ("SMTP_DELIVERY_PORT", "delivery", "mx_port"),
];

const SECTIONS: &[&str] = &["smtp", "relay", "queue", "delivery", "log"];

/// Variables that look like hermod's (`SMTP_*`, `HERMOD_*`) but set nothing: names from
/// the seeds' env files for features hermod does not have (`SMTP_ENABLE_TLS`,
/// `SMTP_RATE_LIMIT_PER_IP`, ...) or misspelt. hermod ignores them and says so, so that
/// nobody believes a feature is on because its variable is set. Kubernetes service
/// links and `HERMOD_CONFIG` are not named.
pub fn unrecognized_env(env: &BTreeMap<String, String>) -> Vec<String> {
    env.keys()
        .filter(|name| {
            if let Some(rest) = name.strip_prefix("SMTP_") {
                let named = NAMED_OVERRIDES.iter().any(|(n, _, _)| n == &name.as_str())
                    || ["SMTP_HOST", "SMTP_PORT"].contains(&name.as_str());
                return !named && !is_service_link(&rest.to_ascii_lowercase());
            }
            if let Some(rest) = name.strip_prefix("HERMOD_") {
                let rest = rest.to_ascii_lowercase();
                // A known section: its keys are checked (an unknown one is an error).
                let section = SECTIONS.iter().any(|s| rest.starts_with(&format!("{s}_")));
                return !section && rest != "config" && !is_service_link(&rest);
            }
            false
        })
        .cloned()
        .collect()
}

fn apply_env(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) {
    // Generic names first, so the seeds' names (more specific to operators) win.
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("HERMOD_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = SECTIONS.iter().find_map(|s| {
            rest.strip_prefix(&format!("{s}_"))
                .map(|k| (*s, k.to_string()))
        }) else {
            // Not ours (HERMOD_CONFIG, or variables a platform injects, such as
            // Kubernetes' HERMOD_PORT for a Service named hermod): ignore.
            continue;
        };
        if is_service_link(&key) {
            // Kubernetes injects HERMOD_SMTP_SERVICE_HOST, HERMOD_SMTP_PORT_25_TCP, ... for a
            // Service named hermod-smtp: not settings, and no reason to refuse to start.
            continue;
        }
        set(table, section, &key, value, name, issues);
    }
    for (name, section, key) in NAMED_OVERRIDES {
        if let Some(value) = env.get(*name) {
            set(table, section, key, value, name, issues);
        }
    }
    apply_listen_env(table, env, issues);
}

/// Whether `key` (after `HERMOD_<SECTION>_`) has the shape of a Kubernetes service link
/// variable (`SERVICE_HOST`, `SERVICE_PORT[_NAME]`, `PORT`, `PORT_<n>_<PROTO>[_...]`).
fn is_service_link(key: &str) -> bool {
    key == "port"
        || key.starts_with("service_host")
        || key.starts_with("service_port")
        || key
            .strip_prefix("port_")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// SMTP_HOST and SMTP_PORT together replace `smtp.listen` with one address.
fn apply_listen_env(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) {
    let (host, port) = (env.get("SMTP_HOST"), env.get("SMTP_PORT"));
    if host.is_none() && port.is_none() {
        return;
    }
    let current = table
        .get("smtp")
        .and_then(|s| s.get("listen"))
        .and_then(|l| l.as_array())
        .and_then(|a| a.first())
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| hermod_actors::config::SmtpConfig::default().listen[0]);
    let ip = match host {
        Some(h) => match h.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                return issues.push(issue(
                    "SMTP_HOST",
                    format!("expected an IP address to listen on, got {h:?}"),
                ));
            }
        },
        None => current.ip(),
    };
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                return issues.push(issue(
                    "SMTP_PORT",
                    format!("expected a port number 0-65535, got {p:?}"),
                ));
            }
        },
        None => current.port(),
    };
    let section = table
        .entry("smtp")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(section) = section.as_table_mut() {
        section.insert(
            "listen".into(),
            toml::Value::Array(vec![toml::Value::String(
                SocketAddr::new(ip, port).to_string(),
            )]),
        );
    }
}

/// Sets `section.key` from an environment string, typed like the default of that key.
fn set(
    table: &mut toml::Table,
    section: &str,
    key: &str,
    value: &str,
    var: &str,
    issues: &mut Vec<ConfigIssue>,
) {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let Some(default) = defaults.get(section).and_then(|s| s.get(key)) else {
        issues.push(issue(var, format!("no setting {section}.{key}")));
        return;
    };
    let parsed = match default {
        toml::Value::Integer(_) => match value.trim().parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => {
                return issues.push(issue(
                    var,
                    format!("expected a whole number for {section}.{key}, got {value:?}"),
                ));
            }
        },
        toml::Value::Boolean(_) => match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => {
                return issues.push(issue(
                    var,
                    format!("expected true or false for {section}.{key}, got {value:?}"),
                ));
            }
        },
        toml::Value::Array(_) => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        toml::Value::Table(_) => {
            let mut map = toml::Table::new();
            for entry in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match entry.split_once('=') {
                    Some((k, v)) => {
                        map.insert(
                            k.trim().to_string(),
                            toml::Value::String(v.trim().to_string()),
                        );
                    }
                    None => {
                        return issues.push(issue(
                            var,
                            format!("expected key=value pairs separated by commas, got {entry:?}"),
                        ));
                    }
                }
            }
            toml::Value::Table(map)
        }
        _ => toml::Value::String(value.to_string()),
    };
    let parsed = match (section, key, parsed) {
        // Bare IPs in a network list mean one host.
        ("relay", "networks", toml::Value::Array(items)) => toml::Value::Array(
            items
                .into_iter()
                .map(|v| match v.as_str().map(|s| (s, s.parse::<IpAddr>())) {
                    Some((_, Ok(ip))) => toml::Value::String(IpNet::from(ip).to_string()),
                    _ => v,
                })
                .collect(),
        ),
        (_, _, parsed) => parsed,
    };
    let entry = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(section_table) = entry.as_table_mut() {
        section_table.insert(key.to_string(), parsed);
    }
}

/// Checks what serde cannot: relations, ranges, syntax inside strings.
pub fn validate(config: &Config) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let smtp = &config.smtp;
    if smtp.listen.is_empty() {
        issues.push(issue(
            "smtp.listen",
            "at least one address to listen on is needed",
        ));
    }
    if smtp.hostname.trim().is_empty() || smtp.hostname.contains(char::is_whitespace) {
        issues.push(issue(
            "smtp.hostname",
            format!("must be a host name, got {:?}", smtp.hostname),
        ));
    }
    for (key, value) in [
        ("smtp.max_connections", smtp.max_connections),
        ("smtp.max_connections_per_ip", smtp.max_connections_per_ip),
        ("smtp.max_message_size", smtp.max_message_size),
        ("smtp.max_recipients", smtp.max_recipients),
        (
            "delivery.max_connections_per_destination",
            config.delivery.max_connections_per_destination,
        ),
        (
            "delivery.max_recipients_per_transaction",
            config.delivery.max_recipients_per_transaction,
        ),
    ] {
        if value == 0 {
            issues.push(issue(key, "must be at least 1"));
        }
    }
    for (key, value) in [
        ("smtp.max_errors", u64::from(smtp.max_errors)),
        (
            "delivery.max_messages_per_connection",
            u64::from(config.delivery.max_messages_per_connection),
        ),
    ] {
        if value == 0 {
            issues.push(issue(key, "must be at least 1"));
        }
    }
    if config.queue.large_message_threshold < 4096 {
        issues.push(issue(
            "queue.large_message_threshold",
            "must be at least 4096 (smaller bodies are cheaper kept in the spool database)",
        ));
    }
    if smtp.max_line_length < 512 {
        issues.push(issue(
            "smtp.max_line_length",
            "must be at least 512 (RFC 5321 §4.5.3.1.4 allows command lines of 512 octets)",
        ));
    }
    if smtp.max_connections_per_ip > smtp.max_connections {
        issues.push(issue(
            "smtp.max_connections_per_ip",
            "is larger than smtp.max_connections",
        ));
    }
    for (key, value) in [
        ("smtp.greeting_timeout", smtp.greeting_timeout),
        ("smtp.command_timeout", smtp.command_timeout),
        ("smtp.data_timeout", smtp.data_timeout),
        ("queue.retry_interval", config.queue.retry_interval),
        ("queue.max_retry_interval", config.queue.max_retry_interval),
        ("queue.scan_interval", config.queue.scan_interval),
        (
            "queue.state_flush_interval",
            config.queue.state_flush_interval,
        ),
        ("delivery.connect_timeout", config.delivery.connect_timeout),
        ("delivery.command_timeout", config.delivery.command_timeout),
        ("delivery.dns_timeout", config.delivery.dns_timeout),
        ("queue.max_lifetime", config.queue.max_lifetime),
    ] {
        if value.is_zero() {
            issues.push(issue(key, "must be longer than zero"));
        }
    }
    if config.queue.max_retry_interval < config.queue.retry_interval {
        issues.push(issue(
            "queue.max_retry_interval",
            "is shorter than queue.retry_interval",
        ));
    }
    if config.queue.data_dir.as_os_str().is_empty() {
        issues.push(issue("queue.data_dir", "must name a directory"));
    }
    if !config.delivery.relayhost.trim().is_empty()
        && let Err(e) = parse_target(config.delivery.relayhost.trim(), 25)
    {
        issues.push(issue("delivery.relayhost", e.to_string()));
    }
    for (pattern, target) in &config.delivery.transport {
        // The strict parser checks the pattern's syntax as well as the target's.
        if let Err(e) = TransportMap::parse(&format!("{pattern}={target}"), 25) {
            issues.push(issue(
                format!("delivery.transport.{pattern}"),
                e.to_string(),
            ));
        }
    }
    for domain in &config.relay.domains {
        if domain.trim().is_empty() || domain.contains(['@', ' ', ',']) {
            issues.push(issue(
                "relay.domains",
                format!("{domain:?} is not a domain"),
            ));
        }
    }
    if let Err(e) = config.queue.postmaster_mailbox() {
        issues.push(issue(
            "queue.postmaster",
            format!("{:?} is not a mail address: {e}", config.queue.postmaster),
        ));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        issues.push(issue("log.level", e.to_string()));
    } else if let Some(problem) = log_level_problem(&config.log.level) {
        issues.push(issue("log.level", problem));
    }
    issues
}

/// Deserializes each key of `table` alone over the defaults, so that every bad key is
/// named with its value (serde stops at the first). Unknown sections and keys are named
/// too.
fn key_by_key_issues(table: &toml::Table) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (section, keys) in table {
        let Some(keys) = keys.as_table() else {
            issues.push(issue(section.clone(), "must be a table ([section])"));
            continue;
        };
        if !SECTIONS.contains(&section.as_str()) {
            issues.push(issue(
                section.clone(),
                format!("no such section (known: {})", SECTIONS.join(", ")),
            ));
            continue;
        }
        for (key, value) in keys {
            let mut one = toml::Table::new();
            let mut inner = toml::Table::new();
            inner.insert(key.clone(), value.clone());
            one.insert(section.clone(), toml::Value::Table(inner));
            if let Err(e) = Config::deserialize(toml::Value::Table(one)) {
                let reason = e.message().trim().to_string();
                issues.push(issue(
                    format!("{section}.{key}"),
                    format!("{reason} (got {value})"),
                ));
            }
        }
    }
    issues
}

/// The log levels a filter directive may name.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Why a log filter that parses would still hide hermod's own lines: a bare word that is
/// neither a level nor one of hermod's modules (`verbose` is read as a module name, so
/// nothing of hermod's would be logged at all).
fn log_level_problem(filter: &str) -> Option<String> {
    let ours = |target: &str| {
        ["hermod", "hermod_actors", "smtp_blaster"]
            .iter()
            .any(|crate_name| {
                target == *crate_name || target.starts_with(&format!("{crate_name}::"))
            })
    };
    let mut enables_ours = false;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive.split_once('=') {
            Some((target, level)) => {
                if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                    return Some(format!(
                        "{level:?} in {directive:?} is not a level (use off, error, warn, info, debug or trace)"
                    ));
                }
                enables_ours |= ours(target) && !level.eq_ignore_ascii_case("off");
            }
            None if LEVELS.contains(&directive.to_ascii_lowercase().as_str()) => {
                enables_ours |= !directive.eq_ignore_ascii_case("off");
            }
            None if ours(directive) => enables_ours = true,
            None => {
                return Some(format!(
                    "{directive:?} is not a level (use off, error, warn, info, debug or trace, or target=level)"
                ));
            }
        }
    }
    (!enables_ours && !filter.trim().eq_ignore_ascii_case("off"))
        .then(|| format!("{filter:?} enables none of hermod's log lines"))
}

/// Every setting that differs from the built-in defaults, one `section.key = value` a
/// line, as `postconf -n` lists Postfix's.
fn non_defaults(config: &Config) -> String {
    let defaults = Config::default();
    let changed = crate::reload::changed_keys(&defaults, config);
    let Ok(values) = toml::Table::try_from(config) else {
        return String::new();
    };
    let mut out = String::from("differs from the built-in defaults:\n");
    if changed.is_empty() {
        out.push_str("  (nothing)\n");
    }
    for key in changed {
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        if let Some(value) = values.get(section).and_then(|s| s.get(name)) {
            out.push_str(&format!("  {key} = {value}\n"));
        }
    }
    out
}

/// A one-screen summary of the effective configuration.
pub fn summary(config: &Config, source: &Source) -> String {
    let listen: Vec<String> = config.smtp.listen.iter().map(|a| a.to_string()).collect();
    let networks: Vec<String> = config
        .relay
        .networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    let transport: Vec<String> = config
        .delivery
        .transport
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let d = hermod_actors::config::format_duration;
    format!(
        "configuration OK ({source})\n\
         smtp      listen={} hostname={} max_connections={} per_ip={} max_message_size={} max_recipients={}\n\
         \u{20}         timeouts greeting={} command={} data={}\n\
         relay     domains=[{}] networks=[{}]\n\
         queue     data_dir={} retry={} max_retry={} lifetime={} max_attempts={}\n\
         delivery  relayhost={} transport=[{}] dns=[{}] mx_port={} per_destination={} rate={}/s\n\
         log       json={} level={}\n",
        listen.join(","),
        config.smtp.hostname,
        config.smtp.max_connections,
        config.smtp.max_connections_per_ip,
        config.smtp.max_message_size,
        config.smtp.max_recipients,
        d(config.smtp.greeting_timeout),
        d(config.smtp.command_timeout),
        d(config.smtp.data_timeout),
        config.relay.domains.join(","),
        networks.join(","),
        config.queue.data_dir.display(),
        d(config.queue.retry_interval),
        d(config.queue.max_retry_interval),
        d(config.queue.max_lifetime),
        config.queue.max_attempts,
        if config.delivery.relayhost.is_empty() {
            "(MX)"
        } else {
            &config.delivery.relayhost
        },
        transport.join(","),
        config
            .delivery
            .dns_servers
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(","),
        config.delivery.mx_port,
        config.delivery.max_connections_per_destination,
        config.delivery.rate_per_destination,
        config.log.json,
        config.log.level,
    ) + &non_defaults(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_that_look_like_settings_but_are_not_are_named() {
        let env = env(&[
            ("SMTP_ENABLE_TLS", "true"),
            ("SMTP_RATE_LIMIT_PER_IP", "10"),
            ("SMTP_HOSTNAME", "mx.test"),
            ("SMTP_PORT", "25"),
            ("SMTP_SERVICE_HOST", "10.0.0.1"),
            ("HERMOD_CONFIG", "/etc/hermod.toml"),
            ("HERMOD_SMPT_HOSTNAME", "typo"),
            ("HERMOD_PORT", "tcp://10.0.0.1:25"),
            ("PATH", "/usr/bin"),
        ]);
        assert_eq!(
            unrecognized_env(&env),
            [
                "HERMOD_SMPT_HOSTNAME",
                "SMTP_ENABLE_TLS",
                "SMTP_RATE_LIMIT_PER_IP"
            ]
        );
    }

    #[test]
    fn a_log_level_that_hides_hermod_is_refused() {
        assert!(log_level_problem("info").is_none());
        assert!(log_level_problem("info,hermod_actors=debug").is_none());
        assert!(log_level_problem("warn,sled=off").is_none());
        assert!(log_level_problem("hermod_actors::outbound::delivery=debug").is_none());
        assert!(log_level_problem("off").is_none());
        assert!(
            log_level_problem("verbose")
                .unwrap()
                .contains("not a level")
        );
        assert!(
            log_level_problem("info,hermod=loud")
                .unwrap()
                .contains("not a level")
        );
        assert!(
            log_level_problem("sled=debug")
                .unwrap()
                .contains("enables none")
        );
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Config, Vec<ConfigIssue>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hermod.toml");
        std::fs::write(&path, text).unwrap();
        load(Some(&path), &env(vars)).map(|(c, _)| c)
    }

    #[test]
    fn seed_names_override_the_file() {
        let config = load_text(
            "[smtp]\nlisten = [\"127.0.0.1:2525\"]\n",
            &[
                ("SMTP_PORT", "2600"),
                ("RELAY_ALLOWED_IPS", "198.51.100.0/24, 192.0.2.7"),
                ("RETRY_INTERVAL", "60"),
                (
                    "SMTP_TRANSPORT",
                    "a.test=smtp:[127.0.0.1]:2526,.b.test=lmtp:[127.0.0.1]:24",
                ),
                ("SMTP_ENABLE_JSON_LOGGING", "true"),
                ("SMTP_DNS_SERVERS", "127.0.0.1:5353"),
            ],
        )
        .unwrap();
        assert_eq!(config.smtp.listen, vec!["127.0.0.1:2600".parse().unwrap()]);
        assert_eq!(config.relay.networks.len(), 2);
        assert_eq!(config.queue.retry_interval.as_secs(), 60);
        assert_eq!(config.delivery.transport.len(), 2);
        assert!(config.log.json);
        assert_eq!(config.delivery.dns_servers.len(), 1);
    }

    #[test]
    fn generic_names_reach_every_key() {
        let config = load_text(
            "",
            &[
                ("HERMOD_DELIVERY_MX_PORT", "2526"),
                ("HERMOD_QUEUE_MAX_LIFETIME", "2h"),
            ],
        )
        .unwrap();
        assert_eq!(config.delivery.mx_port, 2526);
        assert_eq!(config.queue.max_lifetime.as_secs(), 7200);
    }

    #[test]
    fn every_problem_is_named_with_its_key() {
        let issues = load_text(
            "[smtp]\nmax_connections = 0\n[delivery]\nrelayhost = \"smtp:\"\n",
            &[("SMTP_PORT", "http"), ("SMTP_MAX_RECIPIENTS", "many")],
        )
        .unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert!(keys.contains(&"SMTP_PORT"), "{issues:?}");
        assert!(keys.contains(&"SMTP_MAX_RECIPIENTS"), "{issues:?}");
    }

    #[test]
    fn bad_transport_pattern_is_named() {
        let issues = load_text(
            "[delivery.transport]\n\"exa mple.com\" = \"smtp:[127.0.0.1]:25\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            issues[0].key, "delivery.transport.exa mple.com",
            "{issues:?}"
        );
    }

    #[test]
    fn platform_variables_are_ignored_but_typos_in_ours_are_not() {
        assert!(
            load_text(
                "",
                &[
                    ("HERMOD_PORT", "tcp://192.0.2.10:25"),
                    ("HERMOD_SERVICE_HOST", "192.0.2.10")
                ]
            )
            .is_ok()
        );
        let service_links = [
            ("HERMOD_SMTP_SERVICE_HOST", "192.0.2.10"),
            ("HERMOD_SMTP_SERVICE_PORT", "25"),
            ("HERMOD_SMTP_PORT", "tcp://192.0.2.10:25"),
            ("HERMOD_SMTP_PORT_25_TCP_ADDR", "192.0.2.10"),
        ];
        assert!(load_text("", &service_links).is_ok());
        let issues = load_text("", &[("HERMOD_SMTP_MAX_CONECTIONS", "5")]).unwrap_err();
        assert_eq!(issues[0].key, "HERMOD_SMTP_MAX_CONECTIONS", "{issues:?}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let issues = load_text("[smtp]\nmax_conections = 5\n", &[]).unwrap_err();
        assert!(issues[0].reason.contains("max_conections"), "{issues:?}");
    }

    #[test]
    fn relations_are_checked() {
        let issues = load_text("[smtp]\nmax_connections = 10\nmax_connections_per_ip = 20\n[delivery]\nrelayhost = \"smtp:[::1\"\n", &[]).unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["smtp.max_connections_per_ip", "delivery.relayhost"],
            "{issues:?}"
        );
    }
}
