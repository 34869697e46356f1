//! Where the policies keep state that a fleet must share: each policy's state sits behind
//! a small interface with an embedded backend (in process, or sled in the spool's
//! database) and [`redis::RedisBackend`], which several hermod nodes use at once.

pub mod redis;
