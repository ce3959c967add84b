//! A property of the machine the figures depend on: what touching memory costs once it sat
//! idle.
//!
//! On some virtual machines (nested virtualisation, memory reclaimed or tracked by the host)
//! a page that went untouched for a second or more traps to the hypervisor on its next
//! touch, tens of microseconds instead of a fraction of one. A request that follows a pause
//! touches hundreds of such pages (buffers, socket memory, the other process's side), so
//! its latency then says more about the machine than about the server. The bench prints
//! this figure beside its results.

use std::time::{Duration, Instant};

use crate::client::median;

const PAGE: usize = 4096;
const PAGES: usize = 4096;

/// Microseconds per page to touch (write one byte of) `PAGES` pages of memory that was
/// just touched, and the same after `idle` untouched: the median of `rounds` rounds each.
pub fn idle_touch_cost(idle: Duration, rounds: usize) -> (f64, f64) {
    let mut buf = vec![0u8; PAGE * PAGES];
    touch(&mut buf);
    let (mut hot, mut cold) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        hot.push(touch(&mut buf));
        std::thread::sleep(idle);
        cold.push(touch(&mut buf));
    }
    (median(&hot), median(&cold))
}

/// [`idle_touch_cost`] off the async runtime (it sleeps), as a sentence for the report.
pub async fn report_line(idle: Duration) -> Result<String, String> {
    let (hot, cold) = tokio::task::spawn_blocking(move || idle_touch_cost(idle, 3))
        .await
        .map_err(|e| format!("memory probe: {e}"))?;
    Ok(format!(
        "This machine: writing to memory costs {hot:.2} µs per 4 KiB page when it was just touched, \
         {cold:.2} µs after {} s untouched (median of 3).",
        idle.as_secs()
    ))
}

/// Writes one byte per page; microseconds per page.
fn touch(buf: &mut [u8]) -> f64 {
    let start = Instant::now();
    for page in buf.chunks_mut(PAGE) {
        page[0] = page[0].wrapping_add(1);
        // The write must happen, once per page, in memory.
        std::hint::black_box(&page[0]);
    }
    start.elapsed().as_secs_f64() * 1e6 / (buf.len() / PAGE) as f64
}
