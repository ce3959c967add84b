//! Skyrelay loadtest (filled by its issue).
