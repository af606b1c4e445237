//! Savefiles.
