//! Provider-aware shaping in the running hermod: the [`Shaping`] made from
//! `delivery.shaping_file` at start, its file read again on SIGHUP, and, with Redis
//! (`redis.shaping`), the actions in force shared with the fleet: each action this node
//! takes is written to one Redis hash, and every second the hash is read back whole and
//! replaces the node's actions, so that what one node takes (or an operator clears)
//! holds on every node within about a second.

use std::sync::Arc;
use std::time::Duration;

use hermod_actors::outbound::shaping::{Action, ActionChange, Shaping};
use hermod_actors::policy::backend::redis::RedisBackend;
use tokio::sync::mpsc;

use crate::config::Config;

/// How often the fleet's actions are read back from Redis (and leases renewed).
const FLEET_POLL: Duration = Duration::from_secs(1);

/// How long a node's connection leases hold without renewal (a node that stops gives
/// its share back after this long).
const LEASE_TTL_MS: u64 = 10_000;

/// The hash lives this long after its last change (longer than any action's duration).
const FLEET_TTL_S: u64 = 8 * 86400;

/// Most actions read from Redis, and the longest one: peers' bytes are bounded.
const MAX_FLEET_ACTIONS: usize = 10_000;
const MAX_ACTION_BYTES: usize = 4096;

/// The shaping of this node, when `delivery.shaping_file` names a file: with the
/// actions kept before a restart, kept from now on, and shared with the fleet.
pub(super) fn start(config: &Config) -> anyhow::Result<Option<Arc<Shaping>>> {
    let Some(rules) = config.delivery.shaping_rules()? else {
        return Ok(None);
    };
    tracing::info!(file = %config.delivery.shaping_file.display(), providers = rules.providers.len(),
        sites = rules.sites.len(), domains = rules.domains.len(), rules = rules.automation.len(),
        "shaping file loaded");
    let shaping = Shaping::new(rules, &config.smtp.hostname);
    keep_across_restarts(&shaping, config.queue.data_dir.join("shaping_actions.json"));
    share_with_fleet(&shaping, config)?;
    Ok(Some(shaping))
}

/// Reads the shaping file again (SIGHUP); a file that does not load keeps the rules in
/// force, and says why.
pub(super) fn reload(shaping: &Shaping, config: &Config) {
    match config.delivery.shaping_rules() {
        Ok(Some(rules)) => {
            tracing::info!(file = %config.delivery.shaping_file.display(), providers = rules.providers.len(),
                sites = rules.sites.len(), domains = rules.domains.len(), rules = rules.automation.len(),
                "shaping file reloaded");
            shaping.reload(rules);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(file = %config.delivery.shaping_file.display(), problems = format!("{e:#}"),
                "shaping file reload failed; the rules in force are kept");
        }
    }
}

/// Keeps the actions in force in `file` (`data_dir/shaping_actions.json`), so that a
/// suspension outlives a restart: those kept are restored now, and the file is written
/// again (whole, then renamed into place) within a second of each change.
fn keep_across_restarts(shaping: &Arc<Shaping>, file: std::path::PathBuf) {
    match std::fs::read(&file) {
        Ok(bytes) => match serde_json::from_slice::<Vec<Action>>(&bytes) {
            Ok(kept) => shaping.restore(kept),
            Err(e) => tracing::error!(file = %file.display(), error = %e,
                "the shaping actions kept before the restart are unreadable; none is restored"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!(file = %file.display(), error = %e,
            "cannot read the shaping actions kept before the restart"),
    }
    let shaping = shaping.clone();
    actix::spawn(async move {
        let mut saved = shaping.version();
        let mut failing = false;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            // Listing drops the actions that ended, which is a change too.
            let actions = shaping.list();
            let version = shaping.version();
            if version == saved {
                continue;
            }
            let written = serde_json::to_vec(&actions)
                .map_err(std::io::Error::other)
                .and_then(|bytes| write_whole(&file, &bytes));
            match written {
                Ok(()) => {
                    saved = version;
                    failing = false;
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(file = %file.display(), error = %e,
                        "cannot keep the shaping actions for the next start");
                }
                Err(_) => {}
            }
        }
    });
}

/// Writes `bytes` to `file` through a temporary file renamed over it.
fn write_whole(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = file.with_extension("json.new");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, file)
}

