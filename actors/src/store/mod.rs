//! What is on disk: the sled spool and its committer thread, large bodies as files
//! beside it, a message's bytes as delivery reads them, the free-space reserve, and the
//! AUTH user store.

pub mod body_file;
pub mod committer;
pub mod disk_space;
pub mod envelope;
pub mod message_data;
pub mod spool;
pub mod users;
