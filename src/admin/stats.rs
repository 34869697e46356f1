//! `GET /stats` and `GET /api/queue/stats`: connections and the queue as JSON — what is
//! queued, due, deferred and under way, and what happened since the start.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{AdminState, auth, unavailable};

/// The statistics.
pub async fn get(state: web::Data<AdminState>, request: HttpRequest) -> HttpResponse {
    if let Some(refused) = auth::refusal(&state, &request, false) {
        return refused;
    }
    let stats = match state.queue_stats().await {
        Ok(stats) => stats,
        Err(reason) => return unavailable(&reason),
    };
    HttpResponse::Ok().json(serde_json::json!({
        "active_connections": state.admission.active(),
        "queue_size": stats.messages,
        "queue": stats,
        "messages_received": stats.totals.received,
        "messages_delivered": stats.totals.delivered,
        "messages_deferred": stats.totals.deferred,
        "messages_bounced": stats.totals.bounced,
        "maintenance": state.admission.maintenance(),
        "uptime_s": state.started.elapsed().as_secs(),
    }))
}
