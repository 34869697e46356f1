//! What is on disk: the sled spool and its committer thread, large bodies as files
//! beside it, a message's bytes as delivery reads them, the free-space reserve, the
//! room Sessions claim in it and the ids they give, the
//! AUTH user store and the greylist's triplets, in a data directory only hermod's user
//! may enter ([`private_dir`]).

pub mod body_file;
pub mod committer;
pub mod envelope;
pub mod event_log;
pub mod finished;
pub mod greylist;
pub mod message_data;
pub mod private_dir;
pub mod room;
pub mod spool;
pub mod transcripts;
pub mod users;
