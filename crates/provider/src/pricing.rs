//! Prices a bid: per-resource rates with a rate per GPU model, or an external price script
//! (the order as JSON on stdin, the price per block on stdout) as Akash providers use.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gridlease_types::{DecAmount, GroupSpec, ResourceOffer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Rates;

const GIB: u128 = 1 << 30;

/// Why no price could be computed.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("the price overflows")]
    Overflow,
    #[error("price script {path}: {message}")]
    Script { path: String, message: String },
}

fn scaled(rate: DecAmount, quantity: u128, per: u128) -> Result<u128, PriceError> {
    rate.atto().checked_mul(quantity).map(|x| x / per).ok_or(PriceError::Overflow)
}

/// The price per block of `offer` at `rates`: for each unit, count × (cores × cpu rate +
/// GiB of memory × memory rate + GiB of storage × storage rate + GPUs × the model's rate).
pub fn price_offer(rates: &Rates, offer: &[ResourceOffer]) -> Result<DecAmount, PriceError> {
    let mut total: u128 = 0;
    for unit in offer {
        let storage: u128 = unit.storage.iter().map(|v| u128::from(v.bytes)).sum();
        let mut one = scaled(rates.cpu_per_core, u128::from(unit.cpu_millis), 1000)?;
        let add = |a: u128, b: u128| a.checked_add(b).ok_or(PriceError::Overflow);
        one = add(one, scaled(rates.memory_per_gib, u128::from(unit.memory_bytes), GIB)?)?;
        one = add(one, scaled(rates.storage_per_gib, storage, GIB)?)?;
        if let Some(g) = &unit.gpu {
            let rate = rates.gpu.get(&g.model.to_lowercase()).copied().unwrap_or(rates.gpu_default);
            one = add(one, scaled(rate, u128::from(g.units), 1)?)?;
        }
        let all = one.checked_mul(u128::from(unit.count)).ok_or(PriceError::Overflow)?;
        total = add(total, all)?;
    }
    // A bid of zero would be refused by the chain: the smallest unit instead.
    Ok(DecAmount::from_atto(total.max(1)))
}

/// The document a price script reads on stdin.
pub fn script_input(spec: &GroupSpec, offer: &[ResourceOffer], denom: &str) -> serde_json::Value {
    json!({ "group": spec, "offer": offer, "denom": denom, "price_precision": 18 })
}

/// Starts the script. A script written moments ago can still be open for writing in a child
/// that another thread forked and has not yet exec'd (ETXTBSY): that clears within
/// milliseconds, so it is retried briefly.
async fn spawn_script(path: &Path) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        let spawned = tokio::process::Command::new(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

/// Linux's "text file busy".
const ETXTBSY: i32 = 26;

/// Runs the price script and parses the decimal it prints.
pub async fn run_script(
    path: &Path,
    input: &serde_json::Value,
    timeout: Duration,
) -> Result<DecAmount, PriceError> {
    let err = |message: String| PriceError::Script { path: path.display().to_string(), message };
    let mut child = spawn_script(path).await.map_err(|e| err(format!("cannot start: {e}")))?;
    let body = input.to_string();
    let mut stdin = child.stdin.take().ok_or_else(|| err("no stdin".into()))?;
    let mut stdout = child.stdout.take().ok_or_else(|| err("no stdout".into()))?;
    let run = async {
        // Feed stdin while reading stdout, so a script that prints before it has read
        // everything cannot deadlock against us. A script that never reads its input (or
        // exits early) closes the pipe: that is its choice, not an error.
        let feed = async {
            match stdin.write_all(body.as_bytes()).await {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(err(format!("write: {e}")))
                }
                _ => Ok(()),
            }?;
            drop(stdin);
            Ok::<(), PriceError>(())
        };
        let mut out = String::new();
        let read =
            async { stdout.read_to_string(&mut out).await.map_err(|e| err(format!("read: {e}"))) };
        let (fed, read) = tokio::join!(feed, read);
        fed?;
        read?;
        let status = child.wait().await.map_err(|e| err(format!("wait: {e}")))?;
        if !status.success() {
            return Err(err(format!("exited with {status}")));
        }
        let text = out.trim();
        text.parse::<DecAmount>().map_err(|e| err(format!("printed `{text}`, not a price: {e}")))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(err(format!("took longer than {} ms", timeout.as_millis()))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gridlease_types::{Denom, GpuOffer, StorageVolume};

    use super::*;

    fn rates() -> Rates {
        let d = |s: &str| s.parse::<DecAmount>().expect("dec");
        Rates {
            denom: Denom::new("uusdc").expect("denom"),
            cpu_per_core: d("1"),
            memory_per_gib: d("0.5"),
            storage_per_gib: d("0.1"),
            gpu_default: d("20"),
            gpu: BTreeMap::from([("a100".to_string(), d("40"))]),
            exchange: BTreeMap::new(),
            max_sla_penalty_ppm: 100_000,
            min_sla_period_blocks: 3_600,
        }
    }

    fn offer(model: Option<&str>) -> ResourceOffer {
        ResourceOffer {
            cpu_millis: 1500,
            memory_bytes: 2 << 30,
            storage: vec![StorageVolume {
                name: "d".into(),
                bytes: 10 << 30,
                class: None,
                persistent: false,
            }],
            gpu: model.map(|m| GpuOffer {
                units: 2,
                vendor: "nvidia".into(),
                model: m.into(),
                ram: "80Gi".into(),
                interface: "sxm".into(),
            }),
            count: 3,
        }
    }

    #[test]
    fn rates_add_up_per_resource_and_model() {
        // 3 × (1.5 + 1 + 1) = 10.5 without GPUs; + 3 × 2 × 40 with two A100s each.
        assert_eq!(price_offer(&rates(), &[offer(None)]).ok(), "10.5".parse().ok());
        assert_eq!(price_offer(&rates(), &[offer(Some("A100"))]).ok(), "250.5".parse().ok());
        assert_eq!(price_offer(&rates(), &[offer(Some("t4"))]).ok(), "130.5".parse().ok());
    }

    #[tokio::test]
    async fn scripts_price_with_a_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = dir.path().join("ok.sh");
        std::fs::write(&ok, "#!/bin/sh\ncat >/dev/null\necho 12.25\n").expect("write");
        let slow = dir.path().join("slow.sh");
        std::fs::write(&slow, "#!/bin/sh\nsleep 5\necho 1\n").expect("write");
        let bad = dir.path().join("bad.sh");
        std::fs::write(&bad, "#!/bin/sh\necho lots\n").expect("write");
        for p in [&ok, &slow, &bad] {
            let mut perm = std::fs::metadata(p).expect("meta").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            std::fs::set_permissions(p, perm).expect("chmod");
        }
        let input = json!({"x": 1});
        let t = Duration::from_millis(500);
        assert_eq!(run_script(&ok, &input, t).await.ok(), "12.25".parse().ok());
        let e = run_script(&slow, &input, t).await.expect_err("slow").to_string();
        assert!(e.contains("took longer than 500 ms"), "{e}");
        let e = run_script(&bad, &input, t).await.expect_err("bad").to_string();
        assert!(e.contains("printed `lots`"), "{e}");
        // A script that ignores an input larger than the pipe buffer still prices.
        let big = json!({"x": "y".repeat(1 << 20)});
        let quick = dir.path().join("quick.sh");
        std::fs::write(&quick, "#!/bin/sh\necho 3\n").expect("write");
        let mut perm = std::fs::metadata(&quick).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&quick, perm).expect("chmod");
        assert_eq!(run_script(&quick, &big, t).await.ok(), "3".parse().ok());
    }
}
