//! Turns submission records and observed blocks into the run's summary (JSON), its
//! human-readable report, and a comparison table of several runs.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::follow::Observed;
use crate::submit::SubmitRecord;

/// The run's settings, echoed in the summary.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub label: String,
    pub target_rate: Option<f64>,
    pub duration_s: Option<f64>,
    pub concurrency: usize,
    pub accounts: usize,
    pub presigned: usize,
    /// Cores the node used from the first submission to the end of the drain.
    pub node_cpu_cores: Option<f64>,
    /// Cores this generator used over the same time.
    pub loadgen_cpu_cores: Option<f64>,
}

/// Outcome of transactions that were admitted but not seen on the event stream.
#[derive(Debug, Default, Clone)]
pub struct Stragglers {
    /// Receipt codes of those found committed by `GET /txs/{hash}` (their events were absent).
    pub committed_codes: BTreeMap<String, usize>,
    pub pending: usize,
    pub not_found: usize,
    /// Not looked up (over the lookup limit or the lookup failed).
    pub unresolved: usize,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn dist(sorted: &[f64]) -> Value {
    let p = |q| percentile(sorted, q).map(|x| round(x, 1));
    json!({ "p50": p(50.0), "p90": p(90.0), "p99": p(99.0), "max": sorted.last().map(|x| round(*x, 1)) })
}

/// The summary of one run.
pub fn summarize(
    settings: &RunSettings,
    records: &[SubmitRecord],
    observed: &Observed,
    stragglers: &Stragglers,
) -> Value {
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    let mut retried: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        if let Some(code) = &r.rejection {
            *rejected.entry(code.clone()).or_default() += 1;
        }
        for code in &r.retries {
            *retried.entry(code.clone()).or_default() += 1;
        }
    }
    let admitted = records.iter().filter(|r| r.rejection.is_none()).count();
    let first_start = records.iter().map(|r| r.started).min();
    let last_start = records.iter().map(|r| r.started).max();
    let offered_tps = match (first_start, last_start) {
        (Some(a), Some(b)) if b > a => Some((records.len() - 1) as f64 / (b - a).as_secs_f64()),
        _ => None,
    };

    // Submit-to-commit latency: block event arrival minus the submission's first request.
    let mut latencies = Vec::new();
    let mut last_commit: Option<Instant> = None;
    for r in records {
        let Some(height) = observed.committed_at.get(r.index).copied().flatten() else { continue };
        let Some(block) = observed.blocks.get(&height) else { continue };
        latencies.push(ms(block.arrived.saturating_duration_since(r.started)));
        last_commit = last_commit.max(Some(block.arrived));
    }
    let committed = latencies.len();
    let latencies = sorted(latencies);
    let window_s = match (first_start, last_commit) {
        (Some(a), Some(b)) if b > a => Some((b - a).as_secs_f64()),
        _ => None,
    };
    let committed_tps = window_s.map(|w| committed as f64 / w);

    // Blocks committed within the window.
    let in_window: Vec<_> = observed
        .blocks
        .values()
        .filter(|b| first_start.is_some_and(|s| b.arrived >= s))
        .filter(|b| last_commit.is_some_and(|l| b.arrived <= l))
        .collect();
    let times: Vec<u64> = in_window.iter().filter_map(|b| b.time_ms).collect();
    let mean_block_ms = match (times.first(), times.last()) {
        (Some(a), Some(b)) if times.len() > 1 => {
            Some((b.saturating_sub(*a)) as f64 / (times.len() - 1) as f64)
        }
        _ => None,
    };
    let ours: Vec<usize> = in_window.iter().map(|b| b.ours).collect();
    let commit_s: Vec<f64> = in_window
        .iter()
        .filter_map(|b| observed.metrics.get(&b.height)?.block_commit_seconds)
        .collect();
    let mempool_max = in_window
        .iter()
        .filter_map(|b| observed.metrics.get(&b.height)?.mempool_size)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let rtt = sorted(records.iter().map(|r| ms(r.finished - r.started)).collect());
    let lag = sorted(
        records.iter().map(|r| ms(r.started.saturating_duration_since(r.scheduled))).collect(),
    );

