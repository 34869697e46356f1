//! The last warnings and errors hermod logged, kept in memory (the newest
//! [`KEPT`](RecentProblems)) so `hermod diagnose` can put them in its archive and an
//! operator reads them through the admin API (`GET /api/log/recent`) without access to
//! the log's destination. Values are escaped as in the text log.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How many lines are kept.
const KEPT: usize = 200;

/// The newest warning and error lines; clones share them.
#[derive(Debug, Clone, Default)]
pub struct RecentProblems(Arc<Mutex<VecDeque<String>>>);

impl RecentProblems {
    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEPT {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

/// The layer that keeps them: WARN and ERROR events, whatever the log level.
pub struct RecentLayer(pub RecentProblems);

impl<S: Subscriber> Layer<S> for RecentLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut line = Line {
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut line);
        self.0
            .push(format!("{now} {level:>5} {}{}", line.message, line.fields));
    }
}

struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = crate::escape::escape_controls(&format!("{value:?}"), false).into_owned();
        if field.name() == "message" {
            self.message = text;
        } else {
            let _ = write!(self.fields, " {}={text}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn warnings_and_errors_are_kept_escaped_and_bounded() {
        let recent = RecentProblems::default();
        let subscriber = tracing_subscriber::registry().with(RecentLayer(recent.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(
                client = "1.2.3.4",
                helo = "evil\r\nERROR forged",
                "too many connections"
            );
            for i in 0..KEPT {
                tracing::error!(i, "filler");
            }
        });
        let lines = recent.lines();
        assert_eq!(lines.len(), KEPT);
        assert!(lines.iter().all(|l| l.contains("ERROR filler")));
        let recent = RecentProblems::default();
        let subscriber = tracing_subscriber::registry().with(RecentLayer(recent.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(helo = "evil\r\nERROR forged", "too many connections");
        });
        let line = &recent.lines()[0];
        assert!(line.contains(" WARN too many connections helo="), "{line}");
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
    }
}
