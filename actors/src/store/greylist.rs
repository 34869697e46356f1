//! The greylist's state in sled (the embedded backend): triplets with their first-seen
//! time, and client networks with their passes and whitelisting, each with an expiry
//! that a periodic sweep enforces. Losing it in a crash costs only a second delay, so
//! nothing here is flushed on purpose.

use crate::core::greylist_state::{ClientState, GreylistBackend, GreylistStoreError, TripletState};

/// Two trees of the spool's database: `greylist` (triplets) and `greylist_clients`.
#[derive(Clone)]
pub struct SledGreylist {
    triplets: sled::Tree,
    clients: sled::Tree,
}

impl SledGreylist {
    /// The trees in an open database.
    pub fn new(db: &sled::Db) -> Result<Self, String> {
        let open = |name: &str| {
            db.open_tree(name)
                .map_err(|e| format!("opening the {name} tree: {e}"))
        };
        Ok(SledGreylist {
            triplets: open("greylist")?,
            clients: open("greylist_clients")?,
        })
    }

    fn get<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        key: &str,
    ) -> Result<Option<T>, String> {
        match tree.get(key.as_bytes()).map_err(|e| e.to_string())? {
            None => Ok(None),
            // A record that does not parse (an older format) counts as never seen.
            Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        }
    }

    fn put<T: serde::Serialize>(tree: &sled::Tree, key: &str, value: &T) -> Result<(), String> {
        let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        tree.insert(key.as_bytes(), bytes)
            .map_err(|e| e.to_string())?;
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

/// sled answers from memory or its page cache at once: the futures are ready.
impl GreylistBackend for SledGreylist {
    fn triplet(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<TripletState>, GreylistStoreError>> + Send {
        std::future::ready(Self::get(&self.triplets, key).map_err(GreylistStoreError::Sled))
    }

    fn set_triplet(
        &self,
        key: &str,
        state: &TripletState,
    ) -> impl Future<Output = Result<(), GreylistStoreError>> + Send {
        std::future::ready(Self::put(&self.triplets, key, state).map_err(GreylistStoreError::Sled))
    }

    fn client(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ClientState>, GreylistStoreError>> + Send {
        std::future::ready(Self::get(&self.clients, key).map_err(GreylistStoreError::Sled))
    }

    fn set_client(
        &self,
        key: &str,
        state: &ClientState,
    ) -> impl Future<Output = Result<(), GreylistStoreError>> + Send {
        std::future::ready(Self::put(&self.clients, key, state).map_err(GreylistStoreError::Sled))
    }

    fn sweep(&self, now: u64) -> usize {
        Self::sweep_tree::<TripletState>(&self.triplets, now, |t| t.expires)
            + Self::sweep_tree::<ClientState>(&self.clients, now, |c| c.expires)
    }

    fn stored(&self) -> Option<usize> {
        Some(self.triplets.len())
    }
}
