//! Data-driven tests over `tests/fixtures`: one file per rule.
//!
//! - `invalid/*.yaml` start with `# expect: LINE:COL PATH ~ MESSAGE` (`*` for
//!   no position): parsing must fail with an error at that position and path
//!   whose message contains MESSAGE.
//! - `valid/*.yaml` must parse; `valid/<name>.groups.json` and
//!   `valid/<name>.manifest.json` hold the expected `--format akash` outputs;
//!   a `# expect-warning: MESSAGE` line requires such a warning.
//!
//! Set `GRIDLEASE_BLESS=1` to (re)write the expected JSON of valid fixtures.

use std::path::{Path, PathBuf};

use gridlease_sdl::Sdl;
use serde_json::Value;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

struct Expectation {
    position: Option<(u32, u32)>,
    path: String,
    message: String,
}

fn expectation(text: &str, file: &Path) -> Expectation {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{}: no `# expect:` line", file.display()));
    let (head, message) =
        line.split_once(" ~ ").unwrap_or_else(|| panic!("{}: bad expect line", file.display()));
    let (at, path) =
        head.split_once(' ').unwrap_or_else(|| panic!("{}: bad expect line", file.display()));
    let position = (at != "*").then(|| {
        let (l, c) =
            at.split_once(':').unwrap_or_else(|| panic!("{}: bad position", file.display()));
        (l.parse().unwrap_or(0), c.parse().unwrap_or(0))
    });
    Expectation { position, path: path.to_owned(), message: message.to_owned() }
}

#[test]
fn every_invalid_fixture_is_rejected_at_the_expected_place() {
    let mut failures = Vec::new();
    for file in fixtures("invalid") {
        let text = read(&file);
        let want = expectation(&text, &file);
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        match Sdl::parse(&name, &text) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(errors) => {
                assert!(!errors.errors.is_empty());
                let found = errors.errors.iter().any(|e| {
                    e.source_name == name
                        && e.path == want.path
                        && e.message.contains(&want.message)
                        && want.position.is_none_or(|(l, c)| e.line == l && e.column == c)
                });
                if !found {
                    failures.push(format!(
                        "{name}: wanted {:?} {} ~ {:?}; got:\n  {}",
                        want.position,
                        want.path,
                        want.message,
                        errors.to_string().replace('\n', "\n  ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} fixture(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_valid_fixture_derives_the_expected_akash_json() {
    let bless = std::env::var_os("GRIDLEASE_BLESS").is_some();
    let mut failures = Vec::new();
    for file in fixtures("valid") {
        let text = read(&file);
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let sdl = match Sdl::parse(&name, &text) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: rejected:\n  {e}"));
                continue;
            }
        };
        for wanted in text.lines().filter_map(|l| l.strip_prefix("# expect-warning: ")) {
            if !sdl.warnings().iter().any(|w| w.to_string().contains(wanted)) {
                failures.push(format!("{name}: no warning containing {wanted:?}"));
            }
        }
        if !text.contains("# expect-warning: ") && !sdl.warnings().is_empty() {
            failures.push(format!("{name}: unexpected warnings: {:?}", sdl.warnings()));
        }
        for (suffix, got) in
            [("groups.json", sdl.groups_akash_json()), ("manifest.json", sdl.manifest_akash_json())]
        {
            let expected_path = file.with_extension(suffix);
            if bless {
                let pretty = serde_json::to_string_pretty(&got).unwrap_or_default();
                std::fs::write(&expected_path, pretty + "\n").unwrap_or_else(|e| panic!("{e}"));
                continue;
            }
            let expected: Value = serde_json::from_str(&read(&expected_path))
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
            if got != expected {
                failures.push(format!("{name}: {suffix} differs:\n got: {got}\nwant: {expected}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} fixture(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// The provider reads the manifest the tenant derives as the same types: deserializing the
/// bytes the tenant sends (the gridlease JSON shape, compact) gives back the derived
/// manifest, and serializing that again gives the same JSON, so the hash is unchanged. The
/// group specs round-trip the same way.
#[test]
fn every_valid_fixture_round_trips_through_json() {
    use gridlease_sdl::{GroupSpec, ManifestGroup};

    let mut failures = Vec::new();
    for file in fixtures("valid") {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let Ok(sdl) = Sdl::parse(&name, &read(&file)) else {
            failures.push(format!("{name}: rejected"));
            continue;
        };
        let sent = sdl.manifest_json().to_string();
        match serde_json::from_str::<Vec<ManifestGroup>>(&sent) {
            Ok(read_back) if read_back == sdl.manifest() => {
                let again = serde_json::to_value(&read_back).unwrap_or_default().to_string();
                if again != sent {
                    failures.push(format!("{name}: manifest serializes differently: {again}"));
                }
            }
            Ok(read_back) => failures.push(format!("{name}: manifest differs: {read_back:?}")),
            Err(e) => failures.push(format!("{name}: manifest does not deserialize: {e}")),
        }
        let groups = sdl.groups_json().to_string();
        match serde_json::from_str::<Vec<GroupSpec>>(&groups) {
            Ok(read_back) if read_back == sdl.groups() => {}
            Ok(read_back) => failures.push(format!("{name}: groups differ: {read_back:?}")),
            Err(e) => failures.push(format!("{name}: groups do not deserialize: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} fixture(s) failed:\n{}", failures.len(), failures.join("\n"));
}
