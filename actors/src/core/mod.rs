//! The bottom floor: values and services every stage uses, importing none of them —
//! queue ids, the free-space reserve and its claims, the process's TLS backend and what
//! a handshake agreed on, a message's trace, the greylist's stored state and its store trait, the relay
//! domains found to loop back, and durations as the configuration writes them.

pub mod bounce_class;
pub mod disk_space;
pub mod duration;
pub mod greylist_state;
pub mod id;
pub mod looping_domains;
pub mod message_trace;
pub mod peer_list;
pub mod tls;
