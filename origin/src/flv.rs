//! flv (in progress).
