//! AUTH as the Sessions see it: credentials checked against the user store off the
//! session arbiters (Argon2 is slow on purpose; at most `verify_concurrency` checks run
//! at once), and failures counted two ways:
//!
//! - per client network (the address; an IPv6 client's /64 by default): a network that
//!   reaches `max_failures` within `failure_window` is refused with 421. The slot of a
//!   check is taken *before* its password is looked at ([`FailureTable::reserve`]), so
//!   many connections from one network get no more guesses checked than one.
//! - per user name: past `user_max_failures`, checks of that name are paced one per
//!   `user_failure_delay`, so guessing spread over many networks is slowed without
//!   locking the real user out (a check whose turn is over [`LONGEST_PACED_WAIT`] away
//!   gets 454, try again later).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::Semaphore;

use super::auth_failures::FailureTable;
pub use super::auth_failures::Standing;
use super::password_check::PasswordCheck;
use crate::protocol::sasl::Credentials;
use crate::protocol::session::AuthVerdict;
use crate::store::users::{UserStore, Verified};

/// The lock-out, the pacing and the verification pool, from `[auth]`.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    /// Failed attempts from one client network within `failure_window` before it is
    /// refused with 421.
    pub max_failures: u32,
    /// How long a failure counts.
    pub failure_window: Duration,
    /// Password checks running at once (each takes the hash's memory).
    pub verify_concurrency: usize,
    /// The prefix length an IPv6 client is counted by (64: its /64, what one host or
    /// site usually gets).
    pub ipv6_prefix: u8,
    /// Failures of one user name within `failure_window` after which its checks are
    /// paced; 0: never paced.
    pub user_max_failures: u32,
    /// The time between two paced checks of one user name.
    pub user_failure_delay: Duration,
}

/// Client networks and user names remembered at most each; past it the least failed and
/// oldest entries go first, never every lock-out at once.
const MAX_TRACKED: usize = 100_000;

/// The longest a paced check waits for its turn before it is answered 454.
pub const LONGEST_PACED_WAIT: Duration = Duration::from_secs(20);

/// Checks credentials for every Session of the process.
pub struct Authenticator {
    check: PasswordCheck,
    limits: AuthLimits,
    clients: Mutex<FailureTable<IpNet>>,
    names: Mutex<FailureTable<String>>,
    permits: Semaphore,
}

/// A verdict and, for the log, why.
pub struct Outcome {
    /// What the Session answers.
    pub verdict: AuthVerdict,
    /// Why it failed (unknown user, wrong password, ...); empty on success.
    pub why: String,
    /// The client network the attempt was counted against (`192.0.2.7/32`,
    /// `2001:db8:1:2::/64`).
    pub network: IpNet,
}

/// A network's failure slot, taken before a password is looked at. Settled once the
/// check is over; a check abandoned half-way (its session was stopped) gives it back
/// when dropped, so no slot is ever left taken.
struct Slot<'a> {
    clients: &'a Mutex<FailureTable<IpNet>>,
    network: IpNet,
    open: bool,
}

impl Slot<'_> {
    /// Ends the check, counting a failure if it `failed`; whether the network is now
    /// locked out.
    fn settle(mut self, failed: bool) -> bool {
        self.open = false;
        lock(self.clients).settle(&self.network, Instant::now(), failed)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.open {
            lock(self.clients).settle(&self.network, Instant::now(), false);
        }
    }
}

/// What a check that holds a slot found.
enum Attempt {
    /// The user name's turn is too far away.
    Paced,
    /// Checked; the slot is held.
    Checked(Verified),
    /// The store failed.
    Failed(String),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Authenticator {
    /// Checks against `users` with `limits`.
    pub fn new(users: UserStore, limits: AuthLimits) -> Arc<Self> {
        Self::with_check(PasswordCheck::Local(users), limits)
    }

    /// Checks against `check` (the local store or Dovecot) with `limits`.
    pub fn with_check(check: PasswordCheck, limits: AuthLimits) -> Arc<Self> {
        Arc::new(Authenticator {
            check,
            limits,
            clients: Mutex::new(FailureTable::new(
                limits.max_failures,
                limits.failure_window,
                MAX_TRACKED,
            )),
            // Counts beyond the pacing threshold change nothing: keep a few more.
            names: Mutex::new(FailureTable::new(
                limits.user_max_failures.saturating_add(1),
                limits.failure_window,
                MAX_TRACKED,
            )),
            permits: Semaphore::new(limits.verify_concurrency.max(1)),
        })
    }

    /// The network `client` is counted as: the address itself for IPv4, its
    /// `ipv6_prefix` network for IPv6 (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn network_of(&self, client: IpAddr) -> IpNet {
        let client = client.to_canonical();
        let prefix = match client {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => self.limits.ipv6_prefix.min(128),
        };
        IpNet::new(client, prefix).map_or(IpNet::from(client), |n| n.trunc())
    }

