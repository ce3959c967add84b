//! Test support: a throwaway PostgreSQL cluster, per-backend databases, an in-process app.
#![allow(dead_code)]

pub mod app;
pub mod pg;

/// A fresh SQLite store URL in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("cp.db").display())
}
