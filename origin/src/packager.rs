//! packager (in progress).
