//! Which characters a peer may not put into what hermod writes on: control characters
//! (C0, DEL, C1) and the Unicode line and paragraph separators. Addresses with them are
//! refused, a next hop's reply text has them replaced, a header a policy adds keeps none,
//! and the log and the command line write them escaped; all ask [`is_unsafe`].

/// Whether `c` may not travel on as it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}
