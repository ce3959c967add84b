//! rtmp (in progress).
