//! AUTH as the Sessions see it: credentials checked against the user store off the
//! session arbiters (Argon2 is slow on purpose; at most `verify_concurrency` checks run
//! at once), and the failures of each client address counted, so that a client guessing
//! passwords is cut off with 421 after `max_failures` within `failure_window`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::protocol::sasl::Credentials;
use crate::protocol::session::AuthVerdict;
use crate::store::users::{UserStore, Verified};

/// The lock-out and the verification pool, from `[auth]`.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    /// Failed attempts from one client address within `failure_window` before it is
    /// refused with 421.
    pub max_failures: u32,
    /// How long a failure counts.
    pub failure_window: Duration,
    /// Password checks running at once (each takes the hash's memory).
    pub verify_concurrency: usize,
}

/// Client addresses remembered at most; past it, expired entries are dropped and then
/// the table is cleared rather than grown without bound.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Checks credentials for every Session of the process.
pub struct Authenticator {
    users: UserStore,
    limits: AuthLimits,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    permits: Semaphore,
}

/// A verdict and, for the log, why.
pub struct Outcome {
    /// What the Session answers.
    pub verdict: AuthVerdict,
    /// Why it failed (unknown user, wrong password, ...); empty on success.
    pub why: String,
}

impl Authenticator {
    /// Checks against `users` with `limits`.
    pub fn new(users: UserStore, limits: AuthLimits) -> Arc<Self> {
        Arc::new(Authenticator {
            users,
            limits,
            failures: Mutex::new(HashMap::new()),
            permits: Semaphore::new(limits.verify_concurrency.max(1)),
        })
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recent failures from `client`, expired ones forgotten.
    fn recent_failures(&self, client: IpAddr, now: Instant) -> usize {
        let mut failures = self.failures();
        let Some(times) = failures.get_mut(&client) else {
            return 0;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.limits.failure_window)
        {
            times.pop_front();
        }
        let count = times.len();
        if count == 0 {
            failures.remove(&client);
        }
        count
    }

    /// Counts a failure; returns the failures now within the window.
    fn record_failure(&self, client: IpAddr, now: Instant) -> usize {
        let window = self.limits.failure_window;
        let mut failures = self.failures();
        if failures.len() >= MAX_TRACKED_CLIENTS {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
            if failures.len() >= MAX_TRACKED_CLIENTS {
                failures.clear();
            }
        }
        let times = failures.entry(client).or_default();
        times.push_back(now);
        while times.len() > self.limits.max_failures as usize {
            times.pop_front();
        }
        times.len()
    }

    /// Checks `credentials` from `client`.
    pub async fn check(self: &Arc<Self>, client: IpAddr, credentials: Credentials) -> Outcome {
        let max = self.limits.max_failures as usize;
        if self.recent_failures(client, Instant::now()) >= max {
            return Outcome {
                verdict: AuthVerdict::LockedOut,
                why: "too many failures from this address".into(),
            };
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return unavailable("the verification pool is closed".into());
        };
        let users = self.users.clone();
        let user = credentials.user;
        let password = credentials.password;
        let checked = tokio::task::spawn_blocking(move || users.verify(&user, &password)).await;
        let verified = match checked {
            Ok(Ok(verified)) => verified,
            Ok(Err(e)) => return unavailable(e.to_string()),
            Err(e) => return unavailable(format!("the password check failed: {e}")),
        };
        match verified {
            Verified::Yes(user) => Outcome {
                verdict: AuthVerdict::Accepted(user),
                why: String::new(),
            },
            Verified::No(why) => {
                let verdict = if self.record_failure(client, Instant::now()) >= max {
                    AuthVerdict::LockedOut
                } else {
                    AuthVerdict::Rejected
                };
                Outcome {
                    verdict,
                    why: why.to_string(),
                }
            }
        }
    }
}

fn unavailable(why: String) -> Outcome {
    Outcome {
        verdict: AuthVerdict::Unavailable("the user store cannot be read".into()),
        why,
    }
}

/// Help texts of the metrics recorded for AUTH.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "smtp_auth_attempts_total",
        "AUTH attempts, by result (success, failure, locked_out, unavailable)."
    );
    metrics::describe_counter!(
        "smtp_auth_failures_total",
        "AUTH attempts refused: unknown user, wrong password, disabled user, or a client locked out."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::CHEAP;

    #[tokio::test]
    async fn locks_a_client_out_after_its_failures_and_not_others() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let users = UserStore::new(&db, CHEAP).unwrap();
        users
            .add("app", CHEAP.hash("right").unwrap(), vec![])
            .unwrap();
        let auth = Authenticator::new(
            users,
            AuthLimits {
                max_failures: 3,
                failure_window: Duration::from_secs(60),
                verify_concurrency: 2,
            },
        );
        let guesser: IpAddr = "192.0.2.66".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        let wrong = || Credentials {
            user: "app".into(),
            password: "wrong".into(),
        };
        let right = || Credentials {
            user: "app".into(),
            password: "right".into(),
        };
        for _ in 0..2 {
            let outcome = auth.check(guesser, wrong()).await;
            assert!(matches!(outcome.verdict, AuthVerdict::Rejected));
            assert_eq!(outcome.why, "wrong password");
        }
        assert!(matches!(
            auth.check(guesser, wrong()).await.verdict,
            AuthVerdict::LockedOut
        ));
        // Locked out even with the right password, until the window passes.
        assert!(matches!(
            auth.check(guesser, right()).await.verdict,
            AuthVerdict::LockedOut
        ));
        assert!(matches!(
            auth.check(other, right()).await.verdict,
            AuthVerdict::Accepted(_)
        ));
    }
}
