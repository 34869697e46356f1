//! The transport map: per-domain next hops (exact domain, `.parent` for sub-domains,
//! `*` for the rest), like Postfix's `transport_maps`.

use std::collections::HashMap;

use super::target::{RouteError, parse_name, parse_target};
use super::{NextHop, normalize_domain};

/// Per-domain next hops, like Postfix's `transport_maps`.
///
/// Why three tables and not one list of patterns: lookup is on every recipient, so it is
/// one hash probe per label of the domain, and the precedence (exact, then the nearest
/// parent wildcard, then `*`) falls out of the probe order rather than of entry order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportMap {
    /// `example.com`: the domain itself only.
    exact: HashMap<String, NextHop>,
    /// `.example.com`, keyed without the dot: any sub-domain, not the domain itself.
    subdomains: HashMap<String, NextHop>,
    /// `*`: every domain no other entry matches.
    any: Option<NextHop>,
}

impl TransportMap {
    /// An empty map, which routes nothing (the relay host or MX then decides).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one entry. `pattern` is `example.com` (that domain),
    /// `.example.com` (its sub-domains) or `*` (everything); case and a trailing dot are
    /// ignored. Why infallible: programmatic callers (tests, a future config reload)
    /// already hold valid patterns; [`TransportMap::parse`] validates operator text.
    pub fn insert(&mut self, pattern: &str, target: NextHop) {
        let pattern = normalize_domain(pattern);
        if pattern == "*" {
            self.any = Some(target);
        } else if let Some(parent) = pattern.strip_prefix('.') {
            self.subdomains.insert(parent.to_owned(), target);
        } else {
            self.exact.insert(pattern, target);
        }
    }

    /// Parses the configuration form `a.com=smtp:[192.0.2.10]:2525, .b.com=lmtp:[127.0.0.1]:24`:
    /// comma-separated `pattern=target` entries, whitespace around each part ignored,
    /// empty entries skipped. Targets use [`parse_target`] with `default_port`.
    ///
    /// Why a duplicate pattern is an error: with a later-wins rule the earlier line would be
    /// silently dead, which is the kind of mistake that misroutes mail.
    pub fn parse(spec: &str, default_port: u16) -> Result<Self, RouteError> {
        let mut map = Self::new();
        let mut seen = std::collections::HashSet::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (pattern, target) = entry.split_once('=').ok_or_else(|| RouteError::Entry {
                got: entry.to_owned(),
            })?;
            let pattern = parse_pattern(pattern.trim())?;
            let target = parse_target(target, default_port)?;
            if !seen.insert(pattern.clone()) {
                return Err(RouteError::Duplicate { pattern });
            }
            map.insert(&pattern, target);
        }
        Ok(map)
    }

    /// The next hop for `domain`: the exact entry, else the nearest `.parent` entry
    /// (`a.b.example.com` tries `.b.example.com`, `.example.com`, `.com`), else `*`.
    /// Case-insensitive; a trailing dot is ignored. An address literal (`[192.0.2.1]`)
    /// is no domain and matches only `*`.
    pub fn lookup(&self, domain: &str) -> Option<&NextHop> {
        let domain = normalize_domain(domain);
        if let Some(hop) = self.exact.get(&domain) {
            return Some(hop);
        }
        if !domain.starts_with('[') {
            let mut rest = domain.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if let Some(hop) = self.subdomains.get(parent) {
                    return Some(hop);
                }
                rest = parent;
            }
        }
        self.any.as_ref()
    }

    /// Whether the map has no entry, so a caller can skip it (and say so in logs).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of entries, counting `*` once; for startup logs.
    pub fn len(&self) -> usize {
        self.exact.len() + self.subdomains.len() + usize::from(self.any.is_some())
    }
}

/// Validates a transport-map key and returns it normalised (lowercase, no trailing dot).
fn parse_pattern(s: &str) -> Result<String, RouteError> {
    let bad = || RouteError::Pattern { got: s.to_owned() };
    if s == "*" {
        return Ok("*".to_owned());
    }
    match s.strip_prefix('.') {
        Some(parent) => Ok(format!(".{}", parse_name(parent).map_err(|_| bad())?)),
        None => parse_name(s).map_err(|_| bad()),
    }
}
