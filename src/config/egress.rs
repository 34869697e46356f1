//! `[egress]`: the local addresses mail leaves from. A source is an address to bind to
//! and the EHLO name that goes with it (the name its PTR record gives, for the
//! receivers' checks); a pool is a weighted set of sources; a message leaves from the
//! pool of the user it was submitted as (AUTH, or the injection tenant), else from the
//! default pool, else from the address the system chooses. Limits of the shaping file
//! apply per (source, site): a pool of four sources may open four times the connections
//! of one.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use hermod_actors::outbound::egress::{Egress, Pool, Source};
use serde::{Deserialize, Serialize};

use super::section::{Key, section};
use super::{ConfigIssue, Section};

section! {
    /// `[egress]`: outbound sources and pools.
    pub struct EgressConfig {
        /// The sources (`[egress.sources.NAME]`, `address` and `ehlo`).
        pub sources: BTreeMap<String, SourceConfig> = BTreeMap::new()
            => (restart, []),
        /// The pools (`[egress.pools.NAME]`, `SOURCE = WEIGHT` for each of its sources).
        pub pools: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new()
            => (restart, []),
        /// The pool of mail no `user_pools` entry places; empty: the system's address.
        pub default_pool: String = String::new()
            => (restart, []),
        /// Pools by the user a message was submitted as (AUTH user or injection tenant).
        pub user_pools: BTreeMap<String, String> = BTreeMap::new()
            => (restart, []),
    }
}

/// One source as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// The local address to bind to (it must be configured on this host).
    pub address: String,
    /// The EHLO name given from it; empty: `delivery.helo_name` (or `smtp.hostname`).
    pub ehlo: String,
}

impl Section for EgressConfig {
    const KEYS: &'static [Key] = EgressConfig::DECLARED;
    const NAME: &'static str = "egress";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if let Err(e) = self.egress("localhost") {
            issues.push(ConfigIssue::new("egress", e));
        }
    }
}

impl EgressConfig {
    /// The pools and which one a message uses, with `helo_name` for sources without
    /// their own; `None` when no pool is used.
    pub fn egress(&self, helo_name: &str) -> Result<Option<Arc<Egress>>, String> {
        let mut sources: HashMap<&str, Arc<Source>> = HashMap::new();
        for (name, source) in &self.sources {
            let address: IpAddr = source.address.trim().parse().map_err(|_| {
                format!(
                    "sources.{name}.address: {:?} is not an IP address",
                    source.address
                )
            })?;
            if name.is_empty() || name.contains(['|', ' ']) {
                return Err(format!(
                    "sources: {name:?} is not a name (one word, no '|')"
                ));
            }
            let ehlo = match source.ehlo.trim() {
                "" => helo_name.to_string(),
                ehlo if ehlo.contains(|c: char| c.is_whitespace() || c.is_control()) => {
                    return Err(format!("sources.{name}.ehlo: {ehlo:?} is not a host name"));
                }
                ehlo => ehlo.to_string(),
            };
            sources.insert(
                name,
                Arc::new(Source {
                    name: name.clone(),
                    address,
                    ehlo,
                }),
            );
        }
        let mut pools: HashMap<&str, Arc<Pool>> = HashMap::new();
        for (name, members) in &self.pools {
            let mut weighted = Vec::new();
            for (source, weight) in members {
                let Some(found) = sources.get(source.as_str()) else {
                    return Err(format!(
                        "pools.{name}: {source:?} is not one of egress.sources"
                    ));
                };
                if *weight == 0 {
                    return Err(format!(
                        "pools.{name}.{source}: a weight of 0 would never send; leave the source out"
                    ));
                }
                weighted.push((found.clone(), *weight));
            }
            let pool =
                Pool::new(name, weighted).ok_or_else(|| format!("pools.{name}: no source"))?;
            pools.insert(name, Arc::new(pool));
        }
        let pool = |key: &str, name: &str| {
            pools
                .get(name)
                .cloned()
                .ok_or_else(|| format!("{key}: {name:?} is not one of egress.pools"))
        };
        let default = match self.default_pool.as_str() {
            "" => None,
            name => Some(pool("default_pool", name)?),
        };
        let mut by_user = HashMap::new();
        for (user, name) in &self.user_pools {
            by_user.insert(user.clone(), pool(&format!("user_pools.{user}"), name)?);
        }
        if pools.is_empty() {
            return Ok(None);
        }
        let by_name = pools
            .into_iter()
            .map(|(name, pool)| (name.to_string(), pool))
            .collect();
        Ok(Some(Arc::new(Egress {
            default,
            by_user,
            by_name,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> EgressConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn pools_name_their_sources_and_users_their_pools() {
        let egress = config(
            "default_pool = \"bulk\"\nuser_pools = { alice = \"vip\" }\n\
             [sources.a]\naddress = \"192.0.2.1\"\nehlo = \"a.example.test\"\n\
             [sources.b]\naddress = \"2001:db8::2\"\n\
             [pools.bulk]\na = 1\nb = 3\n[pools.vip]\nb = 1\n",
        )
        .egress("mta.example.test")
        .unwrap()
        .unwrap();
        let vip = egress.pool_for(None, Some("alice")).unwrap();
        assert_eq!(vip.name, "vip");
        assert_eq!(vip.sources().next().unwrap().ehlo, "mta.example.test");
        assert_eq!(egress.pool_for(None, None).unwrap().name, "bulk");
        assert!(EgressConfig::default().egress("x").unwrap().is_none());
        assert_eq!(egress.pool("bulk").unwrap().name, "bulk");
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("[sources.a]\naddress = \"nope\"", "not an IP address"),
            ("[pools.p]\nz = 1", "not one of egress.sources"),
            (
                "[sources.a]\naddress = \"192.0.2.1\"\n[pools.p]\na = 0",
                "weight of 0",
            ),
            ("default_pool = \"p\"", "not one of egress.pools"),
            ("user_pools = { bob = \"q\" }", "user_pools.bob"),
        ] {
            let error = config(text).egress("x").unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
