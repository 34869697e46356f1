//! The AUTH user store: one sled tree (`users`) in the spool's database, a user per key,
//! each with an Argon2id hash (a PHC string, so the parameters a hash was made with
//! travel with it), a disabled flag and the envelope senders the user may use.
//!
//! Verification is slow on purpose (tens of milliseconds, megabytes of memory): callers
//! run it off the session arbiters, and an unknown or disabled user is checked against a
//! dummy hash made with the same parameters, so the answer takes as long either way.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use serde::{Deserialize, Serialize};

use crate::protocol::security::AuthenticatedUser;

/// The Argon2id cost of new hashes, from `[auth]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashCost {
    /// OWASP's first recommendation for Argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        HashCost {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl HashCost {
    fn hasher(&self) -> Result<Argon2<'static>, UserError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| UserError::Hash(format!("Argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Whether Argon2 accepts these parameters.
    pub fn check(&self) -> Result<(), UserError> {
        self.hasher().map(drop)
    }

    /// A PHC-string hash of `password` with a fresh salt.
    pub fn hash(&self, password: &str) -> Result<String, UserError> {
        let hash = self
            .hasher()?
            .hash_password(password.as_bytes())
            .map_err(|e| UserError::Hash(e.to_string()))?;
        Ok(hash.to_string())
    }
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The Argon2id hash as a PHC string.
    pub hash: String,
    /// A disabled user cannot authenticate; the record stays.
    #[serde(default)]
    pub disabled: bool,
    /// Envelope senders the user may use (addresses or `@domain`); empty: any.
    #[serde(default)]
    pub senders: Vec<String>,
    /// When the user was added (Unix seconds).
    #[serde(default)]
    pub created: u64,
    /// When the password was last set (Unix seconds).
    #[serde(default)]
    pub password_set: u64,
}

/// A user as listed: the record without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// The login name.
    pub name: String,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// Envelope senders the user may use (empty: any).
    pub senders: Vec<String>,
    /// When the user was added (Unix seconds).
    pub created: u64,
    /// When the password was last set (Unix seconds).
    pub password_set: u64,
}

/// What can go wrong with the user store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The database failed.
    #[error("user store: {0}")]
    Store(String),
    /// Hashing failed (bad parameters).
    #[error("password hash: {0}")]
    Hash(String),
    /// `add` for a user that exists.
    #[error("user {0} exists already")]
    Exists(String),
    /// A change to a user that does not exist.
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// A name that cannot be a login (empty, spaces, control characters, too long).
    #[error("not a valid user name: {0:?} (1 to 256 printable characters, no spaces)")]
    BadName(String),
}

impl From<sled::Error> for UserError {
    fn from(e: sled::Error) -> Self {
        UserError::Store(e.to_string())
    }
}

/// The outcome of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The password is right and the user enabled.
    Yes(AuthenticatedUser),
    /// No such user, wrong password or disabled user (the log may say which).
    No(&'static str),
}

/// The users tree.
#[derive(Clone)]
pub struct UserStore {
    tree: sled::Tree,
    /// What new hashes cost, and so the dummy one.
    cost: HashCost,
    /// Checked when the user is unknown or disabled, so that takes as long as a real check;
    /// made by [`UserStore::prepare`] (or the first such check), shared by every clone.
    dummy_hash: Arc<OnceLock<String>>,
}

impl UserStore {
    /// The users tree of an open database; `cost` is what new hashes (and the dummy
    /// one) cost.
    pub fn new(db: &sled::Db, cost: HashCost) -> Result<Self, UserError> {
        cost.check()?;
        Ok(UserStore {
            tree: db.open_tree("users")?,
            cost,
            dummy_hash: Arc::new(OnceLock::new()),
        })
    }

    /// Makes the dummy hash now, so that the first unknown user is not told apart by
    /// the time its hash takes to make (for a store that will check passwords).
    pub fn prepare(&self) -> Result<(), UserError> {
        self.dummy_hash()?;
        Ok(())
    }

    fn dummy_hash(&self) -> Result<&str, UserError> {
        if let Some(hash) = self.dummy_hash.get() {
            return Ok(hash);
        }
        let hash = self.cost.hash("hermod-dummy-password")?;
        Ok(self.dummy_hash.get_or_init(|| hash))
    }

    /// Opens the database in `data_dir` for the user commands while hermod is stopped.
    /// Fails with [`UserError::Store`] naming the lock while a running hermod holds it.
    pub fn open_dir(data_dir: &std::path::Path, cost: HashCost) -> Result<Self, UserError> {
        super::private_dir::owner_only(data_dir).map_err(|e| {
            UserError::Store(format!("making {} owner-only: {e}", data_dir.display()))
        })?;
        let db = sled::Config::new().path(data_dir).open()?;
        Self::new(&db, cost)
    }

