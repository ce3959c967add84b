//! Skyrelay edge (filled by its issue).
