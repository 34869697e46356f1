//! `GET /health`: whether hermod can take mail now. 200 with `"status":"healthy"`, or
//! 503 with `"status":"unhealthy"` and the reasons: the spool cannot be written (its
//! disk filled up), free space is below `queue.min_free_space`, hermod is draining, or
//! it is in maintenance mode. Off loopback a request without the token still gets the
//! status code and `status` (what a load balancer's or Kubernetes' probe needs, and it
//! cannot carry a secret), but none of the details.

use actix_web::{HttpResponse, web};

use super::{AdminState, auth};

/// The health check.
pub async fn get(state: web::Data<AdminState>, may: Option<auth::MayRead>) -> HttpResponse {
    let mut reasons = Vec::new();
    let spool_writable = !*state.spool_stuck.borrow();
    if !spool_writable {
        reasons.push("the spool cannot be written: its disk is full (hermod is stopping)");
    }
    if state.disk.is_low() {
        reasons.push("free space on the spool's disk is below queue.min_free_space");
    }
    let draining = *state.draining.borrow();
    if draining {
        reasons.push("draining: hermod is stopping");
    }
    let maintenance = state.admission.maintenance();
    if maintenance {
        reasons.push("maintenance mode: new connections are refused with 421");
    }
    let queue_size = match state.queue_stats().await {
        Ok(stats) => Some(stats.messages),
        Err(_) => {
            reasons.push("the queue does not answer");
            None
        }
    };
    let status = if reasons.is_empty() {
        "healthy"
    } else {
        "unhealthy"
    };
    let body = if may.is_none() {
        serde_json::json!({ "status": status })
    } else {
        serde_json::json!({
        "status": status,
        "reasons": reasons,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "spool_writable": spool_writable,
        "disk_free_bytes": state.disk.free_bytes(),
        "queue_size": queue_size,
        "active_connections": state.admission.active(),
        "maintenance": maintenance,
        "draining": draining,
        })
    };
    if reasons.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
