//! Fetch throughput and dedup memory, printed (`cargo bench -p jobmatch-workers --bench fetch`):
//!
//! - parse + normalize + dedup of the fixture corpus (every board's fixtures, each
//!   round under fresh ids so every posting takes the full path: parse, HTML to text,
//!   fingerprint, three-tier classification, remember), on one thread: postings/s/core;
//! - bytes the dedup index holds per remembered posting, counted by the allocator, and
//!   what 100,000 postings cost.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use jobmatch_workers::fetch::dedup::{DedupIndex, Fingerprint, Remembered, Verdict};
use jobmatch_workers::fetch::parse_listing;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// (parser, body) for every fixture board response.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/boards");
    let files: &[(&str, &str)] = &[
        ("greenhouse", "greenhouse-acme.json"),
        ("lever", "lever-globex.json"),
        ("ashby", "ashby-nimbus.json"),
        ("smartrecruiters", "smartrecruiters-bosch-list.json"),
        ("workable", "workable-orbit.json"),
        ("remoteok", "remoteok.json"),
        ("remotive", "remotive.json"),
        ("arbeitnow", "arbeitnow-page1.json"),
        ("arbeitnow", "arbeitnow-page2.json"),
        ("hackernews", "hn-item-45000001.json"),
        ("feed", "feed-remote.rss"),
        ("feed", "feed-atom.xml"),
        ("careerpage", "careerpage-kestrel.html"),
    ];
    files
        .iter()
        .map(|(kind, file)| (*kind, std::fs::read(dir.join(file)).expect("fixture")))
        .collect()
}

fn record(id: String, fingerprint: Fingerprint, verdict: &Verdict) -> Remembered {
    Remembered {
        id,
        source: "bench".to_owned(),
        fingerprint,
        duplicate_of: match verdict {
            Verdict::Duplicate { of } => Some(of.clone()),
            _ => None,
        },
        repost_of: match verdict {
            Verdict::Repost { of } => Some(of.clone()),
            _ => None,
        },
        closed: false,
        closed_at: None,
    }
}

fn throughput(corpus: &[(&str, Vec<u8>)], min_time: Duration) -> (usize, usize, Duration) {
    let mut index = DedupIndex::default();
    let (mut postings, mut bytes, mut round) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    while started.elapsed() < min_time {
        for (kind, body) in corpus {
            let page = parse_listing(kind, body).expect("fixture parses");
            bytes += body.len();
            for mut posting in page.postings {
                // A fresh id and company each round: every posting is new to the index,
                // the costliest path (a re-poll of known postings stops at tier 1).
                posting.id = format!("{}#{round}", posting.id);
                posting.company = format!("{} {round}", posting.company);
                let fingerprint = Fingerprint::of(&posting);
                let verdict = index.classify(&posting.id, &fingerprint);
                index.remember(&record(posting.id, fingerprint, &verdict));
                postings += 1;
            }
        }
        round += 1;
    }
    (postings, bytes, started.elapsed())
}

fn memory_per_posting(n: usize) -> f64 {
    let records: Vec<Remembered> = (0..n)
        .map(|i| Remembered {
            id: format!("greenhouse:company-{}:{}", i % 5_000, 4_000_000 + i),
            source: format!("source-{}", i % 5_000),
            fingerprint: Fingerprint {
                content: (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                identity: (i as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
                company: (i % 5_000) as u64,
                simhash: (i as u64).wrapping_mul(0x1656_67b1_9e37_79f9) | 1,
            },
            duplicate_of: None,
            repost_of: None,
            closed: false,
            closed_at: None,
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut index = DedupIndex::default();
    for r in &records {
        index.remember(r);
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(index.len(), n);
    (after - before) as f64 / n as f64
}

fn main() {
    let min_time = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let corpus = corpus();
    // Warm-up, then the measured run.
    throughput(&corpus, Duration::from_millis(500));
    let (postings, bytes, elapsed) = throughput(&corpus, min_time);
    let per_second = postings as f64 / elapsed.as_secs_f64();
    println!(
        "fetch bench: parse + normalize + dedup, one thread, fixture corpus of {} responses",
        corpus.len()
    );
    println!(
        "  {postings} postings in {:.2} s: {per_second:.0} postings/s/core ({:.1} MB/s of board responses); goal >= 5000",
        elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e6
    );
    let per_posting = memory_per_posting(100_000);
    println!(
        "  dedup index: {per_posting:.0} bytes per remembered posting, {:.1} MiB per 100,000 postings",
        per_posting * 100_000.0 / (1024.0 * 1024.0)
    );
}
