//! The side-by-side table: medians over the runs, ratios edge ÷ nginx.

use std::fmt::Write;

use crate::client::median;
use crate::procs::WrkResult;
use crate::scenarios::{Cold, Latency, SINGLE_IDLE, Throughput};

/// One run's figures.
pub struct Run {
    /// Edge, nginx proxy, origin direct.
    pub lat: [Latency; 3],
    pub tp: Throughput,
    pub cold: Cold,
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 { format!("{:.2}×", a / b) } else { "-".into() }
}

pub fn table(runs: &[Run], seg_bytes: usize, pl_bytes: usize, clients: usize) -> String {
    let med = |f: &dyn Fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let mut t = String::new();
    let _ = writeln!(t, "| metric (median of {} runs) | Skyrelay edge | nginx | edge ÷ nginx |", runs.len());
    let _ = writeln!(t, "|---|---:|---:|---:|");
    let mut row = |name: &str, e: f64, n: f64| {
        let _ = writeln!(t, "| {name} | {} | {} | {} |", fmt(e), fmt(n), ratio(e, n));
    };
    row("(1) frame → client byte p50 (ms)", med(&|r| r.lat[0].p50), med(&|r| r.lat[1].p50));
    row("(1) frame → client byte p99 (ms)", med(&|r| r.lat[0].p99), med(&|r| r.lat[1].p99));
    row("(1) frame → client byte max (ms)", med(&|r| r.lat[0].max), med(&|r| r.lat[1].max));
    row(
        "(1) frames seen / expected (%)",
        med(&|r| 100.0 * r.lat[0].seen as f64 / r.lat[0].expected.max(1) as f64),
        med(&|r| 100.0 * r.lat[1].seen as f64 / r.lat[1].expected.max(1) as f64),
    );
    let wrk_rows = |row: &mut dyn FnMut(&str, f64, f64),
                    what: &str,
                    e: fn(&Throughput) -> WrkResult,
                    n: fn(&Throughput) -> WrkResult| {
        row(&format!("(2) {what}: requests/s"), med(&|r| e(&r.tp).rps), med(&|r| n(&r.tp).rps));
        row(
            &format!("(2) {what}: requests per server CPU-second"),
            med(&|r| e(&r.tp).per_cpu_s()),
            med(&|r| n(&r.tp).per_cpu_s()),
        );
        row(&format!("(2) {what}: server CPU-seconds"), med(&|r| e(&r.tp).cpu_s), med(&|r| n(&r.tp).cpu_s));
        row(
            &format!("(2) {what}: errors (non-2xx + socket)"),
            med(&|r| (e(&r.tp).non_2xx + e(&r.tp).socket_errors) as f64),
            med(&|r| (n(&r.tp).non_2xx + n(&r.tp).socket_errors) as f64),
        );
    };
    wrk_rows(&mut row, &format!("segment {seg_bytes} B"), |t| t.edge_segment, |t| t.nginx_segment);
    wrk_rows(&mut row, &format!("playlist {pl_bytes} B"), |t| t.edge_playlist, |t| t.nginx_playlist);
    row("(3) origin fetch, 1 client at the origin, TTFB (ms)", med(&|r| r.cold.origin_ttfb), f64::NAN);
    row(
        "(3) cold object, 1 client, right after another, TTFB (ms)",
        med(&|r| r.cold.edge.single),
        med(&|r| r.cold.nginx.single),
    );
    row(
        &format!("(3) cold object, 1 client, first after {} s idle, TTFB (ms)", SINGLE_IDLE.as_secs()),
        med(&|r| r.cold.edge.single_idle),
        med(&|r| r.cold.nginx.single_idle),
    );
    row(
        &format!("(3) cold object, {clients} clients at once, TTFB p50 (ms)"),
        med(&|r| r.cold.edge.segment.p50),
        med(&|r| r.cold.nginx.segment.p50),
    );
    row(
        &format!("(3) cold object, {clients} clients at once, TTFB p99 (ms)"),
        med(&|r| r.cold.edge.segment.p99),
        med(&|r| r.cold.nginx.segment.p99),
    );
    row(
        &format!("(3) cold object, {clients} clients at once, TTFB max (ms)"),
        med(&|r| r.cold.edge.segment.max),
        med(&|r| r.cold.nginx.segment.max),
    );
    row(
        &format!("(3) cold object, {clients} clients: failed or differing responses"),
        med(&|r| r.cold.edge.segment.bad as f64),
        med(&|r| r.cold.nginx.segment.bad as f64),
    );
    let part = format!("(3) cold part (68 KB), {clients} clients at once, TTFB");
    row(&format!("{part} p50 (ms)"), med(&|r| r.cold.edge.part.p50), med(&|r| r.cold.nginx.part.p50));
    row(&format!("{part} p99 (ms)"), med(&|r| r.cold.edge.part.p99), med(&|r| r.cold.nginx.part.p99));
    row(&format!("{part} max (ms)"), med(&|r| r.cold.edge.part.max), med(&|r| r.cold.nginx.part.max));
    row(
        &format!("(3) cold part, {clients} clients: failed or differing responses"),
        med(&|r| r.cold.edge.part.bad as f64),
        med(&|r| r.cold.nginx.part.bad as f64),
    );
    let warm = format!("(3) the same segment cached, {clients} clients at once, TTFB");
    row(&format!("{warm} p50 (ms)"), med(&|r| r.cold.edge.cached.p50), med(&|r| r.cold.nginx.cached.p50));
    row(&format!("{warm} p99 (ms)"), med(&|r| r.cold.edge.cached.p99), med(&|r| r.cold.nginx.cached.p99));
    let _ = writeln!(
        t,
        "\nReference, the origin's own HTTP in the same runs: (1) p50 {} ms, p99 {} ms.",
        fmt(med(&|r| r.lat[2].p50)),
        fmt(med(&|r| r.lat[2].p99))
    );
    let _ = writeln!(t, "\nPer run (edge / nginx):\n");
    for (i, r) in runs.iter().enumerate() {
        let _ = writeln!(
            t,
            "- run {}: (1) p99 {} / {} ms; (2) segment {} / {} req per CPU-s, playlist {} / {} req per CPU-s; \
             (3) segment p99 {} / {} ms, part p99 {} / {} ms (origin fetch {} ms)",
            i + 1,
            fmt(r.lat[0].p99),
            fmt(r.lat[1].p99),
            fmt(r.tp.edge_segment.per_cpu_s()),
            fmt(r.tp.nginx_segment.per_cpu_s()),
            fmt(r.tp.edge_playlist.per_cpu_s()),
            fmt(r.tp.nginx_playlist.per_cpu_s()),
            fmt(r.cold.edge.segment.p99),
            fmt(r.cold.nginx.segment.p99),
            fmt(r.cold.edge.part.p99),
            fmt(r.cold.nginx.part.p99),
            fmt(r.cold.origin_ttfb),
        );
    }
    let _ = writeln!(
        t,
        "\nRequests per server CPU-second, edge ÷ nginx within each run (odd runs measure the edge first, even runs nginx first):\n"
    );
    let per_run =
        |t: &mut String, what: &str, e: fn(&Throughput) -> WrkResult, n: fn(&Throughput) -> WrkResult| {
            let ratios: Vec<f64> = runs.iter().map(|r| e(&r.tp).per_cpu_s() / n(&r.tp).per_cpu_s()).collect();
            let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            let ahead = ratios.iter().filter(|r| **r >= 1.0).count();
            let _ = writeln!(
                t,
                "- {what}: {} (median {:.2}×; edge ≥ nginx in {ahead} of {})",
                list.join(" "),
                median(&ratios),
                ratios.len()
            );
        };
    per_run(&mut t, "segment", |t| t.edge_segment, |t| t.nginx_segment);
    per_run(&mut t, "playlist", |t| t.edge_playlist, |t| t.nginx_playlist);
    t
}
