//! `GET /api/auth/lockouts` and `POST /api/auth/unlock`: the client networks AUTH has
//! locked out for too many failures, and lifting a lock-out before it ages out (a
//! customer's office behind one address that mistyped a password five times).

use actix_web::{HttpResponse, web};
use ipnet::IpNet;
use serde::Deserialize;

use super::{AdminState, auth, bad_request};

/// The body of an unlock.
#[derive(Debug, Deserialize)]
pub struct Unlock {
    /// A client address (its network is unlocked) or a network in CIDR form (every
    /// locked network inside it).
    pub address: String,
}

fn auth_off() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": "AUTH is off (auth.enabled = false): nothing is locked out"
    }))
}

/// The networks locked out now, most failures first, and the user names being paced.
pub async fn list(state: web::Data<AdminState>, _: auth::MayRead) -> HttpResponse {
    let Some(authenticator) = &state.auth else {
        return auth_off();
    };
    let lockouts: Vec<_> = authenticator
        .lockouts()
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "network": s.key.to_string(),
                "failures": s.failures,
                "seconds_left": s.until.as_secs(),
            })
        })
        .collect();
    let paced: Vec<_> = authenticator
        .paced_users()
        .into_iter()
        .map(|(user, failures)| serde_json::json!({ "user": user, "failures": failures }))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "lockouts": lockouts, "paced_users": paced }))
}

/// Lifts the lock-out of an address's network, or of every network inside a range
/// (token required).
pub async fn unlock(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    body: web::Json<Unlock>,
) -> HttpResponse {
    let Some(authenticator) = &state.auth else {
        return auth_off();
    };
    let address = body.address.trim();
    let unlocked = if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        usize::from(authenticator.unlock(ip))
    } else if let Ok(net) = address.parse::<IpNet>() {
        authenticator.unlock_network(net)
    } else {
        return bad_request("address: not an IP address or a network in CIDR form");
    };
    tracing::info!(address = %address, unlocked, "AUTH lock-out lifted by the operator");
    HttpResponse::Ok().json(serde_json::json!({ "address": address, "unlocked": unlocked }))
}
