//! Wiring of a running hermod: the spool and its commit thread, the Queue and Listener
//! on the main arbiter, the session arbiters (`smtp.workers`; Sessions and Delivery
//! actors spread over them), and the drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::Context as _;
use hermod_actors::events::bounce_rules::SharedBounceRules;
use hermod_actors::inbound::listener::{Admission, Drain, Listener, SessionContextTemplate};
use hermod_actors::outbound::tls_report::TlsReports;
use hermod_actors::policy::mail_loop::LoopInputs;
use hermod_actors::queue::{self, Queue};
use hermod_actors::store::body_file::BodyFiles;
use hermod_actors::store::committer::Committer;
use hermod_actors::store::spool::Spool;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::admin::{AdminListeners, AdminState};
use crate::config::reload;
use crate::config::smtp::SessionShared;
use crate::config::{Config, ConfigIssue};
use crate::logging::recent::RecentProblems;

mod descriptors;
mod engine;
mod events;
mod listening;
mod policies;
mod security;
mod shaping;
mod spool;

pub use descriptors::DescriptorSplit;
use engine::{Engine, admission_at_start, session_settings, start_listeners};
use listening::{Listening, listening_sockets};
use spool::{open_spool, or_full_disk};

/// Reads the configuration again, for a reload: the same file and environment as at
/// start, validated the same way.
pub type Reloader = Box<dyn Fn() -> Result<Config, Vec<ConfigIssue>>>;

/// Runs hermod until `shutdown` resolves, then drains: stops accepting, lets sessions in
/// flight finish (bounded by `smtp.drain_timeout`), flushes the spool and returns. On
/// SIGHUP it applies what `reload` reads (see [`crate::reload`]).
pub fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + 'static,
    reload: Reloader,
    recent: RecentProblems,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.queue.data_dir).with_context(|| {
        format!(
            "creating queue.data_dir {}",
            config.queue.data_dir.display()
        )
    })?;
    let sled = open_spool(&config)?;
    let body_files = sled.body_files();
    // A full disk that sled has seen stops hermod like SIGTERM does (see
    // `SledSpool::stuck_on_full_disk`); the exit code then says so.
    let spool_stuck = sled.stuck_on_full_disk();
    let (shutdown, stopped_by_full_disk) = or_full_disk(shutdown, sled.stuck_on_full_disk());
    let secured = security::open(&config, &sled)?;
    let db = sled.db().clone();
    let spool: Arc<dyn Spool> = Arc::new(sled);
    let workers = config.smtp.arbiters();
    let (sockets, bound) = listening_sockets(&config, workers)?;

    // Installed before any actor records a metric.
    let seen = crate::admin::Seen {
        prometheus: install_metrics(&config)?,
        recent,
    };
    let traces = crate::logging::traces::install(&config)?;
    let system = System::new();
    let spooled = Spooled {
        spool: spool.clone(),
        body_files,
        stuck: spool_stuck,
        db,
    };
    let listening = Listening {
        sockets,
        addrs: bound.iter().map(|(addr, _)| *addr).collect(),
    };
    let started = system.block_on(start(
        config, workers, spooled, secured, listening, shutdown, reload, seen,
    ));
    if let Err(e) = started {
        // Actors already started (the Queue, the Listeners) must stop inside the runtime:
        // dropping it with them alive panicked ("there is no reactor running") before
        // the error could be printed.
        System::current().stop();
        let _ = system.run();
        if let Some(traces) = traces {
            traces.stop();
        }
        return Err(e);
    }
    for (addr, kind) in &bound {
        tracing::info!(smtp_addr = %addr, kind = kind.name(), workers, "listening");
    }
    // For a service manager that waits (systemd's Type=notify); nothing without one.
    notify_service_manager(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("accepting mail"),
    ]);
    let ran = system.run().context("actor system failed");
    let full_disk = stopped_by_full_disk.load(std::sync::atomic::Ordering::Relaxed);
    finish(ran, full_disk, spool.as_ref(), traces)
}

/// After the actor system stopped (`ran`): the spool's last flush (not on a full disk),
/// then the traces still queued, which may wait on a collector.
fn finish(
    ran: anyhow::Result<()>,
    full_disk: bool,
    spool: &dyn Spool,
    traces: Option<crate::logging::traces::TraceExport>,
) -> anyhow::Result<()> {
    let flushed = match ran.is_ok() && !full_disk {
        true => spool.flush().context("final spool flush"),
        false => Ok(()),
    };
    if let Some(traces) = traces {
        traces.stop();
    }
    ran?;
    if full_disk {
        // Every acknowledged message was flushed before its 250; what this flush would
        // have added is delivery state, which a restart redoes.
        anyhow::bail!(
            "stopped because the spool's disk is full (sled cannot write again in this process): free space and start hermod again"
        );
    }
    flushed?;
    tracing::info!("hermod stopped; spool flushed");
    Ok(())
}

