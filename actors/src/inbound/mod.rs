//! Mail coming in: the Listener actor that accepts connections, the Session actor that
//! drives the sans-IO protocol over one of them, the server's TLS (certificate and its
//! reload) and AUTH (credentials checked against the user store or Dovecot's auth
//! service, [`password_check`]; lock-out and pacing counted in [`auth_failures`]), and the
//! receiving part of each message's trace (`session_trace`).

mod accept;
pub mod auth;
pub mod auth_failures;
pub mod dovecot_auth;
pub mod listener;
pub mod password_check;
pub mod session;
mod session_record;
pub mod session_trace;
pub mod tls;
