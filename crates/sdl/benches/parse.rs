//! Benchmark of parse + validate + derive (`Sdl::parse`) on a large SDL file.
//!
//! Always runs on `benches/large.yaml` (written for this benchmark); when
//! `GRIDLEASE_CONFORMANCE` points to the conformance corpus (the folder that
//! holds `sdl/awesome-akash`), also on the largest file there.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use gridlease_sdl::Sdl;

const LARGE: &str = include_str!("large.yaml");

fn largest_corpus_file() -> Option<(String, String)> {
    let root = PathBuf::from(std::env::var_os("GRIDLEASE_CONFORMANCE")?);
    let dir = [root.join("sdl/awesome-akash"), root.join("awesome-akash"), root.clone()]
        .into_iter()
        .find(|d| d.is_dir())?;
    let (path, _) = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .max_by_key(|(_, len)| *len)?;
    let text = std::fs::read_to_string(&path).ok()?;
    Some((path.file_name()?.to_string_lossy().into_owned(), text))
}

fn bench(c: &mut Criterion) {
    assert!(Sdl::parse("large.yaml", LARGE).is_ok(), "benches/large.yaml must be valid");
    c.bench_function("sdl_parse_validate_derive/large.yaml", |b| {
        b.iter(|| Sdl::parse("large.yaml", black_box(LARGE)))
    });
    if let Some((name, text)) = largest_corpus_file() {
        let accepted = Sdl::parse(&name, &text).is_ok();
        eprintln!("corpus file {name}: {} bytes, accepted: {accepted}", text.len());
        c.bench_function(&format!("sdl_parse_validate_derive/{name}"), |b| {
            b.iter(|| Sdl::parse(&name, black_box(&text)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
