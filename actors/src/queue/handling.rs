//! How long the Queue takes to handle each kind of message (`queue_handling_seconds`):
//! the Queue is the one actor every message passes, so its handling time is the first
//! sign of backpressure. The histogram of each kind is looked up once.

/// Records how long the Queue took to handle one message of kind `message`.
pub(super) fn handled(message: &HandlingKind, started: std::time::Instant) {
    message.record(started.elapsed().as_secs_f64());
}

/// One kind of message the Queue handles, its `queue_handling_seconds` histogram looked
/// up once: stored messages and reports pass for every mail.
pub(super) struct HandlingKind(std::sync::LazyLock<metrics::Histogram>);

impl std::ops::Deref for HandlingKind {
    type Target = metrics::Histogram;
    fn deref(&self) -> &metrics::Histogram {
        &self.0
    }
}

/// A stored message, told by the intake.
pub(super) static STORED: HandlingKind = HandlingKind(std::sync::LazyLock::new(
    || metrics::histogram!("queue_handling_seconds", "message" => "stored"),
));
/// A Delivery actor's report.
pub(super) static DELIVERY_REPORT: HandlingKind = HandlingKind(std::sync::LazyLock::new(
    || metrics::histogram!("queue_handling_seconds", "message" => "delivery_report"),
));
/// An operator's action.
pub(super) static OPERATE: HandlingKind = HandlingKind(std::sync::LazyLock::new(
    || metrics::histogram!("queue_handling_seconds", "message" => "operate"),
));
