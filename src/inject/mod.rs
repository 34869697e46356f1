//! The HTTP injection API (`[http_inject]`): `POST /api/inject/v1` on its own listener.
//! A request carries one content and many recipients (KumoMTA's and SparkPost's shape,
//! `request`); each recipient gets its own message (`build`: placeholders, MIME, the
//! `Received:` line) that goes through the same DATA-stage policies and the same durable
//! intake as an SMTP message (`handler`); tenants are named by bearer keys (`tenants`).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use hermod_actors::policy::set::PolicySet;
use hermod_actors::queue::Intake;
use hermod_actors::store::room::IntakeRoom;

use crate::config::Config;

mod build;
mod handler;
mod request;
mod tenants;

/// What every request is served with.
pub struct InjectState {
    intake: Intake,
    room: IntakeRoom,
    policies: PolicySet,
    tenants: tenants::Tenants,
    hostname: String,
    max_recipients: usize,
    max_request_size: usize,
    max_message_size: usize,
}

/// The engine the API stores through.
pub struct InjectEngine {
    /// The intake Sessions use.
    pub intake: Intake,
    /// The spool's room and ids.
    pub room: IntakeRoom,
    /// The policy actors.
    pub policies: PolicySet,
    /// The server's TLS, for `http_inject.tls`.
    pub tls: Option<Arc<hermod_actors::inbound::tls::ServerTls>>,
}

/// Starts the listener when `[http_inject]` is on; returns the address it is bound to.
pub fn start(config: &Config, engine: InjectEngine) -> anyhow::Result<Option<SocketAddr>> {
    let settings = &config.http_inject;
    if !settings.enabled {
        return Ok(None);
    }
    let state = web::Data::new(InjectState {
        intake: engine.intake,
        room: engine.room,
        policies: engine.policies,
        tenants: tenants::Tenants::new(settings.keys().context("http_inject.tenants")?),
        hostname: config.smtp.hostname.clone(),
        max_recipients: settings.max_recipients,
        max_request_size: settings.max_request_size,
        max_message_size: config.smtp.max_message_size,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/api/inject/v1", web::post().to(handler::inject))
    })
    .workers(1)
    .disable_signals();
    let listen = settings.listen;
    let server = match (settings.tls, engine.tls) {
        (true, Some(tls)) => {
            let mut config = (*tls.acceptor().config().clone()).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            server.bind_rustls_0_23(listen, config)
        }
        (true, None) => anyhow::bail!("http_inject.tls needs tls.cert and tls.key"),
        (false, _) => server.bind(listen),
    }
    .with_context(|| format!("cannot listen on http_inject.listen {listen} (address in use?)"))?;
    let bound = server.addrs().first().copied();
    actix::spawn(server.run());
    tracing::info!(listen = %bound.map_or(listen, |a| a), tls = settings.tls, tenants = settings.tenants.len(),
        "HTTP injection API listening (POST /api/inject/v1)");
    Ok(bound)
}

/// Help texts of the injection API's metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "inject_requests_total",
        "Injection API requests, by result (taken, invalid, too_large, unauthorized, unavailable)."
    );
    metrics::describe_counter!(
        "inject_messages_total",
        "Messages of injection requests, by result (accepted: on disk; refused)."
    );
}
