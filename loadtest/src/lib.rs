//! Skyrelay load tester.
//!
//! Publishers replay an FLV recording over RTMP and stamp every video frame with its
//! wall-clock send time in an H.264 SEI message; viewers play LL-HLS or classic HLS and
//! read the stamps back from the media they receive, so per-frame latency needs no shared
//! clock file. Layout:
//!
//! - [`sei`]: stamp insertion and streaming extraction (fMP4 and MPEG-TS payloads).
//! - [`flv`]: FLV recording reader; [`rtmp`]: publishing client; [`publish`]: replay loop.
//! - [`playlist`]: HLS playlist parsing; [`plcache`]: one parse per playlist text, shared;
//!   [`http`]: pooled client and scoped URLs;
//!   [`viewer`]: LL-HLS and HLS players.
//! - [`stats`]: histograms and counters; [`summary`]: final numbers; [`prom`]: Prometheus scraping;
//!   [`report`]: table and JSON; [`plot`]: SVG plot.
//! - [`scenario`]: the TOML scenario and the run that ties everything together.
//! - [`burst`]: cold-miss bursts (many clients, one object, one instant, time to first byte).
//! - [`cli`]: the commands, shared by `skyrelay-loadtest` and `skyrelay loadtest`.

pub mod burst;
pub mod cli;
pub mod flv;
pub mod http;
pub mod playlist;
pub mod plcache;
pub mod plot;
pub mod prom;
pub mod publish;
pub mod report;
pub mod rtmp;
pub mod scenario;
pub mod sei;
pub mod stats;
pub mod summary;
pub mod viewer;
