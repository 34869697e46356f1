//! The engine's parts, one step each of the wiring's start: the Delivery actors' factory,
//! the free-space watch, the Queue with what the spool holds, the Listeners, the
//! Sessions' settings and the mail-loop check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use hermod_actors::core::disk_space::{Ballast, DiskSpace};
use hermod_actors::core::id::QueueIdGenerator;
use hermod_actors::inbound::listener::{self, Admission, Listener, SessionContextTemplate};
use hermod_actors::outbound::delivery::Delivery;
use hermod_actors::outbound::mx::MxResolver;
use hermod_actors::outbound::routing::Router;
use hermod_actors::outbound::tls::OutboundSecurity;
use hermod_actors::outbound::tls_report::TlsReports;
use hermod_actors::policy::mail_loop::{self, LoopCheck, LoopInputs, LoopingDomains};
use hermod_actors::queue::{self, Queue};
use hermod_actors::store::body_file::BodyFiles;
use hermod_actors::store::committer::Committer;
use hermod_actors::store::room::IntakeRoom;
use hermod_actors::store::spool::Spool;
use tokio::sync::watch;

use super::descriptors::connection_budget;
use super::listening;
use crate::config::Config;
use crate::config::smtp::SessionShared;

/// What the Queue starts a Delivery actor for a next hop with: the actors go round the
/// arbiters, all with the same settings and resolver.
pub(super) fn delivery_factory(
    config: &Config,
    arbiters: &[ArbiterHandle],
    resolver: &Arc<MxResolver>,
    db: &sled::Db,
    security: OutboundSecurity,
    tls_reports: Option<Arc<TlsReports>>,
    shaping: Option<Arc<hermod_actors::outbound::shaping::Shaping>>,
) -> anyhow::Result<queue::DeliveryFactory> {
    let mta_sts = config
        .delivery
        .mta_sts(resolver, &security, db, tls_reports.clone())
        .context("opening the spool's MTA-STS policies")?;
    let resolver = resolver.clone();
    let delivery_settings = Arc::new(hermod_actors::outbound::job::DeliverySettings {
        transcripts: config.log.transcripts(&config.queue.data_dir).map(Arc::new),
        mta_sts,
        tls_reports,
        shaping,
        dane: config
            .delivery
            .dane()
            .context("DANE's DNSSEC-validating resolver")?,
        ..config.delivery.delivery_settings(
            &config.smtp.hostname,
            connection_budget(config),
            security,
        )
    });
    let delivery_arbiters = arbiters.to_vec();
    let next = std::cell::Cell::new(0usize);
    Ok(Box::new(
        move |hop: &hermod_actors::outbound::routing::NextHop, link| {
            let arbiter = &delivery_arbiters[next.get() % delivery_arbiters.len()];
            next.set(next.get().wrapping_add(1));
            let (hop, settings, resolver) =
                (hop.clone(), delivery_settings.clone(), resolver.clone());
            tracing::debug!(next_hop = %hop, "starting delivery actor");
            Delivery::start_in_arbiter(arbiter, move |_| {
                Delivery::new(hop, settings, resolver, link)
            })
            .recipient()
        },
    ))
}

/// Watches the spool's free space against `queue.min_free_space` once a second.
pub(super) fn watch_disk(config: &Config, spool: &Arc<dyn Spool>) -> Arc<DiskSpace> {
    let disk = Arc::new(DiskSpace::default());
    let spool_space = spool.clone();
    disk.watch(
        config.queue.data_dir.clone(),
        config.queue.min_free_space,
        Duration::from_secs(1),
        Ballast::new(&config.queue.data_dir),
        Box::new(move || spool_space.reusable_bytes()),
    );
    disk
}

/// Starts `queue` with what the spool holds, and the suspensions kept in
/// `suspensions_file` in force before it dispatches anything.
pub(super) fn start_queue(
    mut queue: Queue,
    spool: &Arc<dyn Spool>,
    suspensions_file: &std::path::Path,
) -> anyhow::Result<Addr<Queue>> {
    // Destinations suspended before the restart stay suspended until their end.
    for suspend in crate::admin::suspensions::restore(suspensions_file) {
        queue.suspend(suspend);
    }
    let recovered = queue.recover(spool.as_ref())?;
    if recovered > 0 {
        tracing::info!(messages = recovered, "recovered messages from the spool");
    }
    Ok(queue.start())
}

