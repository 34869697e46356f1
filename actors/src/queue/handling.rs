//! How long the Queue takes to handle each kind of message (`queue_handling_seconds`):
//! the Queue is the one actor every message passes, so its handling time is the first
//! sign of backpressure. The histogram of each kind is looked up once: stored messages
//! and reports pass for every mail.

use std::sync::LazyLock;

use metrics::Histogram;

/// Records how long the Queue took to handle one message, in the histogram of its kind.
pub(super) fn handled(kind: &Histogram, started: std::time::Instant) {
    kind.record(started.elapsed().as_secs_f64());
}

/// A stored message, told by the intake.
pub(super) static STORED: LazyLock<Histogram> =
    LazyLock::new(|| metrics::histogram!("queue_handling_seconds", "message" => "stored"));
/// A Delivery actor's report.
pub(super) static DELIVERY_REPORT: LazyLock<Histogram> =
    LazyLock::new(|| metrics::histogram!("queue_handling_seconds", "message" => "delivery_report"));
/// An operator's action.
pub(super) static OPERATE: LazyLock<Histogram> =
    LazyLock::new(|| metrics::histogram!("queue_handling_seconds", "message" => "operate"));
