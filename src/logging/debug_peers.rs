//! Per-peer debug logging, as Postfix's `debug_peer_list`: `log.debug_peers` names client
//! or next-hop addresses, networks and domains whose events are logged at DEBUG while
//! every other event keeps `log.level`. A reload (SIGHUP) applies a new list at once.
//!
//! The filter wraps the configured one: an event the level lets through goes as before;
//! a DEBUG event goes too when one of its fields names a listed peer (`client=`,
//! `next_hop=`, `target=`, `domain=`, `from=`, `to=` ...: any field whose value is such an
//! address, or a domain or mail address under a listed domain). With the list empty the
//! filter adds nothing, not even the cost of building a DEBUG event.

use std::sync::{Arc, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter};

use crate::config::debug_peers::DebugPeers;

/// The list in force, shared by the filter and the reload.
static CURRENT: RwLock<Option<Arc<DebugPeers>>> = RwLock::new(None);

/// Puts `peers` in force (at start and on each reload) and has every callsite asked
/// again whether it is wanted, so DEBUG lines start or stop at once.
pub fn set(peers: DebugPeers) {
    let peers = (!peers.is_empty()).then(|| Arc::new(peers));
    let mut current = CURRENT.write().unwrap_or_else(|e| e.into_inner());
    if *current == peers {
        return;
    }
    *current = peers;
    drop(current);
    tracing::callsite::rebuild_interest_cache();
}

fn current() -> Option<Arc<DebugPeers>> {
    CURRENT.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Whether any peer is listed (without taking a handle on the list).
fn active() -> bool {
    CURRENT.read().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// The configured filter, widened to DEBUG for the listed peers.
pub struct PeerFilter {
    /// `log.level` (or `RUST_LOG`).
    pub level: EnvFilter,
}

impl<S> Filter<S> for PeerFilter
where
    EnvFilter: Filter<S>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        Filter::enabled(&self.level, meta, cx) || (widened(meta) && active())
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        let meta = event.metadata();
        if !widened(meta) || Filter::enabled(&self.level, meta, cx) {
            return Filter::event_enabled(&self.level, event, cx);
        }
        let Some(peers) = current() else {
            return false;
        };
        let mut finder = PeerFinder {
            peers: &peers,
            found: false,
        };
        event.record(&mut finder);
        finder.found
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        let configured = Filter::<S>::callsite_enabled(&self.level, meta);
        if configured.is_always() || !(widened(meta) && active()) {
            return configured;
        }
        tracing::subscriber::Interest::sometimes()
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: Context<'_, S>,
    ) {
        Filter::on_new_span(&self.level, attrs, id, cx)
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: Context<'_, S>,
    ) {
        Filter::on_record(&self.level, id, values, cx)
    }

    fn on_enter(&self, id: &tracing::span::Id, cx: Context<'_, S>) {
        Filter::on_enter(&self.level, id, cx)
    }

    fn on_exit(&self, id: &tracing::span::Id, cx: Context<'_, S>) {
        Filter::on_exit(&self.level, id, cx)
    }

    fn on_close(&self, id: tracing::span::Id, cx: Context<'_, S>) {
        Filter::on_close(&self.level, id, cx)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        let level = Filter::<S>::max_level_hint(&self.level);
        match active() {
            true => level.map(|l| l.max(tracing::level_filters::LevelFilter::DEBUG)),
            false => level,
        }
    }
}

/// What a listed peer may raise: hermod's own events up to DEBUG (whatever `level`
/// cuts: a listed peer's INFO lines come under `level = "warn"` too). TRACE, spans and
/// other crates' events stay with the configured filter.
fn widened(meta: &Metadata<'_>) -> bool {
    meta.is_event() && *meta.level() <= Level::DEBUG && meta.target().starts_with("hermod")
}

/// Looks through an event's fields for a listed peer.
struct PeerFinder<'a> {
    peers: &'a DebugPeers,
    found: bool,
}

impl Visit for PeerFinder<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.found && field.name() != "message" {
            self.found = self.peers.names(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.found && field.name() != "message" {
            self.found = self.peers.names(&format!("{value:?}"));
        }
    }
}
