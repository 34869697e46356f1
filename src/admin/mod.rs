//! The admin HTTP server (actix-web, on the actor system's own runtime): what an
//! operator and a monitoring system ask a running hermod. Each route is a file:
//! [`status_page`] (`/`, the live status page),
//! [`health`] (`/health`), [`stats`] (`/stats`, `/api/queue/stats`), [`metrics`]
//! (`/metrics`), [`maintenance`] (`/api/maintenance`), [`queue`] (`/api/queue`: list,
//! show, flush, hold, release, delete, bounce), [`suspensions`] (`/api/suspensions`), [`shaping`] (`/api/shaping`), [`users`] (`/api/users`), [`auth_lockouts`]
//! (`/api/auth/lockouts`, `/api/auth/unlock`). Requests reach the actors as
//! messages with a deadline ([`ASK_TIMEOUT`]): a busy Queue gives a 503 with the reason,
//! never a request that hangs. [`auth`] checks the bearer token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use hermod_actors::core::disk_space::DiskSpace;
use hermod_actors::inbound::listener::Admission;
use hermod_actors::queue::{GetStats, Queue, QueueStats};
use hermod_actors::store::spool::Spool;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

pub mod auth;
pub mod auth_lockouts;
pub mod destinations;
pub mod health;
pub mod local_socket;
pub mod maintenance;
pub mod metrics;
pub mod queue;
pub mod shaping;
pub mod stats;
pub mod status_page;
pub mod suspensions;
pub mod users;

/// How long a request waits for an actor's answer before it is a 503.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the Queue gave no answer to a request: the text of the 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueUnavailable {
    /// Its mailbox is closed (hermod is stopping).
    #[error("the queue is not running")]
    NotRunning,
    /// No answer within [`ASK_TIMEOUT`].
    #[error("the queue did not answer within {}s (busy)", ASK_TIMEOUT.as_secs())]
    Busy,
}

/// What the routes read and reach; shared by every admin worker.
pub struct AdminState {
    /// The Queue, for its counters and the operator's actions.
    pub queue: Addr<Queue>,
    /// The spool, read directly for listings (sled reads are thread-safe).
    pub spool: Arc<dyn Spool>,
    /// Connection counts and maintenance mode.
    pub admission: Arc<Admission>,
    /// The spool's free space and reserve.
    pub disk: Arc<DiskSpace>,
    /// True once sled has failed with a full disk (hermod is stopping).
    pub spool_stuck: watch::Receiver<bool>,
    /// True while hermod drains (SIGTERM).
    pub draining: watch::Receiver<bool>,
    /// When hermod started.
    pub started: Instant,
    /// What hermod shows of itself: its metrics and its recent warnings.
    pub seen: Seen,
    /// The bearer token; `None`: none configured (loopback only).
    pub token: Option<String>,
    /// Every request needs the token (the admin listener is not on loopback).
    pub token_for_reads: bool,
    /// Where maintenance mode is remembered across restarts when asked.
    pub maintenance_file: PathBuf,
    /// Where the suspensions in force are kept for the next start.
    pub suspensions_file: PathBuf,
    /// The last count of the queue by destination.
    pub destinations: destinations::Cache,
    /// The AUTH users (`hermod user` while hermod runs).
    pub users: hermod_actors::store::users::UserStore,
    /// AUTH's failure counts (`hermod auth lockouts|unlock`); `None` when AUTH is off.
    pub auth: Option<Arc<hermod_actors::inbound::auth::Authenticator>>,
    /// The shaping (`hermod shaping status|clear`, `/api/shaping`); `None` without a
    /// shaping file.
    pub shaping: Option<Arc<hermod_actors::outbound::shaping::Shaping>>,
}

/// What the admin server shows of hermod itself.
pub struct Seen {
    /// The Prometheus recorder's handle; `None` when `admin.metrics` is off.
    pub prometheus: Option<PrometheusHandle>,
    /// The warnings and errors logged lately (`GET /api/log/recent`).
    pub recent: crate::logging::recent::RecentProblems,
}

impl AdminState {
    /// The data directory (`queue.data_dir`), where the suspensions file lives.
    pub fn data_dir(&self) -> &std::path::Path {
        self.suspensions_file
            .parent()
            .unwrap_or(std::path::Path::new("."))
    }

    /// Sends `message` to the Queue and waits at most [`ASK_TIMEOUT`] for its answer;
    /// `Err` says why there is none (the text of the 503).
    pub async fn ask<M>(&self, message: M) -> Result<M::Result, QueueUnavailable>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        Queue: Handler<M>,
    {
        match tokio::time::timeout(ASK_TIMEOUT, self.queue.send(message)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(QueueUnavailable::NotRunning),
            Err(_) => Err(QueueUnavailable::Busy),
        }
    }

    /// The Queue's counters, within [`ASK_TIMEOUT`].
    pub async fn queue_stats(&self) -> Result<QueueStats, QueueUnavailable> {
        self.ask(GetStats).await
    }
}

