//! Reading the configuration: the file (or the built-in defaults), then the
//! environment, then every check; all problems are reported at once, each named by its
//! key and value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::env::apply_env;
use super::{Config, ConfigIssue, sections};

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
                return Err(vec![ConfigIssue::new(
                    path.display().to_string(),
                    format!("cannot read config file: {e}"),
                )]);
            }
        },
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            match std::fs::read_to_string(DEFAULT_CONFIG_PATH) {
                Ok(text) => (text, Source::File(PathBuf::from(DEFAULT_CONFIG_PATH))),
                Err(e) => {
                    return Err(vec![ConfigIssue::new(
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
        Err(e) => return Err(vec![ConfigIssue::new("config file", e.to_string())]),
    };
    let mut issues = Vec::new();
    apply_env(&mut table, env, &mut issues);
    let config: Config = match Config::deserialize(toml::Value::Table(table.clone())) {
        Ok(config) => config,
        Err(e) => {
            // Say what is wrong with every key, not only the first serde stopped at.
            let each = key_by_key_issues(&table);
            if each.is_empty() {
                issues.push(ConfigIssue::new("config", e.to_string()));
            } else {
                issues.extend(each);
            }
            return Err(issues);
        }
    };
    issues.extend(config.check());
    if issues.is_empty() {
        Ok((config, source))
    } else {
        Err(issues)
    }
}

/// Deserializes each key of `table` alone over the defaults, so that every bad key is
/// named with its value (serde stops at the first). Unknown sections and keys are named
/// too.
fn key_by_key_issues(table: &toml::Table) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (section, keys) in table {
        let Some(keys) = keys.as_table() else {
            issues.push(ConfigIssue::new(
                section.clone(),
                "must be a table ([section])",
            ));
            continue;
        };
        let known: Vec<&str> = sections().iter().map(|s| s.name).collect();
        if !known.contains(&section.as_str()) {
            issues.push(ConfigIssue::new(
                section.clone(),
                format!("no such section (known: {})", known.join(", ")),
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
                issues.push(ConfigIssue::new(
                    format!("{section}.{key}"),
                    format!("{reason} (got {value})"),
                ));
            }
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            config.smtp.listen,
            vec![crate::config::smtp::ListenEntry::smtp(
                "127.0.0.1:2600".parse().unwrap()
            )]
        );
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

    #[test]
    fn the_shipped_example_configurations_parse() {
        use crate::config::Section;
        use hermod_actors::protocol::security::ListenerKind;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in [
            "config/hermod.toml",
            "config/submission.toml",
            "config/mx-gateway.toml",
        ] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            if file.ends_with("submission.toml") {
                let kinds: Vec<ListenerKind> =
                    config.smtp.listen.iter().map(|l| l.endpoint.kind).collect();
                assert_eq!(
                    kinds,
                    [
                        ListenerKind::Smtp,
                        ListenerKind::Submission,
                        ListenerKind::Submissions
                    ]
                );
                assert!(config.smtp.listen[1].endpoint.require_auth);
                assert!(config.auth.enabled && config.auth.require_auth_for_relay);
            }
            if file.ends_with("mx-gateway.toml") {
                assert!(
                    config.rate_limit.enabled() && config.greylist.enabled && config.dnsbl.enabled
                );
                assert_eq!(config.dnsbl.rules().zones[2].weight, -1.0);
                let mut issues = Vec::new();
                config.dnsbl.check(&mut issues);
                config.greylist.check(&mut issues);
                config.rate_limit.check(&mut issues);
                assert!(issues.is_empty(), "{issues:?}");
            }
        }
    }
}
