//! Mail going out: the Delivery actor (one per next hop), the SMTP/LMTP client it
//! speaks, the routing and MX resolution that pick the hop, whether a hop answers, and
//! the one budget of outbound connections, and the receiving domains' MTA-STS policies.

pub mod connection_budget;
pub mod delivery;
mod delivery_job;
pub mod hop_health;
pub mod job;
pub mod mta_sts;
pub mod mx;
pub mod routing;
pub mod smtp_client;
pub mod tls;