/// One Listener per arbiter, each on its share of the listening sockets.
pub(super) fn start_listeners(
    arbiters: &[ArbiterHandle],
    sockets: Vec<listening::PerArbiter>,
    admission: &Arc<Admission>,
    template: &SessionContextTemplate,
) -> Vec<Addr<Listener>> {
    arbiters
        .iter()
        .zip(sockets)
        .map(|(arbiter, sockets)| {
            let (admission, template) = (admission.clone(), template.clone());
            Listener::start_in_arbiter(arbiter, move |_| {
                Listener::new(sockets, admission, template)
            })
        })
        .collect()
}

/// What a Session is started with: `[smtp]` builds it, with the relay policy, the
/// postmaster and the large-body threshold from their own sections.
pub(super) fn session_settings(
    config: &Config,
    shared: &SessionShared,
    body_files: &Arc<BodyFiles>,
) -> listener::Reconfigure {
    config.smtp.sessions(
        config.relay.policy(),
        config.queue.postmaster(),
        config.queue.spill(body_files, &shared.room),
        config.security(),
        shared,
    )
}

/// Finds the relay domains whose mail would loop back to us before the first
/// connection is taken (within the DNS timeout; past it the check goes on in the
/// background), then keeps checking; a reload sends new inputs.
pub(super) async fn check_loops(
    config: &Config,
    router: &Router,
    resolver: &Arc<MxResolver>,
    listen: Vec<SocketAddr>,
) -> (Arc<LoopingDomains>, watch::Sender<LoopInputs>) {
    let loops = Arc::new(LoopingDomains::default());
    let first = mail_loop::find_loops(LoopCheck {
        domains: &config.relay.domains,
        router,
        resolver,
        mx_port: config.delivery.mx_port,
        listen: &listen,
    });
    let (inputs, inputs_rx) = watch::channel((config.relay.domains.clone(), router.clone()));
    match tokio::time::timeout(config.delivery.dns_timeout * 2, first).await {
        Ok(found) => loops.replace(found),
        Err(_) => inputs.send_modify(|_| {}),
    }
    actix::spawn(mail_loop::keep_checking(
        inputs_rx,
        resolver.clone(),
        config.delivery.mx_port,
        listen,
        loops.clone(),
    ));
    (loops, inputs)
}

/// The TLS report counts the deliveries keep, with what their sender needs from the
/// engine: the resolver `_smtp._tls` records are looked up through, and the outbound TLS
/// settings (built once) its HTTPS POSTs use.
pub(super) struct ReportCounts {
    pub(super) counts: Arc<TlsReports>,
    pub(super) resolver: Arc<MxResolver>,
    pub(super) security: OutboundSecurity,
}

/// The engine as started: its arbiters, the commit threads, the Queue with what the
/// spool held, and what every Session shares.
pub(super) struct Engine {
    /// The arbiters started besides the main one (stopped last).
    pub(super) extra: Vec<ArbiterHandle>,
    /// Every arbiter that takes sessions and deliveries, the main one first.
    pub(super) arbiters: Vec<ArbiterHandle>,
    pub(super) committer: Committer,
    /// Where a reload sends the mail-loop check its new inputs.
    pub(super) loop_inputs: watch::Sender<LoopInputs>,
    pub(super) disk: Arc<DiskSpace>,
    /// Where suspensions are kept across restarts.
    pub(super) suspensions_file: std::path::PathBuf,
    pub(super) queue: Addr<Queue>,
    /// What Sessions share, without the policy actors (started after).
    pub(super) shared: SessionShared,
    /// The TLS report counts the deliveries keep (`tls_report.enabled`), for the sender
    /// started once the intake exists; with the resolver it looks records up through.
    pub(super) tls_reports: Option<ReportCounts>,
    /// Sites, budgets and automation (`delivery.shaping_file`), for reloads, the admin
    /// API and the fleet.
    pub(super) shaping: Option<Arc<hermod_actors::outbound::shaping::Shaping>>,
    /// The egress pools, for the intake (an `X-Hermod-Pool:` field names one).
    pub(super) egress: Option<Arc<hermod_actors::outbound::egress::Egress>>,
}

