//! Replays the fuzz corpus (`fuzz/corpus/<target>/*`, seeds plus anything `cargo fuzz`
//! found) through every board parser on stable Rust, then a few hundred seeded
//! mutations of each seed: truncations, byte flips and splices. No input may panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use rand::{Rng, SeedableRng};

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// The parser a corpus directory feeds (`smartrecruiters_detail` → `smartrecruiters-detail`).
fn kind_of(target: &str) -> String {
    target.replace('_', "-")
}

fn seeds() -> Vec<(String, PathBuf, Vec<u8>)> {
    let mut seeds = Vec::new();
    let targets = std::fs::read_dir(corpus_root()).expect("fuzz/corpus exists");
    for target in targets.flatten() {
        let name = target.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(target.path())
            .expect("corpus dir")
            .flatten()
        {
            let bytes = std::fs::read(file.path()).expect("corpus file");
            seeds.push((kind_of(&name), file.path(), bytes));
        }
    }
    seeds.sort_by(|a, b| a.1.cmp(&b.1));
    seeds
}

fn parse_without_panic(kind: &str, input: &[u8], what: &str) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _ = jobmatch_workers::fetch::parse_listing(kind, input);
    }));
    assert!(outcome.is_ok(), "{kind} parser panicked on {what}");
}

#[test]
fn every_parser_has_a_target_and_a_corpus() {
    let seeds = seeds();
    for kind in jobmatch_workers::fetch::PARSERS {
        assert!(
            seeds.iter().filter(|(k, _, _)| k == kind).count() >= 4,
            "fuzz/corpus/{} needs seeds",
            kind.replace('-', "_")
        );
        let target = corpus_root().join(format!("../fuzz_targets/{}.rs", kind.replace('-', "_")));
        assert!(target.exists(), "no fuzz target {}", target.display());
    }
}

#[test]
fn corpus_replays_without_panics() {
    let seeds = seeds();
    assert!(seeds.len() >= 60, "{} seeds", seeds.len());
    for (kind, path, bytes) in &seeds {
        parse_without_panic(kind, bytes, &path.display().to_string());
    }
}

#[test]
fn mutated_seeds_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6a0b_5e1c);
    for (kind, path, bytes) in seeds() {
        if bytes.is_empty() || bytes.len() > 200_000 {
            continue;
        }
        for round in 0..60 {
            let mut input = bytes.clone();
            match round % 4 {
                0 => input.truncate(rng.random_range(0..bytes.len())),
                1 => {
                    for _ in 0..rng.random_range(1..8) {
                        let i = rng.random_range(0..input.len());
                        input[i] ^= 1 << rng.random_range(0..8);
                    }
                }
                2 => {
                    let (a, b) = (
                        rng.random_range(0..bytes.len()),
                        rng.random_range(0..bytes.len()),
                    );
                    let (from, to) = (a.min(b), a.max(b));
                    input.splice(from..from, bytes[from..to].iter().copied());
                }
                _ => {
                    let i = rng.random_range(0..input.len());
                    input.insert(
                        i,
                        *b"\"{}[]<>\\\x00\xff"
                            .get(rng.random_range(0..11))
                            .unwrap_or(&b'"'),
                    );
                }
            }
            parse_without_panic(
                &kind,
                &input,
                &format!("mutation {round} of {}", path.display()),
            );
        }
    }
}
