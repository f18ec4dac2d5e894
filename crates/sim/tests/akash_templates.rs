//! Akash's SDL files reach the auction unchanged: each is parsed, turned into the chain's
//! group specs as `gridlease deploy` does, and deployed on a ledger with the devnet's
//! parameters, whose denominations include Akash's `uact` and `uakt`. The repository's own
//! fixtures always run; with `GRIDLEASE_CONFORMANCE` set to an absolute path
//! (`.ci/conformance` sets it), every template of the community collection under
//! `sdl/awesome-akash` does too.

use std::path::{Path, PathBuf};

use gridlease_client::sdl::SdlChainError;
use gridlease_ledger::{Event, GenesisBalance, Params, ReceiptCode};
use gridlease_sim::{Actors, World};
use gridlease_types::{Coin, Denom, Msg};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

/// What became of a set of files.
#[derive(Debug, Default)]
struct Outcome {
    deployed: usize,
    /// Not SDL this parser accepts (the SDL suites' business).
    unparsed: usize,
    /// Refused before the chain for a `signedBy` address that is not bech32 at all.
    bad_auditor: Vec<String>,
    /// Anything else that kept a file from the auction: the failures.
    refused: Vec<String>,
}

/// Deploys every parseable file of `files`, each with the minimum deposit in its own
/// denomination.
fn deploy_all(files: &[PathBuf]) -> Outcome {
    let devnet = Params::devnet();
    let mut world = World::new(Actors::new(1, 0, 0), |g| {
        g.params.denoms = devnet.denoms.clone();
        g.params.min_deposits = devnet.min_deposits.clone();
        g.params.take_rates_ppm = devnet.take_rates_ppm.clone();
        let tenant = g.balances[0].address;
        g.balances[0] = GenesisBalance {
            address: tenant,
            coins: devnet.denoms.iter().map(|d| Coin::new(1_000_000_000_000_000, d)).collect(),
        };
    });
    let tenant = world.actors.tenants[0].clone();
    let mut out = Outcome::default();
    for (i, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let Ok(sdl) = gridlease_sdl::Sdl::parse(&name, &text) else {
            out.unparsed += 1;
            continue;
        };
        let groups = match gridlease_client::sdl::group_specs(&sdl) {
            Ok(g) => g,
            Err(SdlChainError::Auditor { auditor, .. }) if bech32::decode(&auditor).is_err() => {
                out.bad_auditor.push(name);
                continue;
            }
            Err(e) => {
                out.refused.push(format!("{name}: no group specs: {e}"));
                continue;
            }
        };
        let denom: Denom = groups[0].resources[0].price.denom.clone();
        let Some(min) = devnet.min_deposit(&denom) else {
            out.refused.push(format!("{name}: the devnet has no deposit in {denom}"));
            continue;
        };
        let n = groups.len();
        let msg = Msg::CreateDeployment {
            dseq: i as u64 + 1,
            groups,
            manifest_hash: [1; 32],
            deposit: Coin::new(min, &denom),
        };
        let r = world.run(&tenant, vec![msg]);
        let opened = r.events.iter().filter(|e| matches!(e, Event::OrderOpened { .. })).count();
        if r.code == ReceiptCode::Ok && opened == n {
            out.deployed += 1;
        } else {
            out.refused.push(format!("{name}: {} {} ({opened} of {n} orders)", r.code, r.log));
        }
    }
    out
}

#[test]
fn the_repositorys_akash_fixtures_reach_the_auction() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdl/tests/fixtures/valid");
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert!(files.len() >= 10, "fixtures missing under {}", dir.display());
    let out = deploy_all(&files);
    assert!(out.refused.is_empty(), "{out:#?}");
    // gpu-models.yaml names a made-up auditor (`akash1auditor`), which the CLI refuses.
    assert_eq!(out.bad_auditor.len(), 1, "{out:#?}");
    assert_eq!((out.deployed + 1, out.unparsed), (files.len(), 0));
}

#[test]
fn the_community_templates_reach_the_auction_unchanged() {
    let Some(root) = std::env::var_os("GRIDLEASE_CONFORMANCE") else {
        eprintln!("GRIDLEASE_CONFORMANCE is not set: the community templates are not tried");
        return;
    };
    let dir = Path::new(&root).join("sdl/awesome-akash");
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert!(!files.is_empty(), "no template under {}", dir.display());
    let out = deploy_all(&files);
    println!(
        "{} of {} templates reached the auction ({} are not SDL this parser accepts)",
        out.deployed,
        files.len(),
        out.unparsed
    );
    assert!(out.refused.is_empty() && out.bad_auditor.is_empty(), "{out:#?}");
}
