//! cmaf (in progress).
