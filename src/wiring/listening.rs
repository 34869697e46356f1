//! The SMTP listening sockets, bound before the actor system starts: from `smtp.listen`
//! (one `SO_REUSEPORT` socket per address and arbiter) or handed over by the service
//! manager, each with its listener kind.

use std::net::SocketAddr;

use anyhow::Context as _;
use hermod_actors::inbound::listener::{self as listener, ListenSocket};
use hermod_actors::protocol::security::{Endpoint, ListenerKind};

use crate::config::Config;

/// One arbiter's sockets, each with its listener's rules.
pub(super) type PerArbiter = Vec<(ListenSocket, Endpoint)>;

/// A bound address (a configured port 0 is the real port here) and its listener's kind.
pub(super) type BoundAddr = (SocketAddr, ListenerKind);

/// The SMTP sockets for each arbiter, and their addresses. Sockets handed over by the
/// service manager (systemd socket activation: `LISTEN_FDS`, `LISTEN_PID`) take the place
/// of `smtp.listen`, so port 25 needs no privilege; each arbiter accepts on a duplicate.
/// Otherwise one socket per address and arbiter (`SO_REUSEPORT`), bound now, so that an
/// address in use stops the start with a clear error.
pub(super) fn listening_sockets(
    config: &Config,
    workers: usize,
) -> anyhow::Result<(Vec<PerArbiter>, Vec<BoundAddr>)> {
    let mut sockets: Vec<PerArbiter> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    let mut activation = listenfd::ListenFd::from_env();
    for i in 0..activation.len() {
        let inherited = activation.take_tcp_listener(i).with_context(|| {
            format!("socket {i} from the service manager is not a TCP listener")
        })?;
        let Some(inherited) = inherited else {
            continue;
        };
        let addr = inherited.local_addr()?;
        let endpoint = inherited_endpoint(config, addr);
        usable(endpoint, config.tls.offered(), addr)?;
        tracing::info!(smtp_addr = %addr, kind = endpoint.kind.name(), "socket from the service manager");
        for per_arbiter in sockets.iter_mut() {
            per_arbiter.push((ListenSocket::Inherited(inherited.try_clone()?), endpoint));
        }
        bound.push((addr, endpoint.kind));
    }
    if !bound.is_empty() {
        tracing::info!(
            sockets = bound.len(),
            "serving SMTP on the sockets the service manager passed (socket activation); smtp.listen is not used"
        );
        return Ok((sockets, bound));
    }
    for entry in &config.smtp.listen {
        let addr = entry.address;
        let context = || format!("cannot listen on {addr} (address in use, or a privileged port?)");
        listener::ensure_free(addr).with_context(context)?;
        let first = listener::bind(addr).with_context(context)?;
        let actual = first.local_addr()?;
        sockets[0].push((ListenSocket::Bound(first), entry.endpoint));
        for per_arbiter in sockets.iter_mut().skip(1) {
            per_arbiter.push((
                ListenSocket::Bound(listener::bind(actual).with_context(context)?),
                entry.endpoint,
            ));
        }
        bound.push((actual, entry.endpoint.kind));
    }
    Ok((sockets, bound))
}

/// The rules of a socket the service manager passed: those of the `smtp.listen` entry
/// with its port, else the kind its well-known port has (465: submissions, 587:
/// submission, anything else: smtp).
fn inherited_endpoint(config: &Config, addr: SocketAddr) -> Endpoint {
    config
        .smtp
        .listen
        .iter()
        .find(|entry| entry.address.port() == addr.port())
        .map_or_else(
            || Endpoint::of_kind(ListenerKind::for_port(addr.port())),
            |entry| entry.endpoint,
        )
}

/// Whether hermod can serve a passed socket of this kind: implicit TLS needs a certificate.
fn usable(endpoint: Endpoint, tls_offered: bool, addr: SocketAddr) -> anyhow::Result<()> {
    if endpoint.kind == ListenerKind::Submissions && !tls_offered {
        anyhow::bail!(
            "the socket {addr} from the service manager is for implicit TLS (port {}), but tls.cert and tls.key are not set: set them, or remove ListenStream={} from hermod.socket",
            addr.port(),
            addr.port()
        );
    }
    Ok(())
}

/// The listening sockets, bound before the actor system starts.
pub(super) struct Listening {
    /// One socket per address for each arbiter, with its listener's rules.
    pub(super) sockets: Vec<PerArbiter>,
    /// The bound addresses (a configured port 0 is the real port here).
    pub(super) addrs: Vec<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_implicit_tls_socket_needs_a_certificate() {
        let addr: SocketAddr = "127.0.0.1:465".parse().unwrap();
        let submissions = Endpoint::of_kind(ListenerKind::Submissions);
        let err = usable(submissions, false, addr).unwrap_err().to_string();
        assert!(
            err.contains("remove ListenStream=465 from hermod.socket"),
            "{err}"
        );
        assert!(usable(submissions, true, addr).is_ok());
        assert!(usable(Endpoint::of_kind(ListenerKind::Smtp), false, addr).is_ok());
    }
}
