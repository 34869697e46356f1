//! The SMTP protocol without I/O and without a clock: bytes and `now` go in, replies and
//! actions come out (and, for the delivery client, replies are read out of bytes by
//! [`reply_reader`]). The Session actor drives it over a socket; tests, fuzzers and
//! benchmarks drive it over a buffer. Nothing here imports tokio or actix.

pub mod address;
pub mod body_sink;
pub mod check;
pub mod command;
pub mod datetime;
pub mod deadline;
pub mod dot_stuffer;
pub mod receiver;
pub mod relay;
pub mod reply;
pub mod reply_reader;
pub mod sasl;
pub mod security;
pub mod session;
pub mod spool_room;
pub mod status;
pub mod text;
pub mod transcript;

pub use reply::Reply;
pub use session::{Event, ServerSession, ServerSettings};
