//! playlist (in progress).
