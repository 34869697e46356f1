//! `/api/shaping`: the traffic-shaping actions in force (which rule suspended or slowed
//! which site, after which reply, until when) and ending one before its time.
//! `GET /api/shaping`; `DELETE /api/shaping/{site}[?rule=NAME]` (site `*`: every site)
//! needs the token. Across a fleet sharing Redis, a cleared action ends on every node.

use std::time::UNIX_EPOCH;

use actix_web::{HttpResponse, web};
use hermod_actors::outbound::shaping::Action;
use serde::Deserialize;

use super::{AdminState, auth, unix_now};

/// The query of a `DELETE`.
#[derive(Debug, Deserialize)]
pub struct ClearQuery {
    /// Only the actions of this rule.
    #[serde(default)]
    pub rule: Option<String>,
}

/// The actions as JSON rows.
fn rows(actions: &[Action]) -> serde_json::Value {
    let now = unix_now();
    actions
        .iter()
        .map(|a| {
            let at = |secs: u64| {
                hermod_actors::protocol::datetime::rfc3339(
                    UNIX_EPOCH + std::time::Duration::from_secs(secs),
                )
            };
            serde_json::json!({
                "site": a.site,
                "source": a.source,
                "rule": a.rule,
                "action": a.kind.to_string(),
                "reason": a.reason,
                "since": at(a.since),
                "until": at(a.until),
                "remaining_s": a.until.saturating_sub(now),
                "node": a.node,
            })
        })
        .collect()
}

/// `GET /api/shaping`.
pub async fn list(state: web::Data<AdminState>, _: auth::MayRead) -> HttpResponse {
    let actions = state
        .shaping
        .as_ref()
        .map(|shaping| shaping.list())
        .unwrap_or_default();
    HttpResponse::Ok().json(serde_json::json!({
        "enabled": state.shaping.is_some(),
        "actions": rows(&actions),
    }))
}

/// `DELETE /api/shaping/{site}`.
pub async fn clear(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    site: web::Path<String>,
    query: web::Query<ClearQuery>,
) -> HttpResponse {
    let Some(shaping) = &state.shaping else {
        return HttpResponse::NotFound()
            .json(serde_json::json!({ "error": "shaping is off (no delivery.shaping_file)" }));
    };
    let site = site.into_inner();
    let every = if site == "*" { "" } else { site.as_str() };
    let ended = shaping.clear(every, query.rule.as_deref());
    if ended.is_empty() {
        return HttpResponse::NotFound()
            .json(serde_json::json!({ "error": "no shaping action in force matches" }));
    }
    HttpResponse::Ok().json(serde_json::json!({
        "cleared": rows(&ended),
        "actions": rows(&shaping.list()),
    }))
}