impl Engine {
    /// Starts the arbiters, the commit threads, the mail-loop check, the free-space
    /// watch and the Queue (which recovers the spool).
    pub(super) async fn start(
        config: &Config,
        workers: usize,
        spooled: &super::Spooled,
        listen: &[SocketAddr],
        events: &super::events::Events,
    ) -> anyhow::Result<Engine> {
        // The main arbiter (Queue, Listener) takes sessions and deliveries too; each further
        // worker is one more arbiter thread.
        let extra: Vec<ArbiterHandle> = (1..workers).map(|_| Arbiter::new().handle()).collect();
        let arbiters: Vec<ArbiterHandle> = std::iter::once(Arbiter::current())
            .chain(extra.iter().cloned())
            .collect();
        let spool = &spooled.spool;
        let ids = Arc::new(QueueIdGenerator::new());
        let committer = Committer::start_with_events(spool.clone(), events.log.clone());

        let router = config.delivery.router()?;
        let resolver = Arc::new(config.delivery.resolver()?);
        let (loops, loop_inputs) = check_loops(config, &router, &resolver, listen.to_vec()).await;
        let tls_reports = config
            .tls_report
            .counts(&spooled.db)
            .context("opening the spool's TLS report counts")?;
        let security = config.delivery.security()?;
        let shaping = super::shaping::start(config)?;
        let factory = delivery_factory(
            config,
            &arbiters,
            &resolver,
            &spooled.db,
            security.clone(),
            tls_reports.clone(),
            shaping.clone(),
        )?;

        let disk = watch_disk(config, spool);
        let suspensions_file = config.queue.data_dir.join("suspensions.json");
        let queue_settings = config.queue.queue_settings(
            &config.smtp.hostname,
            config.delivery.hop_policy(config.queue.max_retry_interval),
            events.rules.current(),
        );
        let mut queue = Queue::new(
            queue_settings,
            committer.clone(),
            ids.clone(),
            router,
            factory,
        );
        let egress = egress(config)?;
        queue = shaped(queue, shaping.as_ref(), egress.as_ref());
        let queue = start_queue(queue, spool, &suspensions_file)?;
        Ok(Engine {
            extra,
            arbiters,
            committer,
            loop_inputs,
            shared: SessionShared {
                room: IntakeRoom {
                    space: disk.clone(),
                    ids,
                },
                loops,
                policies: Default::default(),
            },
            disk,
            suspensions_file,
            queue,
            shaping,
            egress,
            tls_reports: tls_reports.map(|counts| ReportCounts {
                counts,
                resolver,
                security,
            }),
        })
    }
}

/// `queue` with the shaping (sites suspended by automation) and the egress pools its
/// messages leave from, when they are configured.
fn shaped(
    mut queue: Queue,
    shaping: Option<&Arc<hermod_actors::outbound::shaping::Shaping>>,
    egress: Option<&Arc<hermod_actors::outbound::egress::Egress>>,
) -> Queue {
    if let Some(shaping) = shaping {
        queue = queue.with_shaping(shaping.clone());
    }
    if let Some(egress) = egress {
        queue = queue.with_egress(egress.clone());
    }
    queue
}

/// The egress pools (`[egress]`), when a message may use one.
fn egress(config: &Config) -> anyhow::Result<Option<Arc<hermod_actors::outbound::egress::Egress>>> {
    let helo_name = match config.delivery.helo_name.as_str() {
        "" => config.smtp.hostname.as_str(),
        name => name,
    };
    let egress = config
        .egress
        .egress(helo_name)
        .map_err(|e| anyhow::anyhow!("egress: {e}"))?;
    if egress.is_some() {
        tracing::info!(sources = config.egress.sources.len(), pools = config.egress.pools.len(),
            default_pool = %config.egress.default_pool, user_pools = config.egress.user_pools.len(),
            "egress pools in use");
    }
    Ok(egress)
}

/// The Listeners' admission, in maintenance mode at start if it was kept on before the
/// restart (the file in the data directory); and that file.
pub(super) fn admission_at_start(config: &Config) -> (Arc<Admission>, std::path::PathBuf) {
    let admission = Admission::new(config.smtp.connection_limits());
    let maintenance_file = config.queue.data_dir.join("maintenance");
    if maintenance_file.exists() {
        admission.set_maintenance(true);
        tracing::warn!(file = %maintenance_file.display(), "maintenance mode on at start, as it was kept before the restart; new SMTP connections are refused with 421 4.3.2 until 'hermod maintenance off'");
    }
    (admission, maintenance_file)
}
