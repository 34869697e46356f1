//! `GET /metrics`: every metric hermod records, in Prometheus' text format, each with
//! its help text (declared beside the code that records it), and the process's own
//! (`process_resident_memory_bytes`, `process_open_fds`, CPU, threads: metrics-process,
//! read at each scrape).

use actix_web::{HttpResponse, web};
use hermod_actors::store::spool::SpoolError;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::{AdminState, auth};

/// The scrape.
pub async fn get(state: web::Data<AdminState>, _: auth::MayRead) -> HttpResponse {
    if state.seen.prometheus.is_some() {
        process_collector().collect();
        // The per-destination gauges are counted at scrape time (at most every 5 s).
        let counting = state.clone();
        let counted = web::block(move || {
            let rows = counting.destinations.get(&counting.spool)?;
            counting.destinations.publish_gauges(&rows);
            Ok::<(), SpoolError>(())
        })
        .await;
        let failed = match counted {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = failed {
            tracing::warn!(reason = %reason, "cannot count the queue by destination for /metrics");
        }
    }
    match &state.seen.prometheus {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::NotFound().json(serde_json::json!({
            "error": "metrics are off (admin.metrics = false, METRICS_ENABLED)"
        })),
    }
}

/// Installs the Prometheus recorder for the whole process and gives the engine's and the
/// admin server's metrics their help text (the wiring adds its own). Its upkeep
/// (draining histogram buffers) is the caller's, periodically.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    hermod_actors::describe_metrics();
    super::destinations::describe_metrics();
    crate::inject::describe_metrics();
    crate::logging::traces::describe_metrics();
    let process = process_collector();
    process.describe();
    process.collect();
    Ok(handle)
}

/// The process's own metrics, in Prometheus' standard names.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}
