//! Human durations in the configuration: the engine's reader and writer
//! ([`hermod_actors::core::duration`]), here for `#[serde(with = "super::duration")]`.

pub use hermod_actors::core::duration::{DurationError, deserialize, format, parse, serialize};
