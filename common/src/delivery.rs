//! delivery (in progress).
