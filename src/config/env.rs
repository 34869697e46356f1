//! Environment overrides. Every setting can be set as `HERMOD_<SECTION>_<KEY>` (for
//! example `HERMOD_DELIVERY_MX_PORT=2526`); the names operators already know from the
//! seeds' runbooks (`SMTP_PORT`, `RELAY_ALLOWED_IPS`, `RETRY_INTERVAL`, ...) are declared
//! by each section beside the key they set ([`super::Section::KEYS`]), and win over
//! the generic names. A variable that looks like hermod's but sets nothing is named
//! ([`unrecognized_env`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::{Config, ConfigIssue, SmtpConfig, sections};

/// `SMTP_HOST` and `SMTP_PORT`: together they replace `smtp.listen` with one address.
const LISTEN_VARIABLES: [&str; 2] = ["SMTP_HOST", "SMTP_PORT"];

fn seed_name(name: &str) -> bool {
    LISTEN_VARIABLES.contains(&name)
        || sections()
            .iter()
            .any(|s| s.seed_env().any(|(n, _)| n == name))
}

fn section_names() -> Vec<&'static str> {
    sections().iter().map(|s| s.name).collect()
}

/// Variables that look like hermod's (`SMTP_*`, `HERMOD_*`) but set nothing: names from
/// the seeds' env files for features hermod has under other settings (`SMTP_WEBHOOK_URL`,
/// `SMTP_WEBHOOK_ENABLED`: `[events]`) or misspelt. hermod ignores them and says so, so that
/// nobody believes a feature is on because its variable is set. Kubernetes service
/// links and `HERMOD_CONFIG` are not named.
pub fn unrecognized_env(env: &BTreeMap<String, String>) -> Vec<String> {
    env.keys()
        .filter(|name| {
            if let Some(rest) = name.strip_prefix("SMTP_") {
                return !seed_name(name) && !is_service_link(&rest.to_ascii_lowercase());
            }
            if let Some(rest) = name.strip_prefix("HERMOD_") {
                let rest = rest.to_ascii_lowercase();
                // A known section: its keys are checked (an unknown one is an error).
                let section = section_names()
                    .iter()
                    .any(|s| rest.starts_with(&format!("{s}_")));
                return !section && rest != "config" && !is_service_link(&rest);
            }
            false
        })
        .cloned()
        .collect()
}

/// Applies `env` to the parsed file, naming every variable that cannot be applied.
pub(super) fn apply_env(
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
        let Some((section, key)) = section_names().into_iter().find_map(|s| {
            rest.strip_prefix(&format!("{s}_"))
                .map(|k| (s, k.to_string()))
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
    for section in sections() {
        for (name, key) in section.seed_env() {
            if let Some(value) = env.get(name) {
                set(table, section.name, key, value, name, issues);
            }
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
        .unwrap_or_else(|| SmtpConfig::default().listen[0].address);
    let ip = match host {
        Some(h) => match h.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                return issues.push(ConfigIssue::new(
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
                return issues.push(ConfigIssue::new(
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
        issues.push(ConfigIssue::new(var, format!("no setting {section}.{key}")));
        return;
    };
    let parsed = match parse_like(default, value, &format!("{section}.{key}")) {
        Ok(parsed) => parsed,
        Err(reason) => return issues.push(ConfigIssue::new(var, reason)),
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

/// Why an environment variable's value does not fit its setting; the text names the
/// setting and the value, as the refused start and `--validate-only` print it.
#[derive(Debug, thiserror::Error)]
enum EnvValueError {
    /// A number setting given something else.
    #[error("expected a whole number for {setting}, got {value:?}")]
    Integer {
        /// `section.key`.
        setting: String,
        /// The variable's value.
        value: String,
    },
    /// A yes/no setting given something else.
    #[error("expected true or false for {setting}, got {value:?}")]
    Boolean {
        /// `section.key`.
        setting: String,
        /// The variable's value.
        value: String,
    },
    /// An entry of a table setting without `=`.
    #[error("expected key=value pairs separated by commas, got {0:?}")]
    Pair(String),
}

/// `value` read as the same kind of TOML value as `default` (the setting's default):
/// a whole number, a boolean, a comma-separated list, `key=value` pairs, or a string.
fn parse_like(
    default: &toml::Value,
    value: &str,
    setting: &str,
) -> Result<toml::Value, EnvValueError> {
    Ok(match default {
        toml::Value::Integer(_) => match value.trim().parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => {
                return Err(EnvValueError::Integer {
                    setting: setting.to_string(),
                    value: value.to_string(),
                });
            }
        },
        toml::Value::Boolean(_) => match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => {
                return Err(EnvValueError::Boolean {
                    setting: setting.to_string(),
                    value: value.to_string(),
                });
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
                    None => return Err(EnvValueError::Pair(entry.to_string())),
                }
            }
            toml::Value::Table(map)
        }
        _ => toml::Value::String(value.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_that_look_like_settings_but_are_not_are_named() {
        let env: BTreeMap<String, String> = [
            ("SMTP_WEBHOOK_ENABLED", "true"),
            ("SMTP_ENABLE_TRACING", "true"),
            ("SMTP_WEBHOOK_URL", "http://hook.test/"),
            ("SMTP_HOSTNAME", "mx.test"),
            ("SMTP_PORT", "25"),
            ("SMTP_SERVICE_HOST", "10.0.0.1"),
            ("HERMOD_CONFIG", "/etc/hermod.toml"),
            ("HERMOD_SMPT_HOSTNAME", "typo"),
            ("HERMOD_PORT", "tcp://10.0.0.1:25"),
            ("PATH", "/usr/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            unrecognized_env(&env),
            [
                "HERMOD_SMPT_HOSTNAME",
                "SMTP_WEBHOOK_ENABLED",
                "SMTP_WEBHOOK_URL"
            ]
        );
    }
}