/// The Prometheus recorder with every metric described, when `admin.metrics` is on.
fn install_metrics(config: &Config) -> anyhow::Result<Option<PrometheusHandle>> {
    Ok(match config.admin.metrics {
        true => {
            let handle =
                crate::admin::metrics::install().context("installing the metrics recorder")?;
            describe_metrics();
            Some(handle)
        }
        false => None,
    })
}

/// The opened spool and what goes with it.
struct Spooled {
    spool: Arc<dyn Spool>,
    body_files: Arc<BodyFiles>,
    /// Turns true when sled has failed with a full disk.
    stuck: watch::Receiver<bool>,
    /// The database, for the other trees in it (the greylist).
    db: sled::Db,
}

#[allow(clippy::too_many_arguments)]
async fn start(
    config: Config,
    workers: usize,
    spooled: Spooled,
    secured: security::Secured,
    listening: Listening,
    shutdown: impl Future<Output = ()> + 'static,
    reload: Reloader,
    seen: crate::admin::Seen,
) -> anyhow::Result<()> {
    // Installed first: SIGHUP's default action would end the process.
    let hangups = hangups()?;
    let events = events::Events::start(&config, &spooled.db)?;
    let engine = Engine::start(&config, workers, &spooled, &listening.addrs, &events).await?;
    let (committer, queue) = (engine.committer, engine.queue);
    let (admission, maintenance_file) = admission_at_start(&config);
    let (draining, draining_rx) = watch::channel(false);
    let (policies, policy_arbiter) = policies::start(&config, &spooled.db)?;
    let shared = SessionShared {
        policies: policies.clone(),
        ..engine.shared
    };
    let intake = events
        .intake(&config, &committer, queue.clone().recipient())
        .with_egress(engine.egress.clone());
    let report_counts = start_tls_reports(&config, engine.tls_reports, &intake, &shared)?;
    let template = session_template(&config, &shared, &spooled, intake, draining_rx, &secured);
    other_doors(&config, &template, &shared, &secured)?;
    let listeners = start_listeners(&engine.arbiters, listening.sockets, &admission, &template);
    let running = Running {
        config,
        tls: secured.tls,
        shared,
        loop_inputs: engine.loop_inputs,
        body_files: spooled.body_files,
        queue: queue.clone(),
        listeners: listeners.clone(),
        admission: admission.clone(),
        bounce_rules: events.rules,
        shaping: engine.shaping.clone(),
    };
    start_admin(
        &running.config,
        AdminState {
            queue: queue.clone(),
            spool: spooled.spool,
            admission: admission.clone(),
            disk: engine.disk,
            spool_stuck: spooled.stuck,
            draining: draining.subscribe(),
            started: Instant::now(),
            seen,
            token: running.config.admin.read_token()?,
            token_for_reads: false,
            maintenance_file,
            suspensions_file: engine.suspensions_file,
            destinations: Default::default(),
            users: secured.users,
            auth: secured.auth,
            shaping: engine.shaping,
        },
    )?;
    let drain_timeout = running.config.smtp.drain_timeout;
    actix::spawn(running.reload_on_hangup(hangups, reload));
    actix::spawn(async move {
        shutdown.await;
        drain(&listeners, &draining, &admission, &queue, drain_timeout).await;
        commit_delivery_state(&committer).await;
        // The last seconds of TLS report counts, for the next start.
        if let Some(counts) = &report_counts {
            counts.flush().await;
        }
        for arbiter in engine.extra.iter().chain(&policy_arbiter) {
            arbiter.stop();
        }
        drop(queue);
        System::current().stop();
    });
    Ok(())
}

/// Starts what sends the TLS reports the deliveries count (`[tls_report]`), through
/// `intake`, when there are counts; they are returned for the flush at stop.
fn start_tls_reports(
    config: &Config,
    counts: Option<engine::ReportCounts>,
    intake: &queue::Intake,
    shared: &SessionShared,
) -> anyhow::Result<Option<Arc<TlsReports>>> {
    let Some(engine::ReportCounts {
        counts: reports,
        resolver,
        security,
    }) = counts
    else {
        return Ok(None);
    };
    let hostname = &config.smtp.hostname;
    let from = config.tls_report.from_address(hostname);
    let sender = hermod_actors::queue::tls_reports::TlsReportSender {
        reports: reports.clone(),
        resolver: resolver.as_ref().clone(),
        intake: intake.clone(),
        ids: shared.room.ids.clone(),
        reporter: config.tls_report.reporter(hostname),
        dkim: report_signer(config, &from)?,
        from,
        https_tls: security.verified_config(),
        https_any_certificate: security.any_certificate_config(),
        private_destinations: config.tls_report.private_destinations,
        tick: config.tls_report.tick(),
    };
    actix::spawn(Arc::new(sender).run());
    Ok(Some(reports))
}