    /// Checks `credentials` from `client`.
    pub async fn check(self: &Arc<Self>, client: IpAddr, credentials: Credentials) -> Outcome {
        let network = self.network_of(client);
        let name = credentials.user.to_lowercase();
        let Some(slot) = self.take_slot(network) else {
            return Outcome {
                verdict: AuthVerdict::LockedOut,
                why: "too many failures from this network".into(),
                network,
            };
        };
        let (verdict, why) = match self.pace_and_verify(&name, credentials, client).await {
            Attempt::Paced => {
                slot.settle(false);
                (
                    AuthVerdict::Paced,
                    "too many failed logins for this user".to_string(),
                )
            }
            Attempt::Failed(e) => {
                slot.settle(false);
                (AuthVerdict::Unavailable(self.check.unavailable().into()), e)
            }
            Attempt::Checked(Verified::Yes(user)) => {
                slot.settle(false);
                (AuthVerdict::Accepted(user), String::new())
            }
            Attempt::Checked(Verified::No(why)) => {
                let locked = slot.settle(true);
                if self.limits.user_max_failures > 0 {
                    lock(&self.names).record(&name, Instant::now());
                }
                let verdict = if locked {
                    AuthVerdict::LockedOut
                } else {
                    AuthVerdict::Rejected
                };
                (verdict, why.to_string())
            }
        };
        Outcome {
            verdict,
            why,
            network,
        }
    }

