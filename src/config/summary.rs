//! What `--validate-only` prints: the effective configuration on one screen, and every
//! setting that differs from the built-in defaults (as `postconf -n` lists Postfix's).

use super::load::Source;
use super::{Config, duration};

/// Every setting that differs from the built-in defaults, one `section.key = value` a
/// line, as `postconf -n` lists Postfix's.
pub fn non_defaults(config: &Config) -> String {
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
    let d = duration::format;
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