/// DKIM signing of the TLS reports sent by mail, with the keys of `from`'s domain
/// (`[dkim]`); `None` when there are none.
fn report_signer(
    config: &Config,
    from: &str,
) -> anyhow::Result<Option<hermod_actors::queue::tls_reports::DkimSign>> {
    let domain = from
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let Some(keys) = config.dkim.signing_keys()?.remove(&domain) else {
        tracing::info!(domain = %domain, "TLS reports by mail are not DKIM-signed: no [dkim] key for their From domain");
        return Ok(None);
    };
    Ok(Some(Box::new(move |message: &[u8]| {
        hermod_actors::policy::dkim_sign::sign(message, &domain, &keys).map_err(|e| e.to_string())
    })))
}

/// The Queue's last delivery states go to the spool writer without waiting: the final
/// flush must find them written.
async fn commit_delivery_state(committer: &Committer) {
    if let Err(e) = committer.commit().await {
        tracing::error!(error = %e, "flushing delivery state failed");
    }
}

/// Starts the admin HTTP server when `admin.listen` is set, and the upkeep of the
/// metrics recorder.
fn start_admin(config: &Config, mut state: AdminState) -> anyhow::Result<()> {
    if let Some(handle) = state.seen.prometheus.clone() {
        actix::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                handle.run_upkeep();
            }
        });
    }
    let listen = config.admin.listen;
    state.token_for_reads = listen.is_some_and(|l| !l.ip().is_loopback());
    let at = AdminListeners {
        listen,
        metrics: match (listen, config.admin.metrics_port) {
            (Some(listen), port) if port != 0 => Some(SocketAddr::new(listen.ip(), port)),
            _ => None,
        },
        socket: config.admin.socket_path(&config.queue.data_dir),
    };
    let bound = crate::admin::start(state, at)?;
    for addr in bound.addrs {
        tracing::info!(admin_addr = %addr, "admin listening");
    }
    if let Some(socket) = bound.socket {
        tracing::info!(admin_socket = %socket.display(), "admin listening on the local socket (no token needed there for root and hermod's user)");
    }
    Ok(())
}

/// A clean stop, bounded by `drain_timeout`: no new connections and no new deliveries;
/// open sessions finish (then get `421 4.3.2`), and deliveries under way finish and are
/// recorded, so the next start sends nothing twice.
async fn drain(
    listeners: &[Addr<Listener>],
    draining: &watch::Sender<bool>,
    admission: &Admission,
    queue: &Addr<Queue>,
    drain_timeout: Duration,
) {
    tracing::info!("shutting down: no new connections; draining sessions");
    notify_service_manager(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("draining"),
    ]);
    let deadline = Instant::now() + drain_timeout;
    for listener in listeners {
        let _ = listener.send(Drain).await;
    }
    let _ = draining.send(true);
    let mut deliveries = queue.send(queue::StopDispatch).await.unwrap_or(0);
    let mut sessions = admission.active();
    while (sessions > 0 || deliveries > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sessions = admission.active();
        deliveries = queue
            .send(queue::GetStats)
            .await
            .map_or(0, |stats| stats.in_flight);
    }
    if sessions > 0 {
        tracing::warn!(sessions, "drain timeout: closing sessions still open");
    }
    if deliveries > 0 {
        tracing::warn!(
            messages = deliveries,
            "drain timeout: cutting deliveries still under way; they are retried at the next start, so their next hop may get them twice"
        );
    }
}

/// What every Session of every Listener starts with.
fn session_template(
    config: &Config,
    shared: &SessionShared,
    spooled: &Spooled,
    intake: queue::Intake,
    draining: watch::Receiver<bool>,
    secured: &security::Secured,
) -> SessionContextTemplate {
    let sessions = session_settings(config, shared, &spooled.body_files);
    SessionContextTemplate {
        settings: sessions.settings,
        timeouts: sessions.timeouts,
        intake,
        draining,
        loops: shared.loops.subscribe(),
        tls: secured.tls.clone(),
        auth: secured.auth.clone(),
        policies: shared.policies.clone(),
        transcripts: config.log.transcripts(&config.queue.data_dir).map(Arc::new),
    }
}