    json!({
        "label": settings.label,
        "target_rate": settings.target_rate,
        "duration_s": settings.duration_s,
        "concurrency": settings.concurrency,
        "accounts": settings.accounts,
        "presigned": settings.presigned,
        "released": records.len(),
        "offered_tps": offered_tps.map(|x| round(x, 1)),
        "admitted": admitted,
        "rejected": rejected,
        "retried": retried,
        "committed": committed,
        "window_s": window_s.map(|x| round(x, 3)),
        "committed_tps": committed_tps.map(|x| round(x, 1)),
        "latency_ms": dist(&latencies),
        "submit_rtt_ms": dist(&rtt),
        "schedule_lag_ms": dist(&lag),
        "blocks": in_window.len(),
        "mean_block_time_ms": mean_block_ms.map(|x| round(x, 1)),
        "txs_per_block_mean": (!ours.is_empty()).then(|| round(ours.iter().sum::<usize>() as f64 / ours.len() as f64, 1)),
        "txs_per_block_max": ours.iter().max(),
        "block_commit_s_mean": (!commit_s.is_empty()).then(|| round(commit_s.iter().sum::<f64>() / commit_s.len() as f64, 4)),
        "block_commit_s_max": commit_s.iter().copied().reduce(f64::max).map(|x| round(x, 4)),
        "mempool_size_max": mempool_max,
        "node_cpu_cores": settings.node_cpu_cores.map(|x| round(x, 2)),
        "loadgen_cpu_cores": settings.loadgen_cpu_cores.map(|x| round(x, 2)),
        "stragglers": {
            "committed_without_event": stragglers.committed_codes,
            "pending_at_end": stragglers.pending,
            "not_found": stragglers.not_found,
            "unresolved": stragglers.unresolved,
        },
    })
}

fn num(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Number(n) => n.to_string(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn target(s: &Value) -> String {
    if s["target_rate"].is_null() { "max".into() } else { num(s, "target_rate") }
}

fn counts(v: &Value) -> String {
    match v.as_object() {
        Some(o) if !o.is_empty() => {
            o.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(",")
        }
        _ => "0".into(),
    }
}

/// The human-readable report of one run.
pub fn render(s: &Value) -> String {
    let lat = &s["latency_ms"];
    let l = |k: &str| num(lat, k);
    format!(
        "run {label}: target {target} tx/s, concurrency {conc}, {accounts} accounts\n\
         \x20 released {released} (offered {offered} tx/s), admitted {admitted}, rejected {rejected}, retried {retried}\n\
         \x20 committed {committed} in {window} s -> {tps} tx/s\n\
         \x20 submit-to-commit ms: p50 {p50}  p90 {p90}  p99 {p99}  max {max}\n\
         \x20 submit RTT ms: p50 {rtt50}  p99 {rtt99}; schedule lag p99 {lag99} ms\n\
         \x20 blocks {blocks}, mean block time {bt} ms, our txs/block mean {tpbm} max {tpbx}\n\
         \x20 node block commit s: mean {cm} max {cx}; mempool size max {mp}\n\
         \x20 CPU cores used, submission to drain: node {ncpu}, generator {gcpu}\n\
         \x20 stragglers: {strag}",
        label = s["label"].as_str().unwrap_or(""),
        target = target(s),
        conc = num(s, "concurrency"),
        accounts = num(s, "accounts"),
        released = num(s, "released"),
        offered = num(s, "offered_tps"),
        admitted = num(s, "admitted"),
        rejected = counts(&s["rejected"]),
        retried = counts(&s["retried"]),
        committed = num(s, "committed"),
        window = num(s, "window_s"),
        tps = num(s, "committed_tps"),
        p50 = l("p50"),
        p90 = l("p90"),
        p99 = l("p99"),
        max = l("max"),
        rtt50 = num(&s["submit_rtt_ms"], "p50"),
        rtt99 = num(&s["submit_rtt_ms"], "p99"),
        lag99 = num(&s["schedule_lag_ms"], "p99"),
        blocks = num(s, "blocks"),
        bt = num(s, "mean_block_time_ms"),
        tpbm = num(s, "txs_per_block_mean"),
        tpbx = num(s, "txs_per_block_max"),
        cm = num(s, "block_commit_s_mean"),
        cx = num(s, "block_commit_s_max"),
        mp = num(s, "mempool_size_max"),
        ncpu = num(s, "node_cpu_cores"),
        gcpu = num(s, "loadgen_cpu_cores"),
        strag = s["stragglers"],
    )
}

/// A Markdown table comparing runs.
pub fn table(runs: &[Value]) -> String {
    let mut out = String::from(
        "| run | target tx/s | offered tx/s | admitted | rejected | committed | committed tx/s | p50 ms | p90 ms | p99 ms | blocks | mean block ms | txs/block max | commit s mean/max | CPU node/gen |\n\
         |---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for s in runs {
        let lat = &s["latency_ms"];
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {}/{} |\n",
            s["label"].as_str().unwrap_or(""),
            target(s),
            num(s, "offered_tps"),
            num(s, "admitted"),
            counts(&s["rejected"]),
            num(s, "committed"),
            num(s, "committed_tps"),
            num(lat, "p50"),
            num(lat, "p90"),
            num(lat, "p99"),
            num(s, "blocks"),
            num(s, "mean_block_time_ms"),
            num(s, "txs_per_block_max"),
            num(s, "block_commit_s_mean"),
            num(s, "block_commit_s_max"),
            num(s, "node_cpu_cores"),
            num(s, "loadgen_cpu_cores"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 1.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
