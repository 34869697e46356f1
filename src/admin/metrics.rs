//! `GET /metrics`: every metric hermod records, in Prometheus' text format, each with
//! its help text (declared beside the code that records it).

use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::{AdminState, auth};

/// The scrape.
pub async fn get(state: web::Data<AdminState>, request: HttpRequest) -> HttpResponse {
    if let Some(refused) = auth::refusal(&state, &request, false) {
        return refused;
    }
    match &state.prometheus {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::NotFound().json(serde_json::json!({
            "error": "metrics are off (admin.metrics = false, METRICS_ENABLED)"
        })),
    }
}

/// Installs the Prometheus recorder for the whole process and gives every metric its
/// help text. Its upkeep (draining histogram buffers) is the caller's, periodically.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    hermod_actors::describe_metrics();
    crate::wiring::describe_metrics();
    Ok(handle)
}
