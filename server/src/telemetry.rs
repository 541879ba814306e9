//! Logs (through `tracing`) and the counters behind `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber: human-readable lines on stderr by default, one JSON
/// object per line with `--log-format json`. Safe to call more than once (tests).
pub fn init_logging(level: &LogLevel, format: LogFormat) {
    let filter = EnvFilter::builder().parse_lossy(&level.0);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Upper bounds, in seconds, of the request latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    /// Count of observations at or under each bound (cumulative, as exposed).
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
}

/// HTTP request counts and latencies by route template (never the raw path, which
/// would let clients create unbounded series).
#[derive(Default)]
pub struct HttpMetrics {
    registry: Mutex<Registry>,
}

impl HttpMetrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *registry.requests.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        let histogram = registry.latency.entry((method.to_string(), route.to_string())).or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        out.push_str("# HELP landfall_http_requests_total HTTP requests answered, by method, route and status.\n");
        out.push_str("# TYPE landfall_http_requests_total counter\n");
        for ((method, route, status), count) in &registry.requests {
            let _ = writeln!(
                out,
                "landfall_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(method),
                escape(route)
            );
        }
        out.push_str(
            "# HELP landfall_http_request_duration_seconds Time to answer HTTP requests, by method and route.\n",
        );
        out.push_str("# TYPE landfall_http_request_duration_seconds histogram\n");
        for ((method, route), histogram) in &registry.latency {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                let _ =
                    writeln!(out, "landfall_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "landfall_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "landfall_http_request_duration_seconds_sum{{{labels}}} {}", histogram.sum);
            let _ = writeln!(out, "landfall_http_request_duration_seconds_count{{{labels}}} {}", histogram.count);
        }
        out.push_str("# HELP landfall_build_info The running Landfall version.\n");
        out.push_str("# TYPE landfall_build_info gauge\n");
        let _ = writeln!(out, "landfall_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        out
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = HttpMetrics::default();
        metrics.observe("GET", "/healthz", 200, Duration::from_millis(3));
        metrics.observe("GET", "/healthz", 200, Duration::from_millis(300));
        metrics.observe("GET", "/x\"y", 404, Duration::from_secs(20));
        let text = metrics.render();
        assert!(
            text.contains("landfall_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("route=\"/x\\\"y\",status=\"404\"} 1"), "{text}");
        let bucket = |le: &str| {
            format!("landfall_http_request_duration_seconds_bucket{{method=\"GET\",route=\"/healthz\",le=\"{le}\"}}")
        };
        assert!(text.contains(&format!("{} 0", bucket("0.001"))), "{text}");
        assert!(text.contains(&format!("{} 1", bucket("0.005"))), "{text}");
        assert!(text.contains(&format!("{} 2", bucket("0.5"))), "{text}");
        assert!(text.contains(&format!("{} 2", bucket("+Inf"))), "{text}");
        assert!(
            text.contains("landfall_http_request_duration_seconds_count{method=\"GET\",route=\"/x\\\"y\"} 1"),
            "{text}"
        );
    }
}
