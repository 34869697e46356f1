//! The greylist's state in sled (the embedded backend): triplets with their first-seen
//! time, and client networks with their passes and whitelisting, each with an expiry
//! that a periodic sweep enforces. Losing it in a crash costs only a second delay, so
//! nothing here is flushed on purpose.

use crate::core::greylist_state::{ClientState, GreylistBackend, GreylistStoreError, TripletState};

/// A greylist tree that sled could not open: hermod does not start without it.
#[derive(Debug, thiserror::Error)]
#[error("opening the {tree} tree: {error}")]
pub struct OpenTreeError {
    /// The tree's name.
    pub tree: &'static str,
    /// sled's reason.
    pub error: sled::Error,
}

/// Two trees of the spool's database: `greylist` (triplets) and `greylist_clients`.
#[derive(Clone)]
pub struct SledGreylist {
    triplets: sled::Tree,
    clients: sled::Tree,
}

impl SledGreylist {
    /// The trees in an open database.
    pub fn new(db: &sled::Db) -> Result<Self, OpenTreeError> {
        let open = |tree: &'static str| {
            db.open_tree(tree)
                .map_err(|error| OpenTreeError { tree, error })
        };
        Ok(SledGreylist {
            triplets: open("greylist")?,
            clients: open("greylist_clients")?,
        })
    }

    fn get<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        key: &str,
    ) -> Result<Option<T>, GreylistStoreError> {
        match tree.get(key.as_bytes()).map_err(sled_error)? {
            None => Ok(None),
            // A record that does not parse (an older format) counts as never seen.
            Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        }
    }

    fn put<T: serde::Serialize>(
        tree: &sled::Tree,
        key: &str,
        value: &T,
    ) -> Result<(), GreylistStoreError> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| GreylistStoreError::Sled(e.to_string()))?;
        tree.insert(key.as_bytes(), bytes).map_err(sled_error)?;
        Ok(())
    }

    fn sweep_tree<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        now: u64,
        expires: impl Fn(&T) -> u64,
    ) -> usize {
        let mut removed = 0;
        for entry in tree.iter().flatten() {
            let (key, value) = entry;
            let expired = serde_json::from_slice::<T>(&value).map_or(true, |v| expires(&v) <= now);
            if expired && tree.remove(key).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// The greylist's store error of a sled failure, with sled's text.
fn sled_error(error: sled::Error) -> GreylistStoreError {
    GreylistStoreError::Sled(error.to_string())
}

/// sled answers from memory or its page cache at once: the futures are ready.
impl GreylistBackend for SledGreylist {
    fn triplet(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<TripletState>, GreylistStoreError>> + Send {
        std::future::ready(Self::get(&self.triplets, key))
    }

    fn set_triplet(
        &self,
        key: &str,
        state: &TripletState,
    ) -> impl Future<Output = Result<(), GreylistStoreError>> + Send {
        std::future::ready(Self::put(&self.triplets, key, state))
    }

    fn client(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ClientState>, GreylistStoreError>> + Send {
        std::future::ready(Self::get(&self.clients, key))
    }

    fn set_client(
        &self,
        key: &str,
        state: &ClientState,
    ) -> impl Future<Output = Result<(), GreylistStoreError>> + Send {
        std::future::ready(Self::put(&self.clients, key, state))
    }

    fn sweep(&self, now: u64) -> usize {
        Self::sweep_tree::<TripletState>(&self.triplets, now, |t| t.expires)
            + Self::sweep_tree::<ClientState>(&self.clients, now, |c| c.expires)
    }

    fn stored(&self) -> Option<usize> {
        Some(self.triplets.len())
    }
}
