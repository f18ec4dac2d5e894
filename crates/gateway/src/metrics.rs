//! Prometheus metrics: requests and errors by route, replica and outcome; latency and time to
//! first token by route; streams broken after they started.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::balancer::Pool;

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default, Debug, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default, Debug)]
struct Inner {
    /// (route, replica, outcome) → requests.
    outcomes: BTreeMap<(String, String, String), u64>,
    /// (route, replica) → time to the end of the answer.
    latency: BTreeMap<(String, String), Histogram>,
    /// (route, replica) → time to the first streamed bytes.
    ttft: BTreeMap<(String, String), Histogram>,
    /// (key, outcome) → requests, and key → latency.
    key_outcomes: BTreeMap<(String, String), u64>,
    key_latency: BTreeMap<String, Histogram>,
    /// (route, replica) → streamed completion tokens per second (moving average).
    token_rate: BTreeMap<(String, String), f64>,
    broken: BTreeMap<(String, String), u64>,
    /// (route, key) → tokens the replicas reported.
    tokens: BTreeMap<(String, String), u64>,
}

/// What the gateway counts.
#[derive(Default, Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request ended: `outcome` is `ok` or an error code; `replica` is empty when none took it.
    pub fn finished(&self, route: &str, replica: &str, outcome: &str, took: Duration) {
        let mut m = self.inner();
        *m.outcomes.entry((route.into(), replica.into(), outcome.into())).or_default() += 1;
        m.latency.entry((route.into(), replica.into())).or_default().observe(took);
    }

    /// A request of API key `key` ended (`anonymous` on an open gateway).
    pub fn key_finished(&self, key: &str, outcome: &str, took: Duration) {
        let mut m = self.inner();
        *m.key_outcomes.entry((key.into(), outcome.into())).or_default() += 1;
        m.key_latency.entry(key.into()).or_default().observe(took);
    }

    pub fn first_token(&self, route: &str, replica: &str, after: Duration) {
        self.inner().ttft.entry((route.into(), replica.into())).or_default().observe(after);
    }

    /// A stream of `tokens` completion tokens took `streaming` from its first bytes to its end.
    pub fn token_rate(&self, route: &str, replica: &str, tokens: u64, streaming: Duration) {
        let secs = streaming.as_secs_f64();
        if tokens == 0 || secs <= 0.0 {
            return;
        }
        let rate = tokens as f64 / secs;
        let mut m = self.inner();
        let avg = m.token_rate.entry((route.into(), replica.into())).or_insert(rate);
        *avg = 0.8 * *avg + 0.2 * rate;
    }

    pub fn tokens(&self, route: &str, key: &str, n: u64) {
        *self.inner().tokens.entry((route.into(), key.into())).or_default() += n;
    }

    pub fn stream_broken(&self, route: &str, replica: &str) {
        *self.inner().broken.entry((route.into(), replica.into())).or_default() += 1;
    }

    /// The Prometheus text exposition, with each replica's state from `pools`.
    pub fn render<'a>(
        &self,
        pools: impl Iterator<Item = (&'a String, &'a std::sync::Arc<Pool>)>,
        keys: &crate::keys::Keys,
    ) -> String {
        let m = self.inner();
        let mut out = String::new();
        out.push_str("# HELP gridlease_gateway_tokens_total Tokens the replicas reported used, by route and key.\n# TYPE gridlease_gateway_tokens_total counter\n");
        for ((route, key), n) in &m.tokens {
            let _ = writeln!(
                out,
                "gridlease_gateway_tokens_total{{route=\"{route}\",key=\"{key}\"}} {n}"
            );
        }
        out.push_str("# HELP gridlease_gateway_key_budget_remaining_tokens Tokens a key may still use (keys with a budget).\n# TYPE gridlease_gateway_key_budget_remaining_tokens gauge\n");
        for (name, used, budget) in keys.usage() {
            if let Some(b) = budget {
                let left = b.saturating_sub(used);
                let _ = writeln!(
                    out,
                    "gridlease_gateway_key_budget_remaining_tokens{{key=\"{name}\"}} {left}"
                );
            }
        }
        out.push_str("# HELP gridlease_gateway_requests_total Requests by route, replica and outcome (ok or error code).\n# TYPE gridlease_gateway_requests_total counter\n");
        for ((route, replica, outcome), n) in &m.outcomes {
            let _ = writeln!(
                out,
                "gridlease_gateway_requests_total{{route=\"{route}\",replica=\"{replica}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP gridlease_gateway_request_seconds Time from request to the end of the answer.\n# TYPE gridlease_gateway_request_seconds histogram\n");
        for ((route, replica), h) in &m.latency {
            let labels = format!("route=\"{route}\",replica=\"{replica}\"");
            h.render(&mut out, "gridlease_gateway_request_seconds", &labels);
        }
        out.push_str("# HELP gridlease_gateway_time_to_first_token_seconds Time from request to the first streamed bytes.\n# TYPE gridlease_gateway_time_to_first_token_seconds histogram\n");
        for ((route, replica), h) in &m.ttft {
            let labels = format!("route=\"{route}\",replica=\"{replica}\"");
            h.render(&mut out, "gridlease_gateway_time_to_first_token_seconds", &labels);
        }
        out.push_str("# HELP gridlease_gateway_tokens_per_second Streamed completion tokens per second (moving average).\n# TYPE gridlease_gateway_tokens_per_second gauge\n");
        for ((route, replica), rate) in &m.token_rate {
            let labels = format!("route=\"{route}\",replica=\"{replica}\"");
            let _ = writeln!(out, "gridlease_gateway_tokens_per_second{{{labels}}} {rate:.3}");
        }
        out.push_str("# HELP gridlease_gateway_key_requests_total Requests by API key and outcome.\n# TYPE gridlease_gateway_key_requests_total counter\n");
        for ((key, outcome), n) in &m.key_outcomes {
            let labels = format!("key=\"{key}\",outcome=\"{outcome}\"");
            let _ = writeln!(out, "gridlease_gateway_key_requests_total{{{labels}}} {n}");
        }
        out.push_str("# HELP gridlease_gateway_key_request_seconds Time from request to the end of the answer, by API key.\n# TYPE gridlease_gateway_key_request_seconds histogram\n");
        for (key, h) in &m.key_latency {
            h.render(&mut out, "gridlease_gateway_key_request_seconds", &format!("key=\"{key}\""));
        }
        out.push_str("# HELP gridlease_gateway_streams_broken_total Streams that broke after they started (ended with an error event).\n# TYPE gridlease_gateway_streams_broken_total counter\n");
        for ((route, replica), n) in &m.broken {
            let _ = writeln!(
                out,
                "gridlease_gateway_streams_broken_total{{route=\"{route}\",replica=\"{replica}\"}} {n}"
            );
        }
        out.push_str("# HELP gridlease_gateway_replica_ejected Whether the replica is ejected now (1) or takes traffic (0).\n# TYPE gridlease_gateway_replica_ejected gauge\n");
        out.push_str("# HELP gridlease_gateway_replica_outstanding Requests in flight on the replica.\n# TYPE gridlease_gateway_replica_outstanding gauge\n");
        let now = std::time::Instant::now();
        for (route, pool) in pools {
            for r in pool.replicas() {
                let labels = format!("route=\"{route}\",replica=\"{}\"", r.name);
                let _ = writeln!(
                    out,
                    "gridlease_gateway_replica_ejected{{{labels}}} {}",
                    u8::from(r.is_ejected(now))
                );
                let _ = writeln!(
                    out,
                    "gridlease_gateway_replica_outstanding{{{labels}}} {}",
                    r.outstanding()
                );
            }
        }
        out
    }
}