    fn get(&self, name: &str) -> Result<Option<UserRecord>, UserError> {
        match self.tree.get(name.as_bytes())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| UserError::Store(format!("user {name}: unreadable record: {e}"))),
        }
    }

    fn put(&self, name: &str, record: &UserRecord) -> Result<(), UserError> {
        let bytes = serde_json::to_vec(record).map_err(|e| UserError::Store(e.to_string()))?;
        self.tree.insert(name.as_bytes(), bytes)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Checks `password` for `user`. Slow: call it off the arbiters.
    pub fn verify(&self, user: &str, password: &str) -> Result<Verified, UserError> {
        let record = self.get(user)?;
        let hash = match &record {
            Some(r) => r.hash.as_str(),
            None => self.dummy_hash()?,
        };
        let matches = PasswordHash::new(hash)
            .map_err(|e| UserError::Store(format!("user {user}: unreadable hash: {e}")))
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })?;
        Ok(match record {
            None => Verified::No("unknown user"),
            Some(r) if r.disabled => Verified::No("user disabled"),
            Some(_) if !matches => Verified::No("wrong password"),
            Some(r) => Verified::Yes(AuthenticatedUser {
                name: user.to_string(),
                senders: r.senders,
            }),
        })
    }

    /// Adds a user with an already made hash.
    pub fn add(&self, name: &str, hash: String, senders: Vec<String>) -> Result<(), UserError> {
        check_name(name)?;
        check_hash(&hash)?;
        let now = unix_now();
        let record = UserRecord {
            hash,
            disabled: false,
            senders,
            created: now,
            password_set: now,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| UserError::Store(e.to_string()))?;
        let inserted =
            self.tree
                .compare_and_swap(name.as_bytes(), None as Option<&[u8]>, Some(bytes))?;
        if inserted.is_err() {
            return Err(UserError::Exists(name.to_string()));
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Changes what `change` changes on an existing user.
    pub fn update(&self, name: &str, change: UserChange) -> Result<(), UserError> {
        let mut record = self
            .get(name)?
            .ok_or_else(|| UserError::NoSuchUser(name.to_string()))?;
        match change {
            UserChange::Password(hash) => {
                check_hash(&hash)?;
                record.hash = hash;
                record.password_set = unix_now();
            }
            UserChange::Disabled(disabled) => record.disabled = disabled,
            UserChange::Senders(senders) => record.senders = senders,
        }
        self.put(name, &record)
    }

    /// Deletes a user.
    pub fn delete(&self, name: &str) -> Result<(), UserError> {
        if self.tree.remove(name.as_bytes())?.is_none() {
            return Err(UserError::NoSuchUser(name.to_string()));
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Every user, by name.
    pub fn list(&self) -> Result<Vec<UserSummary>, UserError> {
        let mut users = Vec::new();
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key).into_owned();
            let record: UserRecord = serde_json::from_slice(&value)
                .map_err(|e| UserError::Store(format!("user {name}: unreadable record: {e}")))?;
            users.push(UserSummary {
                name,
                disabled: record.disabled,
                senders: record.senders,
                created: record.created,
                password_set: record.password_set,
            });
        }
        Ok(users)
    }
}

/// A change to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserChange {
    /// A new password, as its hash.
    Password(String),
    /// Disabled or enabled again.
    Disabled(bool),
    /// A new list of envelope senders.
    Senders(Vec<String>),
}

fn check_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(UserError::BadName(name.to_string()))
    }
}

/// Refuses anything but an Argon2 PHC string (a plain password stored by mistake).
fn check_hash(hash: &str) -> Result<(), UserError> {
    match PasswordHash::new(hash) {
        Ok(parsed) if parsed.algorithm.as_str().starts_with("argon2") => Ok(()),
        _ => Err(UserError::Hash(
            "not an Argon2 hash in PHC form ($argon2id$...)".into(),
        )),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Cheap parameters for tests, which check behaviour, not cost.
#[cfg(test)]
pub(crate) const CHEAP: HashCost = HashCost {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

#[cfg(test)]
mod tests {
    use super::*;

    use super::CHEAP;

    fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let store = UserStore::new(&db, CHEAP).unwrap();
        (dir, store)
    }

    #[test]
    fn add_verify_disable_delete() {
        let (_dir, users) = store();
        users
            .add(
                "app",
                CHEAP.hash("s3cret").unwrap(),
                vec!["@shop.test".into()],
            )
            .unwrap();
        assert_eq!(
            users.add("app", CHEAP.hash("x").unwrap(), vec![]),
            Err(UserError::Exists("app".into()))
        );
        let Verified::Yes(user) = users.verify("app", "s3cret").unwrap() else {
            panic!("right password refused");
        };
        assert_eq!(user.senders, vec!["@shop.test".to_string()]);
        assert_eq!(
            users.verify("app", "wrong").unwrap(),
            Verified::No("wrong password")
        );
        assert_eq!(
            users.verify("nobody", "s3cret").unwrap(),
            Verified::No("unknown user")
        );
        users.update("app", UserChange::Disabled(true)).unwrap();
        assert_eq!(
            users.verify("app", "s3cret").unwrap(),
            Verified::No("user disabled")
        );
        users
            .update("app", UserChange::Password(CHEAP.hash("new").unwrap()))
            .unwrap();
        users.update("app", UserChange::Disabled(false)).unwrap();
        assert!(matches!(
            users.verify("app", "new").unwrap(),
            Verified::Yes(_)
        ));
        assert_eq!(users.list().unwrap().len(), 1);
        users.delete("app").unwrap();
        assert_eq!(
            users.delete("app"),
            Err(UserError::NoSuchUser("app".into()))
        );
    }

    #[test]
    fn refuses_plain_passwords_and_bad_names() {
        let (_dir, users) = store();
        assert!(matches!(
            users.add("app", "plaintext".into(), vec![]),
            Err(UserError::Hash(_))
        ));
        assert!(matches!(
            users.add("a b", CHEAP.hash("x").unwrap(), vec![]),
            Err(UserError::BadName(_))
        ));
    }

    #[test]
    fn new_hashes_are_argon2id_with_the_configured_cost() {
        let hash = CHEAP.hash("pw").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
    }
}
