//! TLS and AUTH for the Sessions: the server's certificate, loaded at start and checked
//! for changes while hermod runs, and the AUTH user store in the spool's database.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use hermod_actors::inbound::auth::Authenticator;
use hermod_actors::inbound::password_check::PasswordCheck;
use hermod_actors::inbound::tls::ServerTls;
use hermod_actors::store::spool::SledSpool;
use hermod_actors::store::users::UserStore;

use crate::config::Config;

/// What TLS and AUTH the Sessions get.
pub(super) struct Secured {
    /// The certificate, when TLS is offered.
    pub(super) tls: Option<Arc<ServerTls>>,
    /// The user store and lock-out, when AUTH is on.
    pub(super) auth: Option<Arc<Authenticator>>,
    /// The user store, open whether AUTH is on or not (users can be added beforehand).
    pub(super) users: UserStore,
}

/// Loads the certificate and opens the user store, as configured. A certificate that does
/// not load stops the start (`--validate-only` says the same beforehand).
pub(super) fn open(config: &Config, spool: &SledSpool) -> anyhow::Result<Secured> {
    let tls = config
        .tls
        .load()
        .context("loading the TLS certificate (tls.cert, tls.key)")?;
    if let Some(tls) = &tls {
        let summary = tls.summary();
        let days = summary.seconds_left(SystemTime::now()) / 86_400;
        tracing::info!(cert = %tls.files().cert.display(), names = ?summary.names, expires_in_days = days, "TLS certificate loaded");
        if !summary.covers(&config.smtp.hostname) {
            tracing::warn!(hostname = %config.smtp.hostname, names = ?summary.names, "the TLS certificate does not cover smtp.hostname: clients that verify names will refuse it");
        }
        if days < 14 {
            tracing::warn!(
                expires_in_days = days,
                "the TLS certificate expires soon (or has expired): renew it; hermod reloads it when the files change"
            );
        }
    }
    let users = UserStore::new(spool.db(), config.auth.hash_cost())
        .context("opening the AUTH user store")?;
    let auth = if config.auth.enabled {
        let check = config.auth.password_check(&users);
        match &check {
            PasswordCheck::Local(_) => {
                users.prepare().context("making the dummy password hash")?;
                let count = users.list().map(|u| u.len()).unwrap_or(0);
                if count == 0 {
                    tracing::warn!(
                        "AUTH is on but there are no users yet: add one with 'hermod user add NAME'"
                    );
                }
            }
            PasswordCheck::Dovecot(dovecot) => {
                tracing::info!(socket = %dovecot.socket.display(), "AUTH checks passwords with Dovecot's auth service");
            }
        }
        Some(Authenticator::with_check(check, config.auth.limits()))
    } else {
        None
    };
    Ok(Secured { tls, auth, users })
}

/// With TLS on, watches the certificate's files every `tls.reload_check_interval` (see
/// [`watch_certificate`]).
pub(super) fn keep_certificate_fresh(tls: Option<&Arc<ServerTls>>, config: &Config) {
    if let Some(tls) = tls {
        actix::spawn(watch_certificate(
            tls.clone(),
            config.tls.reload_check_interval,
        ));
    }
}

/// Reloads the certificate whenever its files change (a renewal by certbot or the like),
/// checking every `interval`.
async fn watch_certificate(tls: Arc<ServerTls>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let tls = tls.clone();
        // Reading and parsing files: off the arbiter.
        let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
    }
}
