//! The exporter behind the messages' traces (`[tracing]`): the OpenTelemetry SDK's
//! tracer with a sampler by trace id that follows a kept parent, a batch processor on
//! its own thread, and the OTLP/HTTP protobuf exporter. Installed into the engine once at
//! start ([`message_trace::install`]), flushed at stop.
//!
//! The mail never waits for the collector: finished spans wait in a bounded queue
//! (`tracing.max_queue`); past it a span is dropped and counted. Spans exported and
//! lost are counted; a collector that fails is one WARN line when it starts failing and
//! one INFO line when it takes spans again, never a line per batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use hermod_actors::core::message_trace;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, Span, SpanData,
    SpanExporter, SpanProcessor,
};

use crate::config::Config;

/// How long the spans still queued at stop get to reach the collector.
const FLUSH_AT_STOP: Duration = Duration::from_secs(5);

/// Spans per export request (about 700 KB of protobuf): a collector's cost is mostly per
/// request, and so is the exporter's; the SDK's default of 512 made a collector on the
/// same machine take a measurable share of it (docs/BENCHMARKS.md).
const BATCH: usize = 2048;

/// The longest a finished span waits for its batch.
const BATCH_DELAY: Duration = Duration::from_secs(1);

/// The running exporter; [`TraceExport::stop`] sends what is still queued.
pub struct TraceExport {
    provider: SdkTracerProvider,
}

/// Starts the exporter and installs the tracer when `tracing.enabled`; `None` otherwise.
pub fn install(config: &Config) -> anyhow::Result<Option<TraceExport>> {
    let settings = &config.tracing;
    if !settings.enabled {
        return Ok(None);
    }
    let headers: HashMap<String, String> = settings.headers()?.into_iter().collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .with_headers(headers)
        .build()
        .context("starting the OTLP exporter (tracing.endpoint)")?;
    let queued = Arc::new(AtomicUsize::new(0));
    let exporter = CountingExporter {
        inner: exporter,
        queued: queued.clone(),
        failing: AtomicBool::new(false),
        endpoint: settings.endpoint.clone(),
    };
    // The processor's own queue is never the one that fills: the gate in front of it
    // drops (and counts) first.
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(settings.max_queue.saturating_add(BATCH))
        .with_max_export_batch_size(BATCH.min(settings.max_queue))
        .with_scheduled_delay(BATCH_DELAY)
        .build();
    let processor = GatedProcessor {
        inner: BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build(),
        queued,
        max: settings.max_queue,
    };
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("host.name", config.smtp.hostname.clone()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    message_trace::install(opentelemetry::global::tracer("hermod"));
    tracing::info!(endpoint = %settings.endpoint, service_name = %settings.service_name,
        sample_ratio = settings.sample_ratio, "tracing messages to an OTLP collector");
    Ok(Some(TraceExport { provider }))
}

impl TraceExport {
    /// Sends the spans still queued (bounded by [`FLUSH_AT_STOP`]), on a thread of its
    /// own: the exporter's blocking client must not run inside the async runtime.
    pub fn stop(self) {
        let provider = self.provider;
        let flushed = std::thread::Builder::new()
            .name("trace-flush".into())
            .spawn(move || provider.shutdown_with_timeout(FLUSH_AT_STOP))
            .ok()
            .and_then(|thread| thread.join().ok());
        if let Some(Err(e)) = flushed {
            tracing::warn!(error = %e, "traces not all sent at stop");
        }
    }
}

/// Drops a finished span, counted, when `max` are already waiting for export.
#[derive(Debug)]
struct GatedProcessor {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    max: usize,
}

impl SpanProcessor for GatedProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("tracing_spans_dropped_total").increment(1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts what each export did and says when the collector starts and stops failing.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    /// The last export failed (the next failure is not logged again).
    failing: AtomicBool,
    endpoint: String,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.queued.fetch_sub(spans, Ordering::Relaxed);
        match &result {
            Ok(()) => {
                metrics::counter!("tracing_spans_exported_total").increment(spans as u64);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.endpoint, "trace collector takes spans again");
                }
            }
            Err(e) => {
                metrics::counter!("tracing_spans_failed_total").increment(spans as u64);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(endpoint = %self.endpoint, spans, error = %e,
                        "trace collector refused or unreachable; spans lost until it answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "tracing_spans_exported_total",
        "Spans of message traces the OTLP collector took."
    );
    metrics::describe_counter!(
        "tracing_spans_failed_total",
        "Spans lost because the OTLP collector refused them or could not be reached."
    );
    metrics::describe_counter!(
        "tracing_spans_dropped_total",
        "Spans dropped because tracing.max_queue spans were already waiting for export."
    );
    for name in [
        "tracing_spans_exported_total",
        "tracing_spans_failed_total",
        "tracing_spans_dropped_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}
