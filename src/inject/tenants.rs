//! The injection API's tenants: each named by a bearer key (`Authorization: Bearer KEY`),
//! compared in constant time. With no tenant configured (a loopback listener only), every
//! request is taken without one.

use std::sync::Arc;

use actix_web::HttpRequest;

use super::request::Refusal;

/// One tenant.
#[derive(Debug)]
pub struct Tenant {
    /// Its name: the messages' user.
    pub name: String,
    key: String,
    /// Envelope senders it may use (addresses or `@domain`; empty: any).
    pub senders: Vec<String>,
}

impl Tenant {
    /// Whether it may use `sender` as its envelope sender.
    pub fn may_send_as(&self, sender: &str) -> bool {
        if self.senders.is_empty() {
            return true;
        }
        let sender = sender.to_ascii_lowercase();
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        self.senders.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            match allowed.strip_prefix('@') {
                Some(d) => d == domain,
                None => allowed == sender,
            }
        })
    }
}

/// Every tenant.
#[derive(Debug, Default)]
pub struct Tenants(Vec<Arc<Tenant>>);

impl Tenants {
    /// From `(name, key, senders)` triples (`[http_inject.tenants]`).
    pub fn new(entries: Vec<(String, String, Vec<String>)>) -> Self {
        Tenants(
            entries
                .into_iter()
                .map(|(name, key, senders)| Arc::new(Tenant { name, key, senders }))
                .collect(),
        )
    }

    /// The tenant `request`'s bearer key names; `None` when no tenant is configured.
    pub fn authenticate(&self, request: &HttpRequest) -> Result<Option<Arc<Tenant>>, Refusal> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let unauthorized = |reason: &str| Refusal {
            status: 401,
            field: "Authorization".into(),
            reason: reason.into(),
        };
        let key = request
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("a bearer key is required (Authorization: Bearer KEY)"))?;
        // Every key is compared, each in constant time: the answer's timing names none.
        let mut found = None;
        for tenant in &self.0 {
            if constant_time_eq(tenant.key.as_bytes(), key.trim().as_bytes()) {
                found = Some(tenant.clone());
            }
        }
        found
            .map(Some)
            .ok_or_else(|| unauthorized("the bearer key is not a tenant's"))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
