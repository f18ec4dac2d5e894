//! The market simulation behind `gridlease sim`: one seed gives one report to the byte, the
//! tenants pay exactly for the blocks their leases were up, and replicas with failover keep a
//! service up where a single replica cannot.

use std::process::Command;

use gridlease_sim::market::{MarketConfig, MarketReport, run};

fn small(seed: u64) -> MarketConfig {
    MarketConfig {
        seed,
        providers: 40,
        deployments: 120,
        days: 1,
        mean_outage_minutes: 30.0,
        ..MarketConfig::default()
    }
}

fn sim(cfg: &MarketConfig) -> MarketReport {
    run(cfg, &mut |_, _| {}).expect("the simulation runs")
}

#[test]
fn one_seed_gives_one_report_and_the_escrow_is_exact() {
    let cfg = small(7);
    let a = sim(&cfg);
    let b = sim(&cfg);
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    let other = sim(&small(8));
    assert_ne!(a, other, "another seed, another run");

    assert_eq!(a.ledger.refused_txs, 0, "{:?}", a.ledger.first_refusal);
    assert!(a.escrow_exact, "tenants paid {} for up blocks worth something else", a.tenant_cost);
    assert!(a.provider_outages > 20, "{} outages: the churn did not happen", a.provider_outages);
    assert!(a.failovers > 0 && a.failovers_unfinished < a.failovers);
    // A failover waits the whole grace after the monitors saw the outage, then an auction and
    // the new workload's start.
    let grace_s = cfg.grace_blocks * cfg.block_seconds;
    assert!(a.failover_p50_s >= grace_s, "p50 {} s < grace {grace_s} s", a.failover_p50_s);
    assert!(a.failover_max_s >= a.failover_p50_s);
    // Down blocks are not paid: the tenants kept something, and the providers got what the
    // tenants paid less the pool's 2% take (to the unit at each withdrawal).
    assert!(a.tenant_cost < a.tenant_cost_if_always_paid);
    let net = a.tenant_cost - a.tenant_cost * 2 / 100;
    assert!(
        a.provider_earnings.abs_diff(net) <= u128::from(a.ledger.leases_created),
        "providers got {} of {net}",
        a.provider_earnings
    );
    assert!(a.sla_penalties > 0);
    assert!((0.9..=0.99).contains(&a.provider_uptime), "uptime {}", a.provider_uptime);
    assert!(a.availability > 0.999, "three replicas: availability {}", a.availability);
    assert!(a.ledger.health_reports > 0 && a.ledger.health_txs_per_lease_hour > 0.0);
}

#[test]
fn one_replica_is_down_through_every_failover_and_three_are_not() {
    let one = sim(&MarketConfig { replicas: 1, ..small(3) });
    let three = sim(&small(3));
    assert!(one.deployments_ever_down > 0);
    assert!(
        one.availability < three.availability,
        "1 replica {} vs 3 replicas {}",
        one.availability,
        three.availability
    );
    // With one replica, a deployment is down from its provider's outage to the replacement;
    // with three, only when all three fail within one failover.
    assert!(one.availability < 0.9995, "1 replica: {}", one.availability);
    assert!(three.availability > 0.9999, "3 replicas: {}", three.availability);
}

#[test]
fn providers_that_never_fail_cost_the_full_price_and_never_fail_over() {
    let r =
        sim(&MarketConfig { provider_uptime: 0.999_999_99, mean_outage_minutes: 0.01, ..small(5) });
    assert_eq!((r.provider_outages, r.failovers), (0, 0));
    assert_eq!(r.availability, 1.0);
    assert_eq!(r.tenant_cost, r.tenant_cost_if_always_paid);
    assert!(r.escrow_exact);
    assert_eq!(r.sla_penalties, 0);
}

#[test]
fn a_bad_configuration_is_refused_with_a_reason() {
    for (cfg, want) in [
        (MarketConfig { providers: 0, ..small(1) }, "providers"),
        (MarketConfig { replicas: 50, ..small(1) }, "replicas"),
        (MarketConfig { provider_uptime: 1.0, ..small(1) }, "uptime"),
        (MarketConfig { days: 0, ..small(1) }, "days"),
    ] {
        let e = run(&cfg, &mut |_, _| {}).expect_err("refused");
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn the_binary_prints_the_same_json_for_the_same_seed() {
    let go = |seed: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gridlease-sim"))
            .args(["--seed", seed, "--providers", "20", "--deployments", "40", "--days", "1"])
            .args(["--output", "json"])
            .output()
            .expect("run gridlease-sim");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let a = go("11");
    assert_eq!(a, go("11"));
    let v: serde_json::Value = serde_json::from_slice(&a).expect("json");
    for key in
        ["availability", "failover_p50_s", "failover_max_s", "tenant_cost", "provider_earnings"]
    {
        assert!(v.get(key).is_some(), "no {key} in {v}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_gridlease-sim"))
        .args(["--providers", "0"])
        .output()
        .expect("run gridlease-sim");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("providers must be"));
}