/// Shares `shaping`'s actions with the fleet through Redis, when `redis.url` is set and
/// `redis.shaping` is on.
fn share_with_fleet(shaping: &Arc<Shaping>, config: &Config) -> anyhow::Result<()> {
    if !config.redis.shaping {
        return Ok(());
    }
    let Some(backend) = config.redis.backend()? else {
        return Ok(());
    };
    let (changes, received) = mpsc::unbounded_channel();
    shaping.on_change(Box::new(move |change| {
        let _ = changes.send(change);
    }));
    shaping.share_connections_with_fleet();
    actix::spawn(sync(shaping.clone(), backend.clone(), received));
    // Unique per process: nodes of a fleet often share a host name, and in containers
    // a process id.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let node = format!(
        "{}:{}:{started:x}",
        config.smtp.hostname,
        std::process::id()
    );
    actix::spawn(renew_leases(shaping.clone(), backend, node));
    Ok(())
}

/// Four times a second, renews this node's connection leases on each path from an
/// egress source with a connection limit: its share is what Redis grants (the path's
/// limit less the other nodes' leases). With Redis out of reach, local limits apply
/// alone: at the first error every share is lifted until the next round.
async fn renew_leases(shaping: Arc<Shaping>, backend: RedisBackend, node: String) {
    let mut tick = tokio::time::interval(FLEET_POLL / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for path in shaping.sourced_paths() {
            let Some(max) = path.max_connections() else {
                path.set_fleet_share(usize::MAX);
                continue;
            };
            let key = backend.key(
                "lease",
                &format!("{}|{}", path.key().source, path.key().site),
            );
            let want = path.wanted().min(max);
            if want == 0 && path.fleet_share() == 0 {
                // Idle, and nothing held: nothing to renew.
                continue;
            }
            match backend.lease(&key, &node, want, max, LEASE_TTL_MS).await {
                Ok(granted) => path.set_fleet_share(granted),
                Err(_) => {
                    for path in shaping.sourced_paths() {
                        path.set_fleet_share(usize::MAX);
                    }
                    break;
                }
            }
        }
    }
}

/// The fleet loop: writes this node's changes, then reads the fleet's actions back.
async fn sync(
    shaping: Arc<Shaping>,
    backend: RedisBackend,
    mut changes: mpsc::UnboundedReceiver<ActionChange>,
) {
    let key = backend.key("shaping", "actions");
    // Written here but not yet in Redis (it was down): kept, and written again.
    let mut unwritten: Vec<Action> = Vec::new();
    let mut uncleared: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(FLEET_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            change = changes.recv() => match change {
                Some(change) => Some(change),
                None => return,
            },
            _ = tick.tick() => None,
        };
        // Every change queued meanwhile, in order, before one read of the hash.
        let mut pending = first.into_iter().collect::<Vec<_>>();
        while let Ok(change) = changes.try_recv() {
            pending.push(change);
        }
        for change in pending {
            match change {
                ActionChange::Taken(action) => {
                    unwritten.retain(|a| a.id() != action.id());
                    uncleared.retain(|id| *id != action.id());
                    unwritten.push(action);
                }
                ActionChange::Cleared(ids) => {
                    unwritten.retain(|a| !ids.contains(&a.id()));
                    uncleared.extend(ids);
                }
            }
        }
        let mut still = Vec::new();
        for action in unwritten.drain(..) {
            let json = serde_json::to_vec(&action).unwrap_or_default();
            if backend
                .hash_set(&key, &action.id(), json, FLEET_TTL_S)
                .await
                .is_err()
            {
                still.push(action);
            }
        }
        unwritten = still;
        if backend.hash_delete(&key, &uncleared).await.is_ok() {
            uncleared.clear();
        }
        let Ok(fields) = backend.hash_all(&key).await else {
            continue;
        };
        let mut fleet = Vec::new();
        for (field, value) in fields.into_iter().take(MAX_FLEET_ACTIONS) {
            if value.len() > MAX_ACTION_BYTES || uncleared.contains(&field) {
                continue;
            }
            // An entry this version cannot read (another version's) is left to its
            // writer and the hash's expiry.
            let Ok(action) = serde_json::from_slice::<Action>(&value) else {
                continue;
            };
            if action.ended() {
                // Gone, unless another node wrote it again since it was read.
                let _ = backend.hash_delete_if(&key, &field, &value).await;
            } else {
                fleet.push(action);
            }
        }
        shaping.replace_fleet(fleet, &unwritten);
    }
}
