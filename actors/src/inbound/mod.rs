//! Mail coming in: the Listener actor that accepts connections and the Session actor
//! that drives the sans-IO protocol over one of them.

pub mod listener;
pub mod session;
