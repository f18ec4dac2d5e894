//! `gridlease devnet` end to end, as a newcomer runs it: the devnet comes up with its demo
//! deployment, the endpoint answers an OpenAI-style request, a tenant without funds is told
//! so, the tenant closes the deployment and sees the escrow refund in its balance, and Ctrl-C
//! stops every process the devnet started.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{GRIDLEASE, free_port};
use serde_json::Value;

fn gridlease(home: &Path, rpc: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(GRIDLEASE)
        .args(args)
        .env("GRIDLEASE_HOME", home)
        .env("GRIDLEASE_NODE", rpc)
        .env("GRIDLEASE_FROM", "tenant")
        .env("GRIDLEASE_PASSPHRASE", "devnet")
        .output()
        .expect("run gridlease");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn post(url: &str, path: &str, body: &str) -> Option<(u16, String)> {
    common::post_json(url, path, body, Duration::from_secs(5))
}

fn uusdc(home: &Path, rpc: &str) -> u128 {
    let (code, out, err) = gridlease(home, rpc, &["balance", "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    v["balances"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["denom"] == "uusdc")
        .and_then(|c| c["amount"].as_str())
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && !cmd.contains("devnet_e2e") {
            found.push(cmd);
        }
    }
    found
}

/// Processes whose working directory is under `dir`.
fn pids_working_under(dir: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn devnet_deploy_answer_close_refund_and_stop() {
    devnet_round_trip(1);
}

/// The same on four validator processes (`--validators 4`).
#[test]
fn devnet_on_four_validators() {
    devnet_round_trip(4);
}

fn devnet_round_trip(validators: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("devnet");
    let port = free_port();
    let rpc = format!("http://127.0.0.1:{port}");
    let mut devnet = Command::new(GRIDLEASE)
        .args([
            "devnet",
            "--driver",
            "exec",
            "--block-time-ms",
            "300",
            "--rpc-port",
            &port.to_string(),
            "--validators",
            &validators.to_string(),
            "--output",
            "json",
            "--home",
        ])
        .arg(&home)
        .stdout(std::fs::File::create(dir.path().join("devnet.out")).expect("create devnet.out"))
        .stderr(std::fs::File::create(dir.path().join("devnet.err")).expect("create devnet.err"))
        .spawn()
        .expect("start devnet");
    let info_path = home.join("devnet.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !info_path.exists() {
        if let Ok(Some(status)) = devnet.try_wait() {
            panic!("devnet exited with {status}: {:?}", std::fs::read_dir(home.join("logs")).ok());
        }
        assert!(Instant::now() < deadline, "devnet did not come up in time");
        std::thread::sleep(Duration::from_millis(200));
    }
    let info: Value =
        serde_json::from_slice(&std::fs::read(&info_path).expect("read")).expect("json");
    // With `--output json`, stdout is devnet.json on one line and the words go to stderr.
    let out_path = dir.path().join("devnet.out");
    let printed = loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(line) = text.lines().next().filter(|_| text.ends_with('\n')) {
            break serde_json::from_str::<Value>(line).expect("stdout is one JSON line");
        }
        assert!(Instant::now() < deadline, "devnet printed no JSON: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(printed, info, "stdout holds what devnet.json holds");
    let said = std::fs::read_to_string(dir.path().join("devnet.err")).expect("devnet.err");
    assert!(said.contains("gridlease devnet is up"), "{said}");
    assert_eq!(info["rpc"], Value::String(rpc.clone()));
    assert_eq!(info["providers"].as_array().map(Vec::len), Some(3));
    assert_eq!(info["tenant_key"], "tenant");
    let nodes = info["validators"].as_array().expect("validators listed");
    assert_eq!(nodes.len(), validators as usize, "{info}");
    assert_eq!(nodes[0], Value::String(rpc.clone()));
    let dseq = info["demo"]["dseq"].as_u64().expect("demo dseq");
    assert_eq!(info["demo"]["model"], "gridlease-demo-echo", "{info}");
    assert_eq!(info["demo"]["real_model"], false, "{info}");
    let endpoint = info["demo"]["endpoints"]["llm"][0].as_str().expect("demo endpoint").to_string();

    // The endpoint answers like an OpenAI server, and says it is a demo.
    let req =
        r#"{"model":"gridlease-demo-echo","messages":[{"role":"user","content":"hello grid"}]}"#;
    let (code, text) = post(&endpoint, "/v1/chat/completions", req).expect("the demo answers");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("you said: hello grid") && text.contains("demo model"), "{text}");

    // The same through the inference gateway, which found the demo's lease on chain and at
    // its provider: one OpenAI endpoint in front of the deployment.
    let gateway = info["gateway"].as_str().expect("devnet.json names the gateway");
    let (code, text) = post(gateway, "/v1/chat/completions", req).expect("the gateway answers");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("you said: hello grid"), "{text}");
    assert!(text.to_ascii_lowercase().contains("x-gridlease-replica"), "{text}");

    // The web console serves the market over the devnet's node.
    let console = info["console"].as_str().expect("devnet.json names the console");
    let port: u16 = console.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
    assert_eq!(common::http_get(port, "/"), Some(200), "{console}");

    // `status` reaches the provider over mutual TLS with the tenant's client key, which the
    // home holds only sealed with the keystore passphrase; no secret is in clear on disk.
    let (code, out, err) =
        gridlease(&home, &rpc, &["status", &dseq.to_string(), "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let status: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["leases"][0]["status"]["phase"], "ready", "{status}");
    // The escrow says how fast it burns and how long it lasts: the demo's 500,000 uusdc at
    // about 8.675 uusdc per block last for hours.
    let outlook = &status["escrow_outlook"];
    let per_block = outlook["per_block"].as_f64().expect("a burn per block");
    assert!(per_block > 1.0 && per_block < 100.0, "{outlook}");
    let blocks_left = outlook["blocks_left"].as_u64().expect("blocks left");
    let balance = outlook["balance"].as_f64().expect("balance");
    assert!((blocks_left as f64 - balance / per_block).abs() < 3.0, "{outlook}");
    assert!(outlook["hours_left"].as_f64().is_some_and(|h| h > 1.0), "{outlook}");
    assert_eq!(status["escrow_low"], false, "{status}");

    // A deposit says how much time it bought at that burn.
    let (code, out, err) =
        gridlease(&home, &rpc, &["deposit", &dseq.to_string(), "100000uusdc", "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let deposit: Value = serde_json::from_str(&out).expect("json");
    let bought = deposit["bought_hours"].as_f64().expect("bought hours");
    let per_hour = deposit["escrow"]["per_hour"].as_f64().expect("burn per hour");
    assert!((bought * per_hour - 100_000.0).abs() < 1.0, "{deposit}");
    for f in files_under(&home) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        if f.extension().is_some_and(|e| e == "log") || bytes.len() > 1 << 20 {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("PRIVATE KEY"), "{} holds a clear private key", f.display());
        assert!(!text.contains("\"mnemonic\":"), "{} holds a clear mnemonic", f.display());
    }

    // The providers bid on both replicas' orders as far as their GPUs go (the h100 provider
    // has one, so it bids once): five bids; two win (one replica each, on distinct
    // providers), the one that lost gives its GPU back.
    let (code, out, _) = gridlease(&home, &rpc, &["bids", "--output", "json"]);
    assert_eq!(code, Some(0));
    let bids: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(bids.as_array().map(Vec::len), Some(5), "{bids}");
    let held_gpus = || -> (u64, Value) {
        let (code, out, err) = gridlease(&home, &rpc, &["providers", "--output", "json"]);
        assert_eq!(code, Some(0), "{err}");
        let providers: Value = serde_json::from_str(&out).expect("json");
        let held = providers
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let total = p["inventory"]["gpus"].as_array().map(Vec::len).unwrap_or(0) as u64;
                let free: u64 = p["free"]["gpus"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, n)| n.as_u64())
                    .sum();
                total - free
            })
            .sum();
        (held, providers)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (held, providers) = held_gpus();
        if held == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "only the two winners may hold a GPU: {providers}");
        std::thread::sleep(Duration::from_millis(200));
    }

    if validators == 1 {
        no_bid_says_why(&home, &rpc, dir.path());
        failover(&home, &rpc, &info, dseq, req);
    }

    // A tenant without funds is told so.
    let out = Command::new(GRIDLEASE)
        .args(["keys", "add", "poor"])
        .env("GRIDLEASE_HOME", &home)
        .env("GRIDLEASE_PASSPHRASE", "devnet")
        .output()
        .expect("keys add");
    assert!(out.status.success());
    let demo = home.join("demo.yaml");
    let (code, _, err) =
        gridlease(&home, &rpc, &["deploy", demo.to_str().expect("utf8"), "--from", "poor"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.starts_with("error: insufficient balance"), "{err}");

    // Close: the lease ends, the workload goes, the refund lands in the balance.
    let before = uusdc(&home, &rpc);
    let (code, out, err) =
        gridlease(&home, &rpc, &["close", &dseq.to_string(), "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let closed: Value = serde_json::from_str(&out).expect("json");
    let refund: u128 =
        closed["refund"]["amount"].as_str().and_then(|a| a.parse().ok()).expect("a refund");
    assert!(refund > 0);
    assert_eq!(uusdc(&home, &rpc), before + refund, "the refund shows in the balance");
    let deadline = Instant::now() + Duration::from_secs(30);
    while post(&endpoint, "/v1/models", "").is_some() {
        assert!(Instant::now() < deadline, "the demo still answers after the close");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A deploy whose services cannot start (an image no provider runs) does not keep paying:
    // it closes the deployment and says what came back.
    let broken = home.join("broken.yaml");
    let text = std::fs::read_to_string(home.join("demo.yaml")).expect("demo sdl");
    let image = text.lines().find_map(|l| l.trim().strip_prefix("image: ")).expect("an image");
    std::fs::write(&broken, text.replace(image, "localhost/gridlease/missing:0.1.0"))
        .expect("write");
    let before = uusdc(&home, &rpc);
    let (code, _, err) = gridlease(&home, &rpc, &["deploy", broken.to_str().expect("utf8")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot start") && err.contains("so it stops paying"), "{err}");
    let closed_dseq: u64 = err
        .split("deployment ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no deployment number in: {err}"));
    let (code, out, err2) =
        gridlease(&home, &rpc, &["status", &closed_dseq.to_string(), "--output", "json"]);
    assert_eq!(code, Some(0), "{err2}");
    let status: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["state"]["state"], "closed", "{status}");
    let spent = before.saturating_sub(uusdc(&home, &rpc));
    assert!(spent < 5_000, "the failed deploy kept {spent} uusdc: {err}");

    // A deploy ends with how long its escrow lasts, and warns when that is under
    // --warn-hours.
    let demo = home.join("demo.yaml");
    let (code, out, err) = gridlease(
        &home,
        &rpc,
        &["deploy", demo.to_str().expect("utf8"), "--output", "json", "--warn-hours", "100000"],
    );
    assert_eq!(code, Some(0), "{err}");
    let deployed: Value = serde_json::from_str(&out).expect("json");
    // Two replicas on the dearer providers left (one was killed above in the one-validator
    // run) burn the minimum deposit in well under a day at 300 ms blocks.
    let hours = deployed["escrow"]["hours_left"].as_f64().expect("hours left");
    let per_block = deployed["escrow"]["per_block"].as_f64().expect("burn");
    let balance = deployed["escrow"]["balance"].as_f64().expect("balance");
    assert!(hours > 0.0 && hours < 100_000.0, "{deployed}");
    let blocks = deployed["escrow"]["blocks_left"].as_u64().expect("blocks left") as f64;
    assert!((blocks - balance / per_block).abs() < 3.0, "{deployed}");
    assert!(err.contains("warning: the escrow of deployment"), "{err}");

    // Ctrl-C stops everything it started.
    let _ = Command::new("kill").args(["-INT", &devnet.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Ok(Some(s)) = devnet.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let out = std::fs::read_to_string(dir.path().join("devnet.out")).unwrap_or_default();
            let err = std::fs::read_to_string(dir.path().join("devnet.err")).unwrap_or_default();
            let left = processes_mentioning(home.to_str().expect("utf8"));
            panic!("devnet did not stop:\n{out}\n{err}\nstill running: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "devnet exited with {status}");
    let err = std::fs::read_to_string(dir.path().join("devnet.err")).unwrap_or_default();
    assert!(!err.contains("did not stop in time"), "a process had to be killed:\n{err}");
    let left = processes_mentioning(home.to_str().expect("utf8"));
    assert!(left.is_empty(), "processes left running: {left:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the node still listens");
}

/// SIGKILL the provider of one of the demo's two replicas and its workload, under steady load
/// through the gateway: no request fails (the gateway moves to the other replica); the
/// devnet's watcher reports the lease down, the chain closes it as unhealthy after the
/// failover grace and re-auctions it without that provider (nor the one holding the other
/// replica), the watcher sends the manifest to the new winner, and both replicas serve again
/// within a minute, with no command typed.
/// An order no provider can take: `deploy` says, from the providers' public status, why each
/// declined, and the deployment is closed again.
fn no_bid_says_why(home: &Path, rpc: &str, dir: &Path) {
    let sdl = dir.join("nobid.yaml");
    let text = "version: \"2.0\"\nservices:\n  web:\n    image: nginx:1.25\n    expose:\n      - port: 80\n        to:\n          - global: true\nprofiles:\n  compute:\n    web:\n      resources:\n        cpu: { units: 0.5 }\n        memory: { size: 256Mi }\n        storage: { size: 1Gi }\n  placement:\n    dc:\n      attributes:\n        host: akash\n      pricing:\n        web: { denom: uact, amount: 1000 }\ndeployment:\n  web:\n    dc: { profile: web, count: 1 }\n";
    std::fs::write(&sdl, text).expect("write sdl");
    let path = sdl.to_str().expect("utf-8 path");
    let (code, out, err) = gridlease(home, rpc, &["deploy", path, "--timeout", "8"]);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(out.contains("why the providers did not bid"), "{out}{err}");
    assert_eq!(out.matches("attributes not offered: host=akash").count(), 3, "{out}");
    let dseq = out
        .split_whitespace()
        .skip_while(|w| *w != "deployment")
        .nth(1)
        .and_then(|d| d.parse::<u64>().ok())
        .expect("deploy names the deployment");
    assert_eq!(out.matches("suggestion: drop or change host=akash").count(), 3, "{out}");
    // `bids` and `status` say the same while the order waits, from the providers' public
    // decision endpoint: a reason kind and a suggestion per provider.
    let declines = |v: &Value| {
        let all = v["provider_decisions"].as_array().cloned().unwrap_or_default();
        assert_eq!(all.len(), 3, "{v}");
        for d in &all {
            assert_eq!(d["outcome"], "skip", "{v}");
            assert_eq!(d["reason"], "attributes", "{v}");
            let s = d["suggestion"].as_str().unwrap_or_default();
            assert!(s.contains("drop or change host=akash") && s.contains("region="), "{v}");
        }
    };
    let (code, out, err) =
        gridlease(home, rpc, &["bids", "--dseq", &dseq.to_string(), "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    declines(&serde_json::from_str(&out).expect("json"));
    let (code, out, err) = gridlease(home, rpc, &["status", &dseq.to_string(), "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let status: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["open_groups"], serde_json::json!([1]), "{status}");
    declines(&status);
    let (code, out, err) = gridlease(home, rpc, &["status", &dseq.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("in auction, no lease yet") && out.contains("suggestion:"), "{out}");
    let (code, _, err) = gridlease(home, rpc, &["close", &dseq.to_string()]);
    assert_eq!(code, Some(0), "{err}");
}

fn failover(home: &Path, rpc: &str, info: &Value, dseq: u64, req: &str) {
    let status = |h: &Path| {
        let (code, out, err) =
            gridlease(h, rpc, &["status", &dseq.to_string(), "--output", "json"]);
        assert_eq!(code, Some(0), "{err}");
        serde_json::from_str::<Value>(&out).expect("json")
    };
    let providers_of = |v: &Value| -> Vec<String> {
        v["leases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["provider"].as_str().map(str::to_string))
            .collect()
    };
    let before = status(home);
    let held = providers_of(&before);
    assert_eq!(held.len(), 2, "two replicas: {before}");
    assert_ne!(held[0], held[1], "the replicas share a provider: {before}");
    let failed = held[0].clone();
    let watcher = info["watcher"]["address"].as_str().expect("devnet.json names the watcher");
    let (code, out, err) =
        gridlease(home, rpc, &["monitors", &dseq.to_string(), "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(watcher), "the watcher is the demo's monitor: {out}");
    let provider = info["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["address"] == failed.as_str())
        .expect("the provider is in devnet.json");
    let phome = Path::new(provider["home"].as_str().expect("provider home"));
    let running: Value = serde_json::from_slice(
        &std::fs::read(phome.join("state").join("daemon.json")).expect("daemon.json"),
    )
    .expect("json");
    let pid = running["pid"].as_u64().expect("pid");
    // Steady load through the gateway from before the kill to after the failover.
    let gateway = info["gateway"].as_str().expect("gateway").to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, gateway, req) = (stop.clone(), gateway.clone(), req.to_string());
        std::thread::spawn(move || {
            let (mut ok, mut failures) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match post(&gateway, "/v1/chat/completions", &req) {
                    Some((200, _)) => ok += 1,
                    other => failures.push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (ok, failures)
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = Instant::now();
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    // Its workloads (the exec driver runs each replica in a process group of its own, in a
    // directory under the provider's home).
    let workloads = pids_working_under(phome);
    assert!(!workloads.is_empty(), "no workload of {} found", phome.display());
    for p in workloads {
        let _ = Command::new("kill").args(["-KILL", &p.to_string()]).status();
    }
    let deadline = killed_at + Duration::from_secs(90);
    let new_provider = loop {
        let now = status(home);
        let ready = now["leases"]
            .as_array()
            .is_some_and(|l| l.len() == 2 && l.iter().all(|l| l["status"]["phase"] == "ready"));
        let fresh = providers_of(&now).into_iter().find(|p| !held.contains(p));
        if let Some(p) = fresh.filter(|_| ready) {
            break p;
        }
        assert!(Instant::now() < deadline, "no new lease serves after 90 s: {now}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let replaced_after = killed_at.elapsed();
    // The gateway finds the new lease too (it re-reads the leases every 2 s on devnet).
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failures) = load.join().expect("load thread");
    println!(
        "failover: {failed} -> {new_provider} serving after {replaced_after:?}; through the \
         gateway {ok} answers, {} failed",
        failures.len()
    );
    assert!(replaced_after < Duration::from_secs(60), "the failover took {replaced_after:?}");
    assert!(ok > 50, "too little load went through: {ok}");
    assert!(failures.is_empty(), "requests failed during the failover: {failures:?}");
    // The chain says why, and the provider's record shows it.
    let (code, out, err) = gridlease(home, rpc, &["providers", "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let providers: Value = serde_json::from_str(&out).expect("json");
    let record = providers
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["provider"]["owner"] == failed.as_str())
        .expect("the failed provider is listed");
    assert_eq!(record["uptime"]["record"]["failovers"], 1, "{record}");
    assert_eq!(record["online"], false, "{record}");
}
