//! The admin API's bearer token: required for every request that changes something, and
//! for every request when the admin listener is not on loopback; not on the admin Unix
//! socket, for root and hermod's own user ([`super::local_socket`]).

use actix_web::{HttpRequest, HttpResponse};

use super::AdminState;
use super::local_socket::LocalPeer;

/// The 401 or 403 to send instead of answering, or `None` when the request may go on.
pub fn refusal(state: &AdminState, request: &HttpRequest, changes: bool) -> Option<HttpResponse> {
    if let Some(peer) = request.conn_data::<LocalPeer>() {
        return (!peer.trusted()).then(|| {
            HttpResponse::Forbidden().json(serde_json::json!({
                "error": format!("the admin socket serves root and hermod's own user only, not uid {}", peer.uid)
            }))
        });
    }
    if !changes && !state.token_for_reads {
        return None;
    }
    let Some(token) = &state.token else {
        return Some(HttpResponse::Forbidden().json(serde_json::json!({
            "error": "no admin token is configured (admin.token or admin.token_file); changes are refused"
        })));
    };
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
        None
    } else {
        Some(
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .json(serde_json::json!({ "error": "missing or wrong bearer token" })),
        )
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing
/// about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