    /// Takes the network's slot before anything else; `None` when it is locked out.
    fn take_slot(&self, network: IpNet) -> Option<Slot<'_>> {
        let reserved = lock(&self.clients).reserve(&network, Instant::now());
        // Made only once the lock is released: a slot's drop takes the lock.
        reserved.then(|| Slot {
            clients: &self.clients,
            network,
            open: true,
        })
    }

    /// Waits for the user name's turn, then checks the password (on a blocking thread, or
    /// by asking Dovecot).
    async fn pace_and_verify(
        &self,
        name: &str,
        credentials: Credentials,
        client: IpAddr,
    ) -> Attempt {
        if self.limits.user_max_failures > 0 {
            let turn = lock(&self.names).pace(
                &name.to_string(),
                Instant::now(),
                self.limits.user_max_failures as usize,
                self.limits.user_failure_delay,
                LONGEST_PACED_WAIT,
            );
            match turn {
                None => return Attempt::Paced,
                Some(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
                Some(_) => {}
            }
        }
        // Argon2 checks take a permit (memory and a core each); Dovecot's are waits on
        // another process, bounded by their own timeout: a permit would let slow failures
        // (Dovecot's auth_failure_delay) keep every other login waiting.
        let _permit = match self.check {
            PasswordCheck::Local(_) => match self.permits.acquire().await {
                Ok(permit) => Some(permit),
                Err(_) => return Attempt::Failed("the verification pool is closed".into()),
            },
            PasswordCheck::Dovecot(_) => None,
        };
        match self.check.verify(credentials, client).await {
            Ok(verified) => Attempt::Checked(verified),
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }

    /// Lifts the lock-out of the network `client` belongs to (`hermod auth unlock`);
    /// whether it had failures counted.
    pub fn unlock(&self, client: IpAddr) -> bool {
        let network = self.network_of(client);
        lock(&self.clients).clear(&network)
    }

    /// Lifts the lock-out of every network inside `net` (a whole range at once).
    pub fn unlock_network(&self, net: IpNet) -> usize {
        let mut clients = lock(&self.clients);
        let inside: Vec<IpNet> = clients
            .locked(Instant::now())
            .into_iter()
            .map(|s| s.key)
            .filter(|k| net.contains(k))
            .collect();
        inside.iter().filter(|k| clients.clear(k)).count()
    }

    /// The client networks locked out now.
    pub fn lockouts(&self) -> Vec<Standing<IpNet>> {
        lock(&self.clients).locked(Instant::now())
    }

    /// The user names whose checks are paced now, with their failures.
    pub fn paced_users(&self) -> Vec<(String, usize)> {
        let threshold = self.limits.user_max_failures as usize;
        if threshold == 0 {
            return Vec::new();
        }
        let mut names = lock(&self.names);
        let now = Instant::now();
        let mut all: Vec<(String, usize)> = names
            .keys()
            .into_iter()
            .map(|k| {
                let n = names.failures(&k, now);
                (k, n)
            })
            .filter(|(_, n)| *n >= threshold)
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all
    }
}

/// Help texts of the metrics recorded for AUTH.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "smtp_auth_attempts_total",
        "AUTH attempts, by result (success, failure, locked_out, paced, unavailable)."
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

    fn limits(max_failures: u32, user_max_failures: u32) -> AuthLimits {
        AuthLimits {
            max_failures,
            failure_window: Duration::from_secs(60),
            verify_concurrency: 2,
            ipv6_prefix: 64,
            user_max_failures,
            user_failure_delay: Duration::from_millis(300),
        }
    }

    fn store_with_app() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let users = UserStore::new(&db, CHEAP).unwrap();
        users
            .add("app", CHEAP.hash("right").unwrap(), vec![])
            .unwrap();
        (dir, users)
    }

    fn credentials(password: &str) -> Credentials {
        Credentials {
            user: "app".into(),
            password: password.into(),
        }
    }

    /// The attack: many connections from one address send AUTH at the same moment, so
    /// every check starts before any failure is counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_guesses_from_one_address_get_at_most_max_failures_checked() {
        let (_dir, users) = store_with_app();
        let auth = Authenticator::new(users, limits(5, 0));
        let guesser: IpAddr = "192.0.2.66".parse().unwrap();
        // All wrong: with the right password among them, a burst could end with only four
        // failures counted (the right one held the fifth slot meanwhile), and the lock-out
        // checked below would not have been earned.
        let checks: Vec<_> = (0..60)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.check(guesser, credentials("wrong")).await })
            })
            .collect();
        let mut checked = 0;
        for check in checks {
            let outcome = check.await.unwrap();
            if !outcome.why.is_empty() && outcome.why != "too many failures from this network" {
                checked += 1;
            }
        }
        assert!(checked <= 5, "{checked} passwords checked");
        assert!(matches!(
            auth.check(guesser, credentials("right")).await.verdict,
            AuthVerdict::LockedOut
        ));
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(matches!(
            auth.check(other, credentials("right")).await.verdict,
            AuthVerdict::Accepted(_)
        ));
        assert!(auth.unlock(guesser));
        assert!(matches!(
            auth.check(guesser, credentials("right")).await.verdict,
            AuthVerdict::Accepted(_)
        ));
    }

    /// A check abandoned half-way (its session stopped while it waited its turn) gives
    /// its slot back: the network is not locked out by checks that never finished.
    #[tokio::test]
    async fn an_abandoned_check_gives_its_slot_back() {
        let (_dir, users) = store_with_app();
        let auth = Authenticator::new(users, limits(1, 1));
        auth.check("198.51.100.1".parse().unwrap(), credentials("wrong"))
            .await;
        // The user is paced now: the first turn is free, the next waits 300 ms.
        auth.check("198.51.100.2".parse().unwrap(), credentials("wrong"))
            .await;
        let waiting: IpAddr = "198.51.100.3".parse().unwrap();
        let abandoned = tokio::time::timeout(
            Duration::from_millis(30),
            auth.check(waiting, credentials("right")),
        )
        .await;
        assert!(abandoned.is_err(), "the check should still be waiting");
        let network = auth.network_of(waiting);
        assert!(
            lock(&auth.clients).reserve(&network, Instant::now()),
            "the abandoned check kept its slot"
        );
    }

    #[tokio::test]
    async fn ipv6_clients_are_counted_by_their_64() {
        let (_dir, users) = store_with_app();
        let auth = Authenticator::new(users, limits(2, 0));
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
            let outcome = auth
                .check(host.parse().unwrap(), credentials("wrong"))
                .await;
            assert_eq!(outcome.network.to_string(), "2001:db8:1:2::/64");
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(matches!(
            auth.check(same_64, credentials("right")).await.verdict,
            AuthVerdict::LockedOut
        ));
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(matches!(
            auth.check(next_64, credentials("right")).await.verdict,
            AuthVerdict::Accepted(_)
        ));
        assert_eq!(auth.lockouts()[0].key.to_string(), "2001:db8:1:2::/64");
    }

    /// Guessing spread over many addresses: past the user's threshold its checks are
    /// paced, and the real user still gets in (after a wait), not locked out.
    #[tokio::test]
    async fn a_user_guessed_from_many_addresses_is_paced_not_locked_out() {
        let (_dir, users) = store_with_app();
        let auth = Authenticator::new(users, limits(5, 3));
        for i in 1..=3u8 {
            let client = IpAddr::from([198, 51, 100, i]);
            auth.check(client, credentials("wrong")).await;
        }
        let started = Instant::now();
        for i in 4..=6u8 {
            let client = IpAddr::from([198, 51, 100, i]);
            auth.check(client, credentials("wrong")).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert_eq!(auth.paced_users()[0].0, "app");
        let real = auth
            .check("203.0.113.9".parse().unwrap(), credentials("right"))
            .await;
        assert!(matches!(real.verdict, AuthVerdict::Accepted(_)));
    }

    #[tokio::test]
    async fn locks_a_client_out_after_its_failures_and_not_others() {
        let (_dir, users) = store_with_app();
        let auth = Authenticator::new(users, limits(3, 0));
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
