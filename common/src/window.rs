//! window (in progress).
