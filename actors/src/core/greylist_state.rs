//! What the greylist stores and the trait of the stores that keep it (sled on one node,
//! Redis for a fleet): below both the policy that decides and the stores that remember.

use serde::{Deserialize, Serialize};

/// Why the greylist's store could not answer; the text is the store's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GreylistStoreError {
    /// The spool's sled database (one node).
    #[error("{0}")]
    Sled(String),
    /// The fleet's Redis (down, slow or refusing).
    #[error("{0}")]
    Redis(String),
}

/// One triplet as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripletState {
    /// When it was first seen (Unix seconds), or seen again after its window had passed.
    pub first_seen: u64,
    /// It passed once: later attempts go through at once.
    pub passed: bool,
    /// When it is forgotten (Unix seconds).
    pub expires: u64,
}

/// One client network as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientState {
    /// Triplets of this client that passed.
    pub passes: u32,
    /// Let through without delay until then (Unix seconds; 0: not whitelisted).
    pub whitelisted_until: u64,
    /// When it is forgotten (Unix seconds).
    pub expires: u64,
}

/// Where the greylist keeps its state: sled on one node, Redis for a fleet. Entries carry
/// their expiry; a backend with TTLs (Redis) forgets them itself, the others are swept.
pub trait GreylistBackend: Send + Sync + 'static {
    /// The triplet under `key`.
    fn triplet(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<TripletState>, GreylistStoreError>> + Send;
    /// Stores the triplet under `key` until `state.expires`.
    fn set_triplet(
        &self,
        key: &str,
        state: &TripletState,
    ) -> impl Future<Output = Result<(), GreylistStoreError>> + Send;
    /// The client network under `key`.
    fn client(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ClientState>, GreylistStoreError>> + Send;
    /// Stores the client network under `key` until `state.expires`.
    fn set_client(
        &self,
        key: &str,
        state: &ClientState,
    ) -> impl Future<Output = Result<(), GreylistStoreError>> + Send;
    /// Forgets what expired by `now`; returns how many entries went (a backend with TTLs
    /// has nothing to do).
    fn sweep(&self, _now: u64) -> usize {
        0
    }
    /// Triplets stored, when the backend can tell cheaply.
    fn stored(&self) -> Option<usize> {
        None
    }
}