/// What takes mail besides the SMTP listeners, and the certificate they share: the
/// certificate's renewal check, and the HTTP injection API when it is on.
fn other_doors(
    config: &Config,
    template: &SessionContextTemplate,
    shared: &SessionShared,
    secured: &security::Secured,
) -> anyhow::Result<()> {
    security::keep_certificate_fresh(secured.tls.as_ref(), config);
    crate::inject::start(
        config,
        crate::inject::InjectEngine {
            intake: template.intake.clone(),
            room: shared.room.clone(),
            policies: shared.policies.clone(),
            tls: secured.tls.clone(),
        },
    )?;
    Ok(())
}

/// The SIGHUP stream.
fn hangups() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")
}

/// The running configuration and the actors a reload reaches.
struct Running {
    config: Config,
    /// The server's certificate, read again on every reload.
    tls: Option<Arc<hermod_actors::inbound::tls::ServerTls>>,
    shared: SessionShared,
    loop_inputs: watch::Sender<LoopInputs>,
    body_files: Arc<BodyFiles>,
    queue: Addr<Queue>,
    listeners: Vec<Addr<Listener>>,
    admission: Arc<Admission>,
    /// The bounce rules the intake classifies returned DSNs with.
    bounce_rules: SharedBounceRules,
    /// The shaping, whose file is read again on SIGHUP.
    shaping: Option<Arc<hermod_actors::outbound::shaping::Shaping>>,
}

impl Running {
    /// Applies the configuration `reload` reads on every SIGHUP, for as long as hermod
    /// runs. A file that does not load or validate changes nothing.
    async fn reload_on_hangup(
        mut self,
        mut hangups: tokio::signal::unix::Signal,
        reload: Reloader,
    ) {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            if let Some(tls) = &self.tls {
                // A broken new pair keeps the old one; the reason is logged.
                let _ = tls.reload();
            }
            match reload() {
                Ok(config) => self.apply(config),
                Err(issues) => {
                    metrics::counter!("config_reloads_total", "result" => "failed").increment(1);
                    let problems: Vec<String> = issues.iter().map(ToString::to_string).collect();
                    tracing::error!(
                        problems = problems.join("; "),
                        "configuration reload failed; the running configuration is kept"
                    );
                }
            }
        }
    }

    fn apply(&mut self, config: Config) {
        let router_and_rules = config
            .delivery
            .router()
            .and_then(|router| Ok((router, config.bounce.rules()?)));
        let (router, bounce_rules) = match router_and_rules {
            Ok(both) => both,
            Err(e) => {
                metrics::counter!("config_reloads_total", "result" => "failed").increment(1);
                tracing::error!(
                    problems = format!("{e:#}"),
                    "configuration reload failed; the running configuration is kept"
                );
                return;
            }
        };
        let changed = reload::changed_keys(&self.config, &config);
        let (restart, live): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|k| reload::needs_restart(k));
        if !restart.is_empty() {
            tracing::warn!(
                keys = restart.join(","),
                "configuration changed where a reload cannot apply it; these keep their running values until a restart"
            );
        }
        let sessions = session_settings(&config, &self.shared, &self.body_files);
        for listener in &self.listeners {
            listener.do_send(sessions.clone());
        }
        self.admission.set_limits(config.smtp.connection_limits());
        if let Some(shaping) = &self.shaping {
            // The running file (a changed `delivery.shaping_file` waits for a restart).
            shaping::reload(shaping, &self.config);
        }
        crate::logging::debug_peers::set(config.log.debug_peers().unwrap_or_default());
        let _ = self
            .loop_inputs
            .send((config.relay.domains.clone(), router.clone()));
        self.queue.do_send(queue::Reconfigure {
            settings: config.queue.queue_settings(
                &config.smtp.hostname,
                config.delivery.hop_policy(config.queue.max_retry_interval),
                bounce_rules.clone(),
            ),
            router,
        });
        self.bounce_rules.replace(bounce_rules);
        metrics::counter!("config_reloads_total", "result" => "applied").increment(1);
        tracing::info!(changed = live.join(","), "configuration reloaded");
        // Keys that need a restart keep their running values, so the next reload
        // compares against what really runs.
        self.config = reload::keep_running_values(&self.config, config, &restart);
    }
}

/// Tells systemd (through `NOTIFY_SOCKET`) how hermod is doing; without a service
/// manager there is no socket and nothing to do.
fn notify_service_manager(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "config_reloads_total",
        "Configuration reloads (SIGHUP), by result (applied, failed)."
    );
    for result in ["applied", "failed"] {
        metrics::counter!("config_reloads_total", "result" => result).increment(0);
    }
}
