//! Mail going out: the Delivery actor (one per next hop), the SMTP/LMTP client it
//! speaks, the routing and MX resolution that pick the hop, whether a hop answers, and
//! the one budget of outbound connections, and the receiving domains' own demands on
//! TLS: DANE and MTA-STS, and the TLS reports (RFC 8460) they ask for.

pub mod connection_budget;
pub mod dane;
pub mod delivery;
mod delivery_job;
mod domain_policy;
pub mod egress;
pub mod hop_health;
pub mod job;
pub mod mta_sts;
pub mod mx;
pub mod routing;
pub mod shaping;
pub mod smtp_client;
pub mod tls;
pub mod tls_report;
