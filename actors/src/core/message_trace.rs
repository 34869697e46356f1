//! One OpenTelemetry trace per message (`tracing.enabled`): the Session (or the injection
//! API) opens it when the message is received, the envelope carries its W3C
//! `traceparent` through the spool, and every delivery attempt, however much later and
//! after however many restarts, adds a span to it.
//!
//! The engine sees only the OpenTelemetry API: the binary installs the tracer (SDK,
//! sampler and OTLP exporter) once at start. Without it every call here is a check of
//! one `OnceLock` and nothing is built, so tracing off costs nothing.

use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::trace::{
    Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer,
};
use opentelemetry::{Context, KeyValue};

/// The tracer spans are made by; absent while tracing is off.
static TRACER: OnceLock<BoxedTracer> = OnceLock::new();

/// Longest attribute value taken from a peer (a HELO name, a reply): the collector stores
/// every span, so a peer must not make them large.
const MAX_PEER_TEXT: usize = 256;

/// Installs the tracer; from now on messages are traced. The first installation wins
/// (one process, one exporter); returns whether this one did.
pub fn install(tracer: BoxedTracer) -> bool {
    TRACER.set(tracer).is_ok()
}

/// Whether messages are traced: callers skip building what a span would carry when not.
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// What a span is about to be: its name, kind, start time and attributes.
pub struct SpanStart {
    /// The span's name (`smtp.receive`, `smtp.deliver`, ...).
    pub name: &'static str,
    /// Server for what hermod receives, client for what it sends, internal otherwise.
    pub kind: SpanKind,
    /// When what it measures began (spans are often made once the work is done).
    pub start: SystemTime,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
}

/// Starts a span under `parent` (a new trace without one); `None` while tracing is off.
pub fn start(span: SpanStart, parent: Option<&Context>) -> Option<BoxedSpan> {
    let tracer = TRACER.get()?;
    let root = Context::new();
    let builder = tracer
        .span_builder(span.name)
        .with_kind(span.kind)
        .with_start_time(span.start)
        .with_attributes(span.attributes);
    Some(builder.start_with_context(tracer, parent.unwrap_or(&root)))
}

/// The context children of `span` are started in.
pub fn context_of(span: &BoxedSpan) -> Context {
    Context::new().with_remote_span_context(span.span_context().clone())
}

/// A finished span of `parent` in one call: for work measured before its span is made.
pub fn record(span: SpanStart, parent: &Context, end: SystemTime) {
    if let Some(mut span) = start(span, Some(parent)) {
        span.end_with_timestamp(end);
    }
}

/// The W3C `traceparent` of `span` to keep with the message; `None` when the sampler
/// left it out (its deliveries are then not traced either).
pub fn traceparent(span: &BoxedSpan) -> Option<String> {
    let context = span.span_context();
    context.is_sampled().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    })
}

/// The context a kept `traceparent` names, for the spans of a later delivery attempt;
/// `None` for anything that is not one (a damaged or hand-edited envelope).
pub fn parent_from(traceparent: &str) -> Option<Context> {
    let mut parts = traceparent.split('-');
    let (Some("00"), Some(trace), Some(span), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    Some(Context::new().with_remote_span_context(context))
}

/// A peer's text as an attribute value: at most [`MAX_PEER_TEXT`] characters, control
/// characters escaped, so a collector's view shows what was sent and no more.
pub fn peer_text(key: &'static str, text: &str) -> KeyValue {
    KeyValue::new(key, bounded(text))
}

/// A peer's text as [`peer_text`] bounds it, for a span's status.
pub fn bounded(text: &str) -> String {
    let mut value = String::with_capacity(text.len().min(MAX_PEER_TEXT));
    for c in text.chars().take(MAX_PEER_TEXT) {
        if c.is_control() {
            value.extend(c.escape_default());
        } else {
            value.push(c);
        }
    }
    value
}

/// The open root span of a message being stored (over SMTP or the injection API): it
/// gets the event `queue.store` when the message goes to the spool and ends when the
/// client is answered.
pub struct Receiving {
    root: BoxedSpan,
}

impl Receiving {
    /// The message of `root` goes to the spool now; its `traceparent`, for the envelope,
    /// comes with it (`None` when the sampler left the message out).
    pub fn new(mut root: BoxedSpan) -> (Self, Option<String>) {
        let traceparent = traceparent(&root);
        root.add_event("queue.store", Vec::new());
        (Receiving { root }, traceparent)
    }

    /// The client was answered `code` (250 once the message is on disk: the spool's
    /// fsync is the time from `queue.store` to the end), `reply` in full: the root ends,
    /// an error unless 250.
    pub fn answered(mut self, code: u16, reply: &dyn std::fmt::Display) {
        self.root
            .set_attribute(KeyValue::new("smtp.reply_code", i64::from(code)));
        if code != 250 {
            self.root.set_status(Status::error(reply.to_string()));
        }
        self.root.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_the_same_context() {
        let context = parent_from("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .expect("a valid traceparent");
        let span = context.span().span_context().clone();
        assert_eq!(
            span.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(span.span_id().to_string(), "b7ad6b7169203331");
        assert!(span.is_sampled() && span.is_remote());
    }

    #[test]
    fn anything_else_is_no_parent() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-zzf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-0001",
        ] {
            assert!(parent_from(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn peer_text_is_bounded_and_escaped() {
        let long = "a".repeat(1000);
        assert_eq!(peer_text("k", &long).value.as_str().len(), MAX_PEER_TEXT);
        assert_eq!(
            peer_text("k", "evil\r\nInjected: yes").value.as_str(),
            "evil\\r\\nInjected: yes"
        );
    }
}
