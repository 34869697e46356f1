//! How the open-files limit is shared: inbound sessions, a reserve for the spool and
//! logs, and the outbound connection budget, which is stated at start (a WARN when it is
//! small) and by `--validate-only`.

use std::sync::Arc;

use hermod_actors::outbound::connection_budget::ConnectionBudget;

use crate::config::Config;

/// Descriptors kept out of the outbound budget for the spool (sled's files, body files
/// being written and synced), logs, listeners and the resolver.
const DESCRIPTOR_RESERVE: usize = 256;

/// The outbound connection budget: `delivery.max_connections_total`, or what the
/// open-files limit leaves after inbound sessions and the reserve. Raises the soft
/// open-files limit to the hard one first, as a mail server that keeps many connections
/// open should.
pub(super) fn connection_budget(config: &Config) -> Arc<ConnectionBudget> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-files limit to its hard limit");
        }
    }
    let open_files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let split = DescriptorSplit::of(config, open_files);
    tracing::info!(
        limit = split.outbound,
        open_files,
        inbound = split.inbound,
        reserve = DESCRIPTOR_RESERVE,
        "outbound connection budget"
    );
    if let Some(advice) = split.advice() {
        tracing::warn!(limit = split.outbound, open_files, "{advice}");
    }
    ConnectionBudget::new(split.outbound)
}

/// Outbound connection budgets under this are too small for mail to many destinations.
const SMALL_OUTBOUND_BUDGET: usize = 256;

/// How the open-files limit is shared: inbound sessions, the spool's reserve, and the
/// outbound connection budget.
pub struct DescriptorSplit {
    /// The open-files limit.
    pub open_files: u64,
    /// Descriptors inbound sessions may take (`smtp.max_connections`).
    pub inbound: usize,
    /// The outbound connection budget.
    pub outbound: usize,
    /// The budget was set by `delivery.max_connections_total`.
    pub configured: bool,
}

impl DescriptorSplit {
    /// The split `config` gets under an open-files limit of `open_files`.
    pub fn of(config: &Config, open_files: u64) -> Self {
        DescriptorSplit {
            open_files,
            inbound: config.smtp.max_connections,
            outbound: ConnectionBudget::sized(
                config.delivery.max_connections_total,
                open_files,
                config.smtp.max_connections,
                DESCRIPTOR_RESERVE,
            ),
            configured: config.delivery.max_connections_total > 0,
        }
    }

    /// The split hermod will run with: the hard open-files limit, to which it raises
    /// its soft one at start.
    pub fn at_start(config: &Config) -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let open_files = limit.maximum.or(limit.current).unwrap_or(u64::MAX);
        DescriptorSplit::of(config, open_files)
    }

    /// What to do when the outbound share is small; `None` when it is not.
    pub fn advice(&self) -> Option<String> {
        (!self.configured && self.outbound < SMALL_OUTBOUND_BUDGET).then(|| {
            format!(
                "the outbound connection budget is small: {} connections for all destinations (open-files limit {}, of which {} for inbound sessions and {} reserved for the spool and logs); raise the open-files limit (LimitNOFILE=65536 in the systemd unit, or ulimit -n 65536) or lower smtp.max_connections",
                self.outbound, self.open_files, self.inbound, DESCRIPTOR_RESERVE
            )
        })
    }
}
