//! Prometheus text-format scraping: sum the samples of named counters, optionally narrowed
//! by labels (`name{label="value"}`), so a report can show what a node did during a run.

use std::time::Duration;

use serde::Serialize;

use crate::http::{self, FetchError, HttpClient};

/// A counter read at the start and end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct CounterDelta {
    /// Metrics target name.
    pub target: String,
    /// Counter selector as configured.
    pub counter: String,
    /// Value at the start (`None` when the scrape failed or the counter was absent).
    pub start: Option<f64>,
    /// Value at the end.
    pub end: Option<f64>,
    /// `end - start` (absent series count as 0 once the other scrape saw the counter).
    pub delta: Option<f64>,
}

fn parse_labels(s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        let Some(end) = after.find('"') else { break };
        out.push((k.trim_matches(|c: char| c == ',' || c.is_whitespace()), &after[..end]));
        rest = &after[end + 1..];
    }
    out
}

/// Sums every sample of `selector` (`name` or `name{k="v",...}`) in an exposition text.
/// Returns `None` when no sample matches.
pub fn sum(text: &str, selector: &str) -> Option<f64> {
    let (name, want) = match selector.split_once('{') {
        Some((n, l)) => (n.trim(), parse_labels(l.trim_end_matches('}'))),
        None => (selector.trim(), Vec::new()),
    };
    let mut total = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.find('}') {
            Some(i) => (&line[..=i], line[i + 1..].trim()),
            None => match line.split_once(char::is_whitespace) {
                Some((s, v)) => (s, v.trim()),
                None => continue,
            },
        };
        let (metric, labels) = match series.split_once('{') {
            Some((m, l)) => (m, parse_labels(l.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        if metric != name || !want.iter().all(|w| labels.contains(w)) {
            continue;
        }
        let Some(v) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *total.get_or_insert(0.0) += v;
    }
    total
}

/// Scrapes `url` once.
pub async fn scrape(client: &HttpClient, url: &str) -> Result<String, FetchError> {
    http::get_text(client, url, Duration::from_secs(5)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_selected_series() {
        let text = "# HELP x_total things\n# TYPE x_total counter\n\
x_total{outcome=\"hit\",region=\"eu\"} 10\nx_total{outcome=\"miss\",region=\"eu\"} 2.5\n\
x_total{outcome=\"hit\",region=\"us\"} 1 1700000000\nx_total_other 99\ny 7\n";
        assert_eq!(sum(text, "x_total"), Some(13.5));
        assert_eq!(sum(text, "x_total{outcome=\"hit\"}"), Some(11.0));
        assert_eq!(sum(text, "x_total{outcome=\"hit\",region=\"eu\"}"), Some(10.0));
        assert_eq!(sum(text, "y"), Some(7.0));
        assert_eq!(sum(text, "z"), None);
    }
}
