//! The sender (work in progress).
