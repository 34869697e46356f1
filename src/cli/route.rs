//! `hermod route DOMAIN`: which next hop mail for a domain takes and why, as Postfix's
//! `postmap -q` and `postconf` answer it: the transport map entry, the relay host, or
//! the domain's MX records with their preferences and addresses, what DANE says of them
//! (their TLSA records, under DNSSEC) and the MTA-STS policy the domain publishes (which
//! of its MX hosts it lists).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use hermod_actors::outbound::dane::{DomainDane, HostDane};
use hermod_actors::outbound::mta_sts::policy::{Mode, Policy};
use hermod_actors::outbound::mx::Target;
use hermod_actors::outbound::routing::NextHop;
use hermod_actors::outbound::shaping::SiteOrigin;

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
    let (dane, policy) = match &hop {
        NextHop::Mx { domain } => {
            let dane = dane(config, domain, &mut out).await?;
            let policy = mta_sts(config, &resolver, domain, &mut out).await?;
            if policy.is_some() && dane.as_ref().is_some_and(DomainDane::protects) {
                writeln!(
                    out,
                    "    for the MX hosts without TLSA records only (DANE takes precedence)"
                )?;
            }
            (dane, policy)
        }
        _ => (None, None),
    };
    shaping(config, hop.name(), &targets, &mut out)?;
    for target in targets {
        let host_dane = match &dane {
            Some(DomainDane::Secure(hosts)) => Some(hosts.get(&target.host.to_ascii_lowercase())),
            _ => None,
        };
        let mut listed = match (&policy, host_dane) {
            (_, Some(Some(HostDane::Tlsa(_)))) => "",
            (Some(policy), _) if policy.admits(&target.host) => "  (listed in the MTA-STS policy)",
            (Some(_), _) => "  (NOT listed in the MTA-STS policy)",
            (None, _) => "",
        }
        .to_string();
        if let Some(verdict) = host_dane {
            listed.push_str(&describe_host(verdict));
        }
        match hop {
            NextHop::Mx { .. } => writeln!(
                out,
                "  preference {:<5} {:<30} {}{listed}",
                target.preference, target.host, target.addr
            )?,
            _ => writeln!(out, "  {:<30} {}", target.host, target.addr)?,
        }
    }
    Ok(out)
}

/// The site `domain` rolls up into (`delivery.shaping_file`), the limits it shares and
/// where each came from, described in `out`.
fn shaping(
    config: &Config,
    domain: &str,
    targets: &[Target],
    out: &mut String,
) -> anyhow::Result<()> {
    let Some(rules) = config.delivery.shaping_rules()? else {
        writeln!(
            out,
            "  shaping: per next hop only (no delivery.shaping_file)"
        )?;
        return Ok(());
    };
    let (site, origin) = rules.site_of(targets.iter().map(|t| t.host.as_str()));
    let why = match &origin {
        SiteOrigin::Provider(name) => {
            format!("provider {name}: every MX host ends in one of its mx_suffix")
        }
        SiteOrigin::MxHosts => "its MX host names (no provider serves them all)".to_string(),
    };
    writeln!(out, "  site: {site} ({why})")?;
    let own = if rules.sites.contains_key(&site) {
        "[site] entry over "
    } else {
        ""
    };
    let layers = match origin {
        SiteOrigin::Provider(_) => "[provider] over [default]",
        SiteOrigin::MxHosts => "[default]",
    };
    writeln!(
        out,
        "    shared by every destination of the site: {} ({own}{layers}; unset ones from [delivery])",
        rules.site_limits(&site, &origin).describe()
    )?;
    match rules.domain_limits(domain) {
        Some(limits) => writeln!(
            out,
            "    this domain's own next hop: {} ([domain] entry)",
            limits.describe()
        )?,
        None => writeln!(
            out,
            "    this domain's own next hop: the [delivery] limits (no [domain] entry)"
        )?,
    }
    let rules_here: Vec<&str> = rules
        .automation
        .iter()
        .filter(|r| {
            r.site.as_deref().is_none_or(|s| s == site)
                && r.provider.as_deref().is_none_or(|p| p == site)
        })
        .map(|r| r.name.as_str())
        .collect();
    if !rules_here.is_empty() {
        writeln!(out, "    automation rules: {}", rules_here.join(", "))?;
    }
    Ok(())
}

/// What DANE says of `domain` now (`delivery.dane`), described in `out`.
async fn dane(
    config: &Config,
    domain: &str,
    out: &mut String,
) -> anyhow::Result<Option<DomainDane>> {
    let Some(dane) = config.delivery.dane()? else {
        writeln!(out, "  DANE: not honoured (delivery.dane is off)")?;
        return Ok(None);
    };
    let found = dane.for_domain(domain, config.delivery.mx_port).await;
    match found.as_ref() {
        DomainDane::Insecure => writeln!(
            out,
            "  DANE: does not apply (the MX answer is not DNSSEC-signed)"
        )?,
        DomainDane::Bogus(reason) => {
            writeln!(out, "  DANE: {reason}; mail for it is deferred 4.7.5")?
        }
        DomainDane::Secure(_) if found.protects() => writeln!(
            out,
            "  DANE: the MX answer is DNSSEC-secure and TLSA records govern the domain"
        )?,
        DomainDane::Secure(_) => writeln!(
            out,
            "  DANE: the MX answer is DNSSEC-secure, but no MX host has TLSA records"
        )?,
    }
    Ok(Some(found.as_ref().clone()))
}

/// What DANE says of one MX host, for its line.
fn describe_host(found: Option<&HostDane>) -> String {
    match found {
        None => "  (DANE: not in the validated MX answer; not used)".into(),
        Some(HostDane::Unprotected) => "  (DANE: no TLSA records)".into(),
        Some(HostDane::Unusable) => {
            "  (DANE: only unusable TLSA records; TLS required, any certificate)".into()
        }
        Some(HostDane::Failed(reason)) => format!("  (DANE: {reason}; not used)"),
        Some(HostDane::Tlsa(tlsa)) => {
            let records: Vec<String> = tlsa.records.iter().map(|r| r.presentation(8)).collect();
            format!("  (DANE: TLSA {})", records.join(", "))
        }
    }
}

/// The MTA-STS policy `domain` publishes now, described in `out` (`delivery.mta_sts`):
/// looked up and fetched afresh, since the running hermod's kept policies are in its
/// spool, which it holds open.
async fn mta_sts(
    config: &Config,
    resolver: &hermod_actors::outbound::mx::MxResolver,
    domain: &str,
    out: &mut String,
) -> anyhow::Result<Option<Policy>> {
    if !config.delivery.mta_sts {
        writeln!(out, "  MTA-STS: not honoured (delivery.mta_sts is off)")?;
        return Ok(None);
    }
    let security = config.delivery.security()?;
    let sts = config.delivery.mta_sts_policies(resolver, &security, None);
    let Some(applied) = sts.policy_for(domain).await else {
        writeln!(
            out,
            "  MTA-STS: no policy (no _mta-sts.{domain} record, mode none, or the policy could not be fetched: see the log)"
        )?;
        return Ok(None);
    };
    let policy = applied.kept.policy;
    writeln!(
        out,
        "  MTA-STS: {} (id {}, fetched now from https://mta-sts.{domain}/.well-known/mta-sts.txt; max_age {}s): mx {}",
        policy.mode.name(),
        applied.kept.id,
        policy.max_age,
        policy.mx.join(", ")
    )?;
    if policy.mode == Mode::Enforce {
        writeln!(
            out,
            "    only listed MX hosts, over TLS verified for their names; else deferred 4.7.5"
        )?;
    }
    Ok(Some(policy))
}