/// A 503 with its reason (a text or a typed error), as JSON.
pub fn unavailable(reason: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(serde_json::json!({ "error": reason.to_string() }))
}

/// A 400 naming what was wrong with the request (a text or a typed error), as JSON.
pub fn bad_request(reason: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({ "error": reason.to_string() }))
}

/// Unix seconds now, the unit of the spool's times.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where the admin server listens.
pub struct AdminListeners {
    /// The TCP address (`admin.listen`); `None`: no TCP listener.
    pub listen: Option<SocketAddr>,
    /// `/metrics` alone on this address too (`admin.metrics_port`).
    pub metrics: Option<SocketAddr>,
    /// The Unix socket for the command line (`admin.socket`); `None`: none.
    pub socket: Option<PathBuf>,
}

/// What the admin server is bound to, for the log.
pub struct Bound {
    /// The TCP addresses.
    pub addrs: Vec<SocketAddr>,
    /// The Unix socket.
    pub socket: Option<PathBuf>,
}

/// Starts the admin server on `at` in the running actor system; returns what it is bound
/// to. A port in use is an error that names it, never a panic.
pub fn start(state: AdminState, at: AdminListeners) -> anyhow::Result<Bound> {
    let state = web::Data::new(state);
    let app_state = state.clone();
    let mut server = HttpServer::new(move || routes(App::new().app_data(app_state.clone())))
        .on_connect(local_socket::mark)
        .workers(1)
        .disable_signals();
    let mut bound = Bound {
        addrs: Vec::new(),
        socket: None,
    };
    if let Some(listen) = at.listen {
        server = server
            .bind(listen)
            .with_context(|| format!("cannot listen on admin.listen {listen} (address in use?)"))?;
        bound.addrs = server.addrs();
    }
    if let Some(path) = &at.socket {
        local_socket::prepare(path)?;
        // Bound here and handed over: actix-web's `bind_uds` skips the `on_connect` hook
        // that records the peer's credentials; `listen_uds` runs it.
        let listener = std::os::unix::net::UnixListener::bind(path)
            .with_context(|| format!("cannot listen on admin.socket {}", path.display()))?;
        server = server.listen_uds(listener)?;
        local_socket::restrict(path)
            .with_context(|| format!("making admin.socket {} owner-only", path.display()))?;
        bound.socket = Some(path.clone());
    }
    let metrics = match at.metrics {
        Some(addr) => {
            let metrics_state = state.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(metrics_state.clone())
                    .route("/metrics", web::get().to(metrics::get))
            })
            .workers(1)
            .disable_signals()
            .bind(addr)
            .with_context(|| {
                format!("cannot listen for /metrics on {addr} (admin.metrics_port)")
            })?;
            bound.addrs.extend(server.addrs());
            Some(server)
        }
        None => None,
    };
    // Started only once every address is bound: a failed bind leaves nothing running.
    if at.listen.is_some() || at.socket.is_some() {
        actix::spawn(server.run());
    }
    if let Some(metrics) = metrics {
        actix::spawn(metrics.run());
    }
    Ok(bound)
}

/// `GET /api/log/recent`: the warnings and errors logged lately, oldest first.
async fn recent_problems(_may: auth::MayRead, state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "lines": state.seen.recent.lines() }))
}

/// Every route of the admin API.
fn routes<T>(app: App<T>) -> App<T>
where
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Error = actix_web::Error,
            InitError = (),
        >,
{
    app.route("/", web::get().to(status_page::get))
        .route("/health", web::get().to(health::get))
        .route("/stats", web::get().to(stats::get))
        .route("/api/queue/stats", web::get().to(stats::get))
        .route("/api/shaping", web::get().to(shaping::list))
        .route("/api/shaping/{site}", web::delete().to(shaping::clear))
        .route("/api/suspensions", web::get().to(suspensions::list))
        .route("/api/suspensions", web::post().to(suspensions::suspend))
        .route(
            "/api/suspensions/{domain}",
            web::delete().to(suspensions::resume),
        )
        .route("/api/queue", web::get().to(queue::list))
        .route("/api/queue/{id}", web::get().to(queue::show))
        .route(
            "/api/queue/{id}/transcript",
            web::get().to(queue::transcript),
        )
        .route("/api/queue/{id}", web::delete().to(queue::delete))
        .route(
            "/api/queue/{id}/{action}",
            web::post().to(queue::act_on_one),
        )
        .route(
            "/api/queue/{action}",
            web::post().to(queue::act_on_matching),
        )
        .route("/metrics", web::get().to(metrics::get))
        .route("/api/log/recent", web::get().to(recent_problems))
        .route("/api/maintenance", web::get().to(maintenance::get))
        .route("/api/maintenance", web::put().to(maintenance::put))
        .route("/api/auth/lockouts", web::get().to(auth_lockouts::list))
        .route("/api/auth/unlock", web::post().to(auth_lockouts::unlock))
        .route("/api/users", web::get().to(users::list))
        .route("/api/users", web::post().to(users::add))
        .route("/api/users/{name}", web::patch().to(users::change))
        .route("/api/users/{name}", web::delete().to(users::delete))
}
