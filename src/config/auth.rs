//! `[auth]`: AUTH PLAIN and LOGIN for submission — whether it is offered, what it earns
//! (relaying), the lock-out of clients that guess passwords, and the Argon2id cost of new
//! password hashes. The users themselves live in the data directory (`hermod user`).

use std::path::PathBuf;
use std::time::Duration;

use hermod_actors::inbound::auth::AuthLimits;
use hermod_actors::inbound::dovecot_auth::DovecotAuth;
use hermod_actors::inbound::password_check::PasswordCheck;
use hermod_actors::store::users::{HashCost, UserStore};

use super::section::{Key, section};
use super::{ConfigIssue, Section, at_least_one, longer_than_zero};

section! {
    /// `[auth]`: AUTH for submission.
    pub struct AuthConfig {
        /// Offer AUTH PLAIN and LOGIN after STARTTLS (`SMTP_ENABLE_AUTH`).
        pub enabled: bool = false
            => (restart, ["SMTP_ENABLE_AUTH"]),
        /// On submission listeners, a client in `relay.networks` must still authenticate to
        /// relay (`SMTP_REQUIRE_AUTH_FOR_RELAY`).
        pub require_auth_for_relay: bool = false
            => (live, ["SMTP_REQUIRE_AUTH_FOR_RELAY"]),
        /// Failed AUTH attempts from one client address within `failure_window` before it
        /// is refused with `421 4.7.0` and disconnected.
        pub max_failures: u32 = 5
            => (restart, []),
        /// How long a failed attempt counts toward `max_failures`.
        #[serde(with = "super::duration")]
        pub failure_window: Duration = Duration::from_secs(600)
            => (restart, []),
        /// The prefix length an IPv6 client is counted by for the lock-out (64: its /64).
        pub ipv6_prefix: u8 = 64
            => (restart, []),
        /// Failed logins for one user name (from any address) within `failure_window` after
        /// which its checks are paced, one per `user_failure_delay`; 0: never.
        pub user_max_failures: u32 = 20
            => (restart, []),
        /// The time between two checks of a paced user name.
        #[serde(with = "super::duration")]
        pub user_failure_delay: Duration = Duration::from_secs(2)
            => (restart, []),
        /// Memory of a new password hash in KiB (Argon2id `m`; default 19456, OWASP's).
        pub argon2_memory_kib: u32 = HashCost::default().memory_kib
            => (restart, []),
        /// Passes of a new password hash (Argon2id `t`).
        pub argon2_iterations: u32 = HashCost::default().iterations
            => (restart, []),
        /// Lanes of a new password hash (Argon2id `p`).
        pub argon2_parallelism: u32 = HashCost::default().parallelism
            => (restart, []),
        /// Password checks at once (each takes the hash's memory and a core for tens of
        /// milliseconds); 0: one per core.
        pub verify_concurrency: usize = 0
            => (restart, []),
        /// Where passwords are checked: `local` (hermod's own users, `hermod user add`) or
        /// `dovecot` (Dovecot's auth service at `dovecot_socket`, as Postfix's
        /// `smtpd_sasl_type = dovecot`).
        pub backend: AuthBackend = AuthBackend::Local
            => (restart, []),
        /// Dovecot's `auth-client` socket (`service auth { unix_listener auth-client { ...
        /// } }`), for `backend = "dovecot"`.
        pub dovecot_socket: PathBuf = PathBuf::from("/var/run/dovecot/auth-client")
            => (restart, []),
        /// How long Dovecot gets to answer one check; past it the client gets `454 4.7.0`.
        #[serde(with = "super::duration")]
        pub dovecot_timeout: Duration = Duration::from_secs(5)
            => (restart, []),
    }
}

/// Where AUTH checks passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthBackend {
    /// hermod's own Argon2id user store.
    Local,
    /// Dovecot's auth service.
    Dovecot,
}

impl Section for AuthConfig {
    const KEYS: &'static [Key] = AuthConfig::DECLARED;
    const NAME: &'static str = "auth";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        at_least_one(
            issues,
            &[("auth.max_failures", u64::from(self.max_failures))],
        );
        longer_than_zero(issues, &[("auth.failure_window", self.failure_window)]);
        if !(16..=128).contains(&self.ipv6_prefix) {
            issues.push(ConfigIssue::new(
                "auth.ipv6_prefix",
                format!("{} is not a prefix length from 16 to 128", self.ipv6_prefix),
            ));
        }
        if let Err(e) = self.hash_cost().check() {
            issues.push(ConfigIssue::new("auth.argon2_memory_kib", e));
        }
        if self.backend == AuthBackend::Dovecot {
            longer_than_zero(issues, &[("auth.dovecot_timeout", self.dovecot_timeout)]);
            if self.dovecot_socket.as_os_str().is_empty() {
                issues.push(ConfigIssue::new(
                    "auth.dovecot_socket",
                    "backend = \"dovecot\" needs Dovecot's auth-client socket",
                ));
            }
        }
    }
}

impl AuthConfig {
    /// Where passwords are checked, with `users` for the local backend.
    pub fn password_check(&self, users: &UserStore) -> PasswordCheck {
        match self.backend {
            AuthBackend::Local => PasswordCheck::Local(users.clone()),
            AuthBackend::Dovecot => PasswordCheck::Dovecot(DovecotAuth {
                socket: self.dovecot_socket.clone(),
                timeout: self.dovecot_timeout,
            }),
        }
    }

    /// The cost of new password hashes.
    pub fn hash_cost(&self) -> HashCost {
        HashCost {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    /// The lock-out and the verification pool.
    pub fn limits(&self) -> AuthLimits {
        AuthLimits {
            max_failures: self.max_failures,
            failure_window: self.failure_window,
            ipv6_prefix: self.ipv6_prefix,
            user_max_failures: self.user_max_failures,
            user_failure_delay: self.user_failure_delay,
            verify_concurrency: match self.verify_concurrency {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            },
        }
    }
}
