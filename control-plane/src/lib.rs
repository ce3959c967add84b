//! Skyrelay control-plane (filled by its issue).
