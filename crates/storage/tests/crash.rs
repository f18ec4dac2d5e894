//! Crash safety: a child process commits blocks in a loop and is SIGKILLed at random moments,
//! at least 20 times. After each kill the store must reopen at a height no lower than the last
//! one the child reported committed, with the state root that a replay of the same blocks on
//! a fresh store gives.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use gridlease_sim::{Actors, CHAIN_ID, Generator};
use gridlease_storage::{Store, StoreConfig};
use rand::{Rng, SeedableRng};

const SEED: u64 = 0xc4a5;
const DIR_ENV: &str = "GRIDLEASE_CRASH_CHILD_DIR";

fn generator() -> Generator {
    Generator::new(Actors::new(3, 4, 2))
}

fn advance(store: &mut Store, generator: &Generator) -> [u8; 32] {
    let h = store.height() + 1;
    let block = generator.block(SEED, h, &store.view().unwrap(), 16);
    let raw = block.iter().map(|t| t.to_bytes()).collect();
    store.execute_block(CHAIN_ID, h, 1_700_000_000_000 + h * 1000, raw).unwrap().0.state_root
}

/// The child: opens the store (creating genesis once) and commits blocks until killed,
/// printing each committed height after the commit returned.
#[test]
#[ignore = "run by crash_and_restart_keeps_every_committed_block as a child process"]
fn child_commit_loop() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let generator = generator();
    // Frequent checkpoints, so kills land in log appends, checkpoints and replays alike.
    let config = StoreConfig { checkpoint_every: 5, ..StoreConfig::default() };
    let mut store =
        Store::open_with(std::path::Path::new(&dir).join("chain.redb"), config).unwrap();
    if !store.is_initialized().unwrap() {
        store.init_genesis(&generator.actors.genesis()).unwrap();
    }
    loop {
        advance(&mut store, &generator);
        println!("committed {}", store.height());
    }
}

#[test]
fn crash_and_restart_keeps_every_committed_block() {
    let dir = tempfile::tempdir().unwrap();
    let replay_dir = tempfile::tempdir().unwrap();
    let generator = generator();
    let mut replay = Store::open(replay_dir.path().join("replay.redb")).unwrap();
    replay.init_genesis(&generator.actors.genesis()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let exe = std::env::current_exe().unwrap();
    let mut last_height = 0;
    let kills = 24;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_commit_loop", "--ignored", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..700)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let reported = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("committed ").and_then(|h| h.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        let store = Store::open(dir.path().join("chain.redb")).unwrap();
        let h = store.height();
        assert!(
            h >= reported,
            "round {round}: reopened at {h}, but {reported} was reported committed"
        );
        assert!(h >= last_height, "round {round}: height went back from {last_height} to {h}");
        while replay.height() < h {
            advance(&mut replay, &generator);
        }
        assert_eq!(
            store.state_root(),
            replay.state_root(),
            "round {round}: root at height {h} differs from replay"
        );
        for past in [h / 2, h.saturating_sub(1)] {
            assert_eq!(
                store.root_at(past).unwrap(),
                replay.root_at(past).unwrap(),
                "root at {past}"
            );
        }
        last_height = h;
    }
    assert!(last_height > kills, "the child should commit blocks between kills, got {last_height}");
}
