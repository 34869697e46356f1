//! `[log]`: text or JSON log lines, and the filter that chooses them.

use hermod_actors::store::transcripts::Transcripts;

use super::debug_peers::{DebugPeers, NotAPeer};
use super::section::{Key, section};
use super::{ConfigIssue, Section};

section! {
    /// `[log]`.
    pub struct LogConfig {
        /// One JSON object per line instead of text.
        pub json: bool = false
            => (restart, ["SMTP_ENABLE_JSON_LOGGING"]),
        /// A tracing filter such as `info` or `hermod=debug`.
        pub level: String = "info".into()
            => (restart, ["SMTP_LOG_LEVEL"]),
        /// Client and next-hop addresses, networks and domains whose events are logged
        /// at DEBUG whatever `level` says (Postfix's `debug_peer_list`).
        pub debug_peers: Vec<String> = Vec::new()
            => (live, []),
        /// Client addresses, networks and domains whose SMTP sessions are recorded line by
        /// line (AUTH secrets and message data left out) into `queue.data_dir/transcripts`.
        pub transcript_peers: Vec<String> = Vec::new()
            => (restart, []),
    }
}

impl LogConfig {
    /// Where listed peers' sessions are recorded; `None` when none is listed.
    pub fn transcripts(&self, data_dir: &std::path::Path) -> Option<Transcripts> {
        let peers = DebugPeers::parse(&self.transcript_peers).ok()?;
        (!peers.is_empty()).then(|| Transcripts {
            peers,
            dir: data_dir.join("transcripts"),
        })
    }

    /// `debug_peers` read; validated before start and before a reload applies it.
    pub fn debug_peers(&self) -> Result<DebugPeers, NotAPeer> {
        DebugPeers::parse(&self.debug_peers)
    }
}

impl Section for LogConfig {
    const KEYS: &'static [Key] = LogConfig::DECLARED;
    const NAME: &'static str = "log";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if let Err(e) = self.debug_peers() {
            issues.push(ConfigIssue::new("log.debug_peers", e));
        }
        if let Err(e) = DebugPeers::parse(&self.transcript_peers) {
            issues.push(ConfigIssue::new("log.transcript_peers", e));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            issues.push(ConfigIssue::new("log.level", e.to_string()));
        } else if let Some(problem) = level_problem(&self.level) {
            issues.push(ConfigIssue::new("log.level", problem));
        }
    }
}

/// The log levels a filter directive may name.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Why a log filter that parses would still hide hermod's own lines: a bare word that is
/// neither a level nor one of hermod's modules (`verbose` is read as a module name, so
/// nothing of hermod's would be logged at all).
fn level_problem(filter: &str) -> Option<String> {
    let ours = |target: &str| {
        ["hermod", "hermod_actors", "smtp_blaster"]
            .iter()
            .any(|crate_name| {
                target == *crate_name || target.starts_with(&format!("{crate_name}::"))
            })
    };
    let mut enables_ours = false;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive.split_once('=') {
            Some((target, level)) => {
                if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                    return Some(format!(
                        "{level:?} in {directive:?} is not a level (use off, error, warn, info, debug or trace)"
                    ));
                }
                enables_ours |= ours(target) && !level.eq_ignore_ascii_case("off");
            }
            None if LEVELS.contains(&directive.to_ascii_lowercase().as_str()) => {
                enables_ours |= !directive.eq_ignore_ascii_case("off");
            }
            None if ours(directive) => enables_ours = true,
            None => {
                return Some(format!(
                    "{directive:?} is not a level (use off, error, warn, info, debug or trace, or target=level)"
                ));
            }
        }
    }
    (!enables_ours && !filter.trim().eq_ignore_ascii_case("off"))
        .then(|| format!("{filter:?} enables none of hermod's log lines"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_level_that_hides_hermod_is_refused() {
        assert!(level_problem("info").is_none());
        assert!(level_problem("info,hermod_actors=debug").is_none());
        assert!(level_problem("warn,sled=off").is_none());
        assert!(level_problem("hermod_actors::outbound::delivery=debug").is_none());
        assert!(level_problem("off").is_none());
        assert!(level_problem("verbose").unwrap().contains("not a level"));
        assert!(
            level_problem("info,hermod=loud")
                .unwrap()
                .contains("not a level")
        );
        assert!(
            level_problem("sled=debug")
                .unwrap()
                .contains("enables none")
        );
    }
}
