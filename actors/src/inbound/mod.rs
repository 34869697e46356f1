//! Mail coming in: the Listener actor that accepts connections, the Session actor that
//! drives the sans-IO protocol over one of them, the server's TLS (certificate and its
//! reload) and AUTH (credentials checked against the user store, lock-out and pacing
//! counted in [`auth_failures`]).

mod accept;
pub mod auth;
pub mod auth_failures;
pub mod listener;
pub mod session;
pub mod tls;
