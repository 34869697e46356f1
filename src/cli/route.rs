//! `hermod route DOMAIN`: which next hop mail for a domain takes and why, as Postfix's
//! `postmap -q` and `postconf` answer it: the transport map entry, the relay host, or
//! the domain's MX records with their preferences and addresses.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use hermod_actors::outbound::routing::NextHop;

use crate::config::Config;

/// Prints the explanation; exits 1 when the configuration is invalid or mail for the
/// domain could not be delivered now.
pub fn run(config: Option<PathBuf>, domain: &str) -> ExitCode {
    let config = match super::load(config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hermod: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(explain(&config, domain)) {
        Ok(text) => {
            print!("{}", super::printable(&text));
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", super::printable(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// The routing decision for `domain` under `config`, as text; `Err` when mail for it
/// could not be delivered now (no address, or DNS says never), with the reason.
pub async fn explain(config: &Config, domain: &str) -> anyhow::Result<String> {
    let router = config.delivery.router()?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let hop = router.route(&domain);
    let mut out = String::new();
    let why = if router.transport.lookup(&domain).is_some() {
        "transport map (delivery.transport)"
    } else if router.relayhost.is_some() {
        "relay host (delivery.relayhost)"
    } else {
        "MX records of the domain (no transport entry, no relay host)"
    };
    writeln!(out, "{domain}: {why}")?;
    writeln!(out, "  next hop: {hop}")?;
    let resolver = config.delivery.resolver()?;
    let targets = match resolver.targets(&hop, config.delivery.mx_port).await {
        Ok(targets) => targets,
        Err(e) => {
            let verdict = if e.is_permanent() {
                "mail for it bounces"
            } else {
                "mail for it is deferred"
            };
            anyhow::bail!("{out}  no address: {} {e} ({verdict})", e.enhanced_status());
        }
    };
    for target in targets {
        match hop {
            NextHop::Mx { .. } => writeln!(
                out,
                "  preference {:<5} {:<30} {}",
                target.preference, target.host, target.addr
            )?,
            _ => writeln!(out, "  {:<30} {}", target.host, target.addr)?,
        }
    }
    Ok(out)
}
