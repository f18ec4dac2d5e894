//! gridlease's SDL extension, `x-gridlease`: replicas of a placement's group on distinct
//! providers. Files without it derive exactly what they did before.

use gridlease_sdl::{AuctionPolicy, Sdl, SlaSpec};

fn sdl(extension: &str) -> String {
    format!(
        r#"version: "2.0"
services:
  web:
    image: nginx:1.25
    expose:
      - port: 80
        to:
          - global: true
profiles:
  compute:
    web:
      resources:
        cpu: {{ units: 0.5 }}
        memory: {{ size: 256Mi }}
        storage: {{ size: 1Gi }}
  placement:
    dc:
      pricing:
        web: {{ denom: uakt, amount: 100 }}
deployment:
  web:
    dc: {{ profile: web, count: 1 }}
{extension}"#
    )
}

#[test]
fn replicas_are_copies_of_the_group_each_on_its_own_provider() {
    let plain = Sdl::parse("plain.yaml", &sdl("")).expect("parses");
    assert_eq!(plain.groups().len(), 1);
    assert!(!plain.groups()[0].distinct_providers);
    assert!(!plain.groups_json().to_string().contains("distinct"), "Akash JSON unchanged");

    let three =
        Sdl::parse("three.yaml", &sdl("x-gridlease:\n  replicas:\n    dc: 3\n")).expect("ok");
    let names: Vec<&str> = three.groups().iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["dc", "dc-2", "dc-3"]);
    assert!(three.groups().iter().all(|g| g.distinct_providers));
    for g in &three.groups()[1..] {
        assert_eq!(g.resources, three.groups()[0].resources);
        assert_eq!(g.requirements, three.groups()[0].requirements);
    }
    let manifest: Vec<&str> = three.manifest().iter().map(|g| g.name.as_str()).collect();
    assert_eq!(manifest, names);
    assert!(three.manifest().iter().all(|g| g.services == three.manifest()[0].services));

    // One replica is the plain file.
    let one = Sdl::parse("one.yaml", &sdl("x-gridlease:\n  replicas:\n    dc: 1\n")).expect("ok");
    assert_eq!(one.groups(), plain.groups());
}

#[test]
fn a_bad_extension_names_the_line_and_column() {
    let cases = [
        ("x-gridlease:\n  replicas:\n    dc: 0\n", 25, "out of range"),
        ("x-gridlease:\n  replicas:\n    dc: 11\n", 25, "out of range"),
        ("x-gridlease:\n  replicas:\n    nowhere: 2\n", 25, "no group `nowhere`"),
        ("x-gridlease:\n  replicas:\n    dc: two\n", 25, "expected a replica count"),
        ("x-gridlease:\n  spread: true\n", 24, "unknown field `spread`"),
        ("x-gridlease:\n  auction: cheapest\n", 24, "unknown auction policy \"cheapest\""),
        (
            "x-gridlease:\n  sla:\n    period_blocks: 50\n    allowed_downtime: 1%\n",
            25,
            "out of range",
        ),
        (
            "x-gridlease:\n  sla:\n    period_blocks: 3600\n    allowed_downtime: 101%\n",
            26,
            "percentage",
        ),
        (
            "x-gridlease:\n  sla:\n    period_blocks: 3600\n    allowed_downtime: 0.12345%\n",
            26,
            "up to 4 decimals",
        ),
        (
            "x-gridlease:\n  sla:\n    period_blocks: 3600\n    allowed_downtime: 99999999999999999999999%\n",
            26,
            "percentage",
        ),
        ("x-gridlease:\n  sla:\n    period_blocks: 3600\n", 25, "allowed_downtime"),
    ];
    for (ext, line, what) in cases {
        let err = Sdl::parse("bad.yaml", &sdl(ext)).expect_err(ext).to_string();
        assert!(err.contains(what), "{ext}: {err}");
        assert!(err.contains(&format!("bad.yaml:{line}:")), "{ext}: {err}");
    }
}

#[test]
fn the_auction_policy_applies_to_every_group_and_defaults_to_price() {
    let plain = Sdl::parse("plain.yaml", &sdl("")).expect("parses");
    assert_eq!(plain.groups()[0].auction, AuctionPolicy::Price);
    assert!(!plain.groups_json().to_string().contains("auction"), "Akash JSON unchanged");
    let ext = "x-gridlease:\n  auction: reliability\n  replicas:\n    dc: 2\n";
    let weighed = Sdl::parse("weighed.yaml", &sdl(ext)).expect("parses");
    assert_eq!(weighed.groups().len(), 2);
    assert!(weighed.groups().iter().all(|g| g.auction == AuctionPolicy::Reliability));
    assert!(weighed.groups_json().to_string().contains(r#""auction":"reliability""#));
    let price = Sdl::parse("p.yaml", &sdl("x-gridlease:\n  auction: price\n")).expect("ok");
    assert_eq!(price.groups(), plain.groups());
}

#[test]
fn an_sla_reads_percentages_into_parts_per_million() {
    let ext = "x-gridlease:\n  replicas:\n    dc: 2\n  sla:\n    period_blocks: 86400\n    allowed_downtime: 0.1%\n    penalty: 2.5%\n";
    let s = Sdl::parse("sla.yaml", &sdl(ext)).expect("parses");
    let want = SlaSpec { period_blocks: 86_400, allowed_down_ppm: 1_000, penalty_ppm: 25_000 };
    assert!(s.groups().iter().all(|g| g.sla == Some(want)), "{:?}", s.groups());
    let ext = "x-gridlease:\n  sla:\n    period_blocks: 3600\n    allowed_downtime: 1\n";
    let s = Sdl::parse("sla.yaml", &sdl(ext)).expect("parses");
    let sla = s.groups()[0].sla.expect("an sla");
    assert_eq!(
        (sla.allowed_down_ppm, sla.penalty_ppm),
        (10_000, 100_000),
        "penalty defaults to 10%"
    );
    assert!(Sdl::parse("p.yaml", &sdl("")).expect("ok").groups()[0].sla.is_none());
}
