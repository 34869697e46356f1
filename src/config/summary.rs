//! What `--validate-only` prints: the effective configuration on one screen, and every
//! setting that differs from the built-in defaults (as `postconf -n` lists Postfix's).

use super::load::Source;
use super::{Config, duration};

/// Every setting that differs from the built-in defaults, one `section.key = value` a
/// line, as `postconf -n` lists Postfix's.
pub fn non_defaults(config: &Config) -> String {
    let defaults = Config::default();
    let changed = crate::config::reload::changed_keys(&defaults, config);
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
            if is_secret(name) {
                out.push_str(&format!("  {key} = \"(set, not shown)\"\n"));
            } else {
                out.push_str(&format!("  {key} = {value}\n"));
            }
        }
    }
    out
}

/// Every setting as `(section.key, value)`, the value as TOML writes it, secrets
/// replaced (for `hermod config get`, as `postconf` prints Postfix's).
pub fn settings(config: &Config) -> Vec<(String, String)> {
    let Ok(values) = toml::Table::try_from(config) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (section, table) in &values {
        let Some(table) = table.as_table() else {
            continue;
        };
        for (name, value) in table {
            let shown = match is_secret(name) && !is_empty(value) {
                true => "\"(set, not shown)\"".to_string(),
                false => value.to_string(),
            };
            out.push((format!("{section}.{name}"), shown));
        }
    }
    out
}

fn is_empty(value: &toml::Value) -> bool {
    match value {
        toml::Value::String(s) => s.is_empty(),
        toml::Value::Table(t) => t.is_empty(),
        toml::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Keys whose values are secrets (the admin token, smarthost passwords, URLs that may
/// carry a password or a token): never printed.
fn is_secret(name: &str) -> bool {
    matches!(name, "token" | "relayhost_password" | "auth" | "url") || name.ends_with("_url")
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
    ) + &tls_lines(config)
        + &auth_line(config)
        + &policy_line(config)
        + &non_defaults(config)
}

/// What the certificate says: names, whether they cover `smtp.hostname`, and when it
/// expires.
fn tls_lines(config: &Config) -> String {
    let Some(files) = config.tls.files().filter(|_| config.tls.enabled) else {
        return format!(
            "tls       off ({})\n",
            if config.tls.enabled {
                "no tls.cert and tls.key: STARTTLS is not offered"
            } else {
                "tls.enabled = false"
            }
        );
    };
    let summary = match hermod_actors::inbound::tls::inspect(&files) {
        Ok(summary) => summary,
        Err(reason) => return format!("tls       certificate problem: {reason}\n"),
    };
    let left = summary.seconds_left(std::time::SystemTime::now());
    let expiry = time::OffsetDateTime::from_unix_timestamp(summary.not_after)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| summary.not_after.to_string());
    let expires = if left < 0 {
        format!("EXPIRED on {expiry} ({} days ago)", -left / 86_400)
    } else {
        format!("expires {expiry} (in {} days)", left / 86_400)
    };
    let covers = if summary.covers(&config.smtp.hostname) {
        format!("covers smtp.hostname {}", config.smtp.hostname)
    } else {
        format!(
            "WARNING: does not cover smtp.hostname {}: clients that verify names will refuse it",
            config.smtp.hostname
        )
    };
    format!(
        "tls       cert={} names=[{}] chain={} {expires}; {covers}; require={}\n",
        files.cert.display(),
        summary.names.join(","),
        summary.chain_length,
        config.tls.require,
    )
}

/// Which policies are on, and where their state is.
fn policy_line(config: &Config) -> String {
    let rate = &config.rate_limit;
    let rate = if rate.enabled() {
        format!(
            "rate_limit=[conn/ip={} msg/ip={} msg/user={} rcpt/user={} msg/domain={} per {}]",
            rate.connections_per_ip,
            rate.messages_per_ip,
            rate.messages_per_user,
            rate.recipients_per_user,
            rate.messages_per_sender_domain,
            duration::format(rate.window)
        )
    } else {
        "rate_limit=off".into()
    };
    let grey = if config.greylist.enabled {
        format!(
            "greylist=[delay {}]",
            duration::format(config.greylist.delay)
        )
    } else {
        "greylist=off".into()
    };
    let dnsbl = if config.dnsbl.enabled {
        let zones: Vec<String> = config
            .dnsbl
            .zones
            .iter()
            .map(|z| format!("{}:{}", z.zone, z.weight))
            .collect();
        format!(
            "dnsbl=[{} threshold {} at {}]",
            zones.join(","),
            config.dnsbl.threshold,
            config.dnsbl.check_at
        )
    } else {
        "dnsbl=off".into()
    };
    let auth = &config.mail_auth;
    let verify = if auth.verify {
        format!(
            "mail_auth=[spf_fail {:?} dmarc_reject {:?} quarantine {:?} temp_error {:?}]",
            auth.spf_fail, auth.dmarc_reject, auth.dmarc_quarantine, auth.temp_error
        )
        .to_lowercase()
    } else {
        "mail_auth=off".into()
    };
    let state = if config.redis.url.is_empty() {
        "state=local"
    } else {
        "state=redis"
    };
    format!("policies  {rate} {grey} {dnsbl} {verify} {state}\n")
}

fn auth_line(config: &Config) -> String {
    let auth = &config.auth;
    format!(
        "auth      enabled={} require_auth_for_relay={} lockout={} failures/{} argon2id m={}KiB t={} p={}\n",
        auth.enabled,
        auth.require_auth_for_relay,
        auth.max_failures,
        duration::format(auth.failure_window),
        auth.argon2_memory_kib,
        auth.argon2_iterations,
        auth.argon2_parallelism,
    )
}
