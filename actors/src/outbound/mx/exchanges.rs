//! The MX host names of a next hop without their addresses: what a shaping site is
//! named by, looked up apart from delivery's full resolution because it is cheaper.

use hickory_resolver::proto::rr::RData;

use super::{
    MAX_EXCHANGES, MxError, MxResolver, address_literal, display_name, dns_error, fqdn, negative,
};
use crate::outbound::routing::NextHop;

impl MxResolver {
    /// The host names a next hop's mail goes to, without their addresses: the MX
    /// exchanges of an `mx:` hop (the domain itself with no MX records), else the
    /// configured host. What a shaping site is named by; cheaper than [`Self::targets`]
    /// (one lookup, from hickory's cache once delivery has looked it up).
    pub async fn exchanges(&self, hop: &NextHop) -> Result<Vec<String>, MxError> {
        let domain = match hop {
            NextHop::Mx { domain }
            | NextHop::Smtp {
                host: domain,
                mx: true,
                ..
            } => domain,
            _ => return Ok(vec![hop.name().to_string()]),
        };
        if address_literal(domain).is_some() {
            return Ok(vec![domain.clone()]);
        }
        let name = fqdn(&display_name(domain))?;
        match self.resolver.mx_lookup(name).await {
            Ok(lookup) => {
                let hosts: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) if !mx.exchange.is_root() => {
                            Some(display_name(&mx.exchange.to_lowercase().to_ascii()))
                        }
                        _ => None,
                    })
                    .take(MAX_EXCHANGES)
                    .collect();
                Ok(if hosts.is_empty() {
                    vec![domain.clone()]
                } else {
                    hosts
                })
            }
            Err(e) => match negative(&e) {
                Some(_) => Ok(vec![domain.clone()]),
                None => Err(dns_error(domain, &e)),
            },
        }
    }
}
