//! hub (in progress).
