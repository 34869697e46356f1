//! `log.debug_peers`: the client and next-hop addresses, networks and domains whose events
//! are logged at DEBUG ([`crate::logging::debug_peers`] does the logging); the list itself
//! is the engine's [`PeerList`](hermod_actors::core::peer_list::PeerList), which
//! `log.transcript_peers` uses too.

pub use hermod_actors::core::peer_list::{NotAPeer, PeerList as DebugPeers};
