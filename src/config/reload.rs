//! What a configuration reload (SIGHUP) may change while hermod runs, and what waits for
//! a restart. The wiring ([`crate::wiring`]) reads the file again, compares it with the
//! running configuration key by key, applies the live keys and names the others in a
//! warning, so an operator is never left guessing which change took effect.

use crate::config::{Config, sections};
use serde::Deserialize as _;

/// Keys applied without a restart, as `section.key`: each section declares its own
/// ([`crate::config::Section::KEYS`]). Today: relay policy, transport map and relay
/// host, session limits and timeouts (for sessions opened after the reload), connection
/// limits, the Queue's retry, lifetime, bounce and postmaster settings, and the peers
/// logged at DEBUG.
pub fn live_keys() -> Vec<String> {
    sections()
        .iter()
        .flat_map(|s| s.live().map(move |key| format!("{}.{key}", s.name)))
        .collect()
}

/// The `section.key` names whose values differ between `old` and `new`, sorted.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(old), Ok(new)) = (toml::Table::try_from(old), toml::Table::try_from(new)) else {
        return Vec::new();
    };
    let mut changed = Vec::new();
    for (section, old_keys) in old {
        let (Some(old_keys), Some(new_keys)) = (
            old_keys.as_table(),
            new.get(section.as_str()).and_then(|v| v.as_table()),
        ) else {
            continue;
        };
        for (key, value) in old_keys {
            if new_keys.get(key) != Some(value) {
                changed.push(format!("{section}.{key}"));
            }
        }
    }
    changed
}

/// Whether a changed key takes effect only after a restart.
pub fn needs_restart(key: &str) -> bool {
    !live_keys().iter().any(|live| live == key)
}

/// `new` with the running value kept for each key in `restart`: what really runs after
/// a reload, so that the next reload compares against it.
pub fn keep_running_values(running: &Config, new: Config, restart: &[String]) -> Config {
    let mut merged = new;
    if restart.is_empty() {
        return merged;
    }
    let (Ok(running), Ok(mut table)) = (
        toml::Table::try_from(running),
        toml::Table::try_from(&merged),
    ) else {
        return merged;
    };
    for key in restart {
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        if let (Some(value), Some(target)) = (
            running.get(section).and_then(|s| s.get(name)),
            table.get_mut(section).and_then(|s| s.as_table_mut()),
        ) {
            target.insert(name.to_string(), value.clone());
        }
    }
    if let Ok(config) = Config::deserialize(toml::Value::Table(table)) {
        merged = config;
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_change_names_no_key() {
        assert!(changed_keys(&Config::default(), &Config::default()).is_empty());
    }

    #[test]
    fn changed_keys_are_named_by_section_and_key() {
        let old = Config::default();
        let mut new = Config::default();
        new.relay.domains.push("example.org".into());
        new.smtp.workers = 3;
        new.delivery
            .transport
            .insert("example.org".into(), "[127.0.0.1]:2526".into());
        assert_eq!(
            changed_keys(&old, &new),
            ["delivery.transport", "relay.domains", "smtp.workers"]
        );
    }

    #[test]
    fn listen_address_and_spool_wait_for_a_restart() {
        assert!(needs_restart("smtp.listen"));
        assert!(needs_restart("queue.data_dir"));
        assert!(needs_restart("smtp.workers"));
        assert!(!needs_restart("relay.domains"));
        assert!(!needs_restart("delivery.transport"));
    }

    #[test]
    fn restart_keys_keep_their_running_values() {
        let running = Config::default();
        let mut new = Config::default();
        new.smtp.workers = 3;
        new.relay.domains.push("example.org".into());
        let kept = keep_running_values(&running, new, &["smtp.workers".into()]);
        assert_eq!(kept.smtp.workers, running.smtp.workers);
        assert_eq!(kept.relay.domains, ["example.org"]);
    }

    #[test]
    fn every_live_key_is_a_real_key() {
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for key in live_keys() {
            let (section, name) = key.split_once('.').unwrap();
            assert!(defaults[section].get(name).is_some(), "{key} is not a key");
        }
    }
}
