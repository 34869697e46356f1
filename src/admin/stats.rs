//! `GET /stats` and `GET /api/queue/stats`: connections and the queue as JSON — what is
//! queued, due, deferred and under way, what happened since the start, and the queue by
//! destination.

use actix_web::{HttpResponse, web};
use hermod_actors::queue::GetInFlight;

use super::{AdminState, auth, unavailable};

/// The statistics.
pub async fn get(state: web::Data<AdminState>, _: auth::MayRead) -> HttpResponse {
    let stats = match state.queue_stats().await {
        Ok(stats) => stats,
        Err(reason) => return unavailable(reason),
    };
    let counting = state.clone();
    let mut destinations =
        match web::block(move || counting.destinations.get(&counting.spool)).await {
            Ok(Ok(destinations)) => destinations,
            Ok(Err(reason)) => return unavailable(reason),
            Err(e) => return unavailable(e),
        };
    let suspended = match super::suspensions::current(&state).await {
        Ok(list) => list,
        Err(reason) => return unavailable(reason),
    };
    let in_flight = match state.ask(GetInFlight).await {
        Ok(in_flight) => in_flight.0,
        Err(reason) => return unavailable(reason),
    };
    for row in destinations.as_array_mut().into_iter().flatten() {
        let counted = row["domain"]
            .as_str()
            .and_then(|d| in_flight.get(d))
            .copied();
        row["in_flight"] = counted.unwrap_or(0).into();
        if let Some(s) = suspended
            .iter()
            .find(|s| row["domain"] == s.domain.as_str())
        {
            row["suspended_until"] = s.until.into();
            row["suspension_reason"] = s.reason.clone().into();
        }
    }
    HttpResponse::Ok().json(serde_json::json!({
        "active_connections": state.admission.active(),
        "queue_size": stats.messages,
        "queue": stats,
        "messages_received": stats.totals.received,
        "messages_delivered": stats.totals.delivered,
        "messages_deferred": stats.totals.deferred,
        "messages_bounced": stats.totals.bounced,
        "maintenance": state.admission.maintenance(),
        "destinations": destinations,
        "suspended": suspended,
        "uptime_s": state.started.elapsed().as_secs(),
    }))
}
