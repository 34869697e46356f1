//! The series that exist from the first second: counters without labels, counters whose
//! labels are known in advance, and gauges that count from zero, all registered at 0
//! when the recorder is installed. An idle node then serves them, so dashboards draw a
//! line and `absent()` or `rate()` alerts can tell "nothing happened" from "not
//! scraped". Series whose labels come from traffic (a rejection's reason, a next hop)
//! appear with their first event.

/// Counters with no labels.
const COUNTERS: &[&str] = &[
    "delivery_actor_failures_total",
    "delivery_auth_failures_total",
    "delivery_connection_budget_waits_total",
    "delivery_host_backoff_total",
    "queue_ballast_released_total",
    "queue_bounces_total",
    "queue_enqueue_errors_total",
    "queue_enqueue_timeouts_total",
    "queue_hop_down_total",
    "queue_low_space_total",
    "queue_messages_removed_total",
    "queue_space_claims_refused_total",
    "queue_spool_disk_full_total",
    "queue_undeliverable_bounces_total",
    "redis_errors_total",
    "redis_outages_total",
    "smtp_auth_failures_total",
    "smtp_connections_total",
    "smtp_messages_received_total",
];

/// Counters with one label whose values are known in advance.
const LABELLED: &[(&str, &str, &[&str])] = &[
    (
        "delivery_mta_sts_fetches_total",
        "result",
        &["ok", "failed"],
    ),
    ("delivery_mta_sts_refusals_total", "reason", &["mx", "tls"]),
    (
        "delivery_dane_lookups_total",
        "result",
        &["tlsa", "unusable", "none", "insecure", "bogus", "failed"],
    ),
    (
        "delivery_dane_refusals_total",
        "reason",
        &["bogus", "lookup", "tls"],
    ),
    (
        "delivery_attempts_total",
        "status",
        &["sent", "deferred", "bounced"],
    ),
    (
        "smtp_auth_attempts_total",
        "result",
        &["success", "failure", "locked_out", "paced", "unavailable"],
    ),
    (
        "smtp_tls_handshake_failures_total",
        "reason",
        &[
            "no_shared_cipher",
            "no_shared_version",
            "certificate_rejected",
            "not_tls",
            "timeout",
            "closed",
            "other",
        ],
    ),
    (
        "smtp_timeouts_total",
        "stage",
        &["greeting", "command", "data", "write"],
    ),
    ("shaping_waits_total", "reason", &["limit", "suspended"]),
];

/// Gauges that count up from nothing (those set from a sample, such as free space or a
/// certificate's expiry, wait for their first sample rather than claim 0).
const GAUGES: &[&str] = &[
    "delivery_connections_open",
    "delivery_pending_jobs",
    "queue_hops_down",
    "queue_in_flight_messages",
    "queue_messages",
    "queue_ready_messages",
    "shaping_actions_in_force",
    "smtp_connections_active",
];

/// Registers every series above at 0 (an existing one keeps its value).
pub(crate) fn register_at_zero() {
    for name in COUNTERS {
        metrics::counter!(*name).increment(0);
    }
    for (name, label, values) in LABELLED {
        for value in *values {
            metrics::counter!(*name, *label => *value).increment(0);
        }
    }
    for name in GAUGES {
        metrics::gauge!(*name).increment(0.0);
    }
    // Every bounce class, so a dashboard's rate per class starts from 0.
    for class in crate::core::bounce_class::BounceClass::ALL {
        metrics::counter!("delivery_bounces_total", "class" => class.name()).increment(0);
    }
}
