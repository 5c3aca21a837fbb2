//! The embedded store at scale, in process (the matcher's half of `bench-matcher`,
//! without NATS): prints one JSON line per size with the ingest rate, the matcher's
//! two searches timed one at a time (a new job against every subscription, filter and
//! thresholds as the matcher asks; a new subscription's backfill against every job),
//! the memory the points take beside the raw f32 vectors, the data dir, and the time
//! to open it again.
//!
//! `cargo bench -p jobmatch-workers --bench store -- [SUBSCRIPTIONS,…] [JOBS]`
//! (default `100000,1000000 100000`). The data dirs go under `TMPDIR`; with
//! `STORE_BENCH_KEEP` set each is kept (its path printed), and `-- open DIR` times only
//! opening one (to profile a restart).
//!
//! Vectors are seeded random 384-d unit vectors, and every subscription's `minScore`
//! is set so that a job scores enough for about 0.5 % of them (random 384-d cosines are
//! close to normal with σ = 1/√384). Criteria are mixed as users set them: most allow
//! remote work, some require or exclude it, a third name one or two of 40 cities.

use std::time::{Duration, Instant};

use jobmatch_core::messages::SubscriptionProfile;
use jobmatch_core::{Criteria, Posting, RemotePolicy, Workplace};
use jobmatch_workers::matcher::criteria::{JOB_FILTER_FIELDS, SUBSCRIPTION_FILTER_FIELDS};
use jobmatch_workers::matcher::facts::PostingFacts;
use jobmatch_workers::matcher::role::{
    JOBS_COLLECTION, SUBSCRIPTIONS_COLLECTION, backfill_query, job_point, subscription_point,
    subscriptions_query,
};
use jobmatch_workers::store::VectorStore;
use jobmatch_workers::store::embedded::EmbeddedStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// As in the `jobmatch` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DIMENSION: usize = 384;
/// About 0.5 % of random 384-d unit vectors are this similar to a given one (z = 2.576).
const MIN_SCORE: f32 = 0.1315;
const TIMED: usize = 200;
const BATCH: usize = 1000;
const CITIES: [&str; 40] = [
    "Berlin",
    "Munich",
    "Hamburg",
    "Paris",
    "Lyon",
    "London",
    "Leeds",
    "Madrid",
    "Barcelona",
    "Lisbon",
    "Amsterdam",
    "Rotterdam",
    "Brussels",
    "Vienna",
    "Zurich",
    "Geneva",
    "Milan",
    "Rome",
    "Warsaw",
    "Prague",
    "Dublin",
    "Stockholm",
    "Oslo",
    "Copenhagen",
    "Helsinki",
    "New York",
    "Boston",
    "Chicago",
    "Austin",
    "Seattle",
    "San Francisco",
    "Toronto",
    "Montreal",
    "Vancouver",
    "Sydney",
    "Melbourne",
    "Singapore",
    "Tokyo",
    "Bangalore",
    "Tel Aviv",
];

fn vector(rng: &mut StdRng) -> Vec<f32> {
    // Box–Muller normals, then unit length.
    let mut v: Vec<f32> = (0..DIMENSION)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-12), rng.random());
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn criteria(rng: &mut StdRng) -> Criteria {
    let remote = match rng.random_range(0..10) {
        0..7 => RemotePolicy::Allowed,
        7..9 => RemotePolicy::Required,
        _ => RemotePolicy::Excluded,
    };
    let places = if rng.random_range(0..3) == 0 {
        rng.random_range(1..=2)
    } else {
        0
    };
    Criteria {
        remote,
        locations: (0..places)
            .map(|_| CITIES[rng.random_range(0..CITIES.len())].to_owned())
            .collect(),
        min_score: MIN_SCORE,
        ..Default::default()
    }
}

fn posting(rng: &mut StdRng, id: String) -> Posting {
    let remote = rng.random_range(0..3) == 0;
    let city = CITIES[rng.random_range(0..CITIES.len())];
    Posting {
        id: id.clone(),
        source: "bench".into(),
        title: "Platform Engineer".into(),
        company: "Bench".into(),
        locations: vec![if remote {
            "Remote".to_owned()
        } else {
            format!("{city}, Somewhere")
        }],
        workplace: if remote {
            Workplace::Remote
        } else {
            Workplace::Onsite
        },
        url: format!("https://boards.greenhouse.io/bench/jobs/{id}"),
        description: "Operate Kubernetes clusters and the services on them.".into(),
        ..Default::default()
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_mib(dir: &std::path::Path) -> f64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len() as f64)
        .sum::<f64>()
        / (1 << 20) as f64
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn run(subscriptions: usize, jobs: usize) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(subscriptions as u64);
    let rss_before = rss_mib();
    let store = EmbeddedStore::open(dir.path())?;
    store
        .ensure_collection(
            SUBSCRIPTIONS_COLLECTION,
            DIMENSION,
            &SUBSCRIPTION_FILTER_FIELDS,
        )
        .await?;
    store
        .ensure_collection(JOBS_COLLECTION, DIMENSION, &JOB_FILTER_FIELDS)
        .await?;
    let started = Instant::now();
    let mut profiles = Vec::with_capacity(subscriptions);
    for start in (0..subscriptions).step_by(BATCH) {
        let points = (start..(start + BATCH).min(subscriptions))
            .map(|i| {
                let profile = SubscriptionProfile {
                    name: format!("sub-{i:07}"),
                    criteria: criteria(&mut rng),
                };
                let point = subscription_point(&profile, vector(&mut rng));
                profiles.push(profile);
                point
            })
            .collect();
        store.upsert(SUBSCRIPTIONS_COLLECTION, points).await?;
    }
    let ingest = subscriptions as f64 / started.elapsed().as_secs_f64();
    let subscriptions_mib = rss_mib() - rss_before;
    eprintln!("store: {subscriptions} subscriptions in, {ingest:.0}/s");

    let mut job_times = Vec::with_capacity(TIMED);
    let mut hits = 0;
    for i in 0..TIMED {
        let p = posting(&mut rng, format!("bench:{i}"));
        let facts = PostingFacts::of(&p);
        let query = subscriptions_query(&p, &facts, vector(&mut rng), subscriptions);
        let started = Instant::now();
        hits += store.search(SUBSCRIPTIONS_COLLECTION, &query).await?.len();
        job_times.push(started.elapsed());
    }
    job_times.sort();

    let rss_jobs = rss_mib();
    for start in (0..jobs).step_by(BATCH) {
        let points = (start..(start + BATCH).min(jobs))
            .map(|i| {
                let p = posting(&mut rng, format!("bench:job:{i}"));
                job_point(&p, &PostingFacts::of(&p), vector(&mut rng))
            })
            .collect();
        store.upsert(JOBS_COLLECTION, points).await?;
    }
    let jobs_mib = rss_mib() - rss_jobs;
    eprintln!("store: {jobs} jobs in");
    let mut backfill_times = Vec::with_capacity(TIMED);
    let mut found = 0;
    for profile in profiles.iter().take(TIMED) {
        let query = backfill_query(&profile.criteria, vector(&mut rng));
        let started = Instant::now();
        found += store.search(JOBS_COLLECTION, &query).await?.len();
        backfill_times.push(started.elapsed());
    }
    backfill_times.sort();

    drop(store);
    let data_dir_mib = dir_mib(dir.path());
    let started = Instant::now();
    let reopened = EmbeddedStore::open(dir.path())?;
    let reopen_s = started.elapsed().as_secs_f64();
    let total =
        reopened.count(SUBSCRIPTIONS_COLLECTION).await? + reopened.count(JOBS_COLLECTION).await?;
    anyhow::ensure!(
        total == subscriptions + jobs,
        "reopened with {total} points"
    );
    if std::env::var_os("STORE_BENCH_KEEP").is_some() {
        drop(reopened);
        eprintln!("store: data dir kept at {}", dir.keep().display());
    }
    let raw_mib = ((subscriptions + jobs) * DIMENSION * 4) as f64 / (1 << 20) as f64;
    Ok(serde_json::json!({
        "subscriptions": subscriptions,
        "jobs": jobs,
        "subscriptions_ingested_per_s": ingest.round(),
        "job_search_ms": {"p50": percentile(&job_times, 0.5), "p99": percentile(&job_times, 0.99)},
        "subscriptions_per_job": hits / TIMED,
        "backfill_search_ms": {"p50": percentile(&backfill_times, 0.5), "p99": percentile(&backfill_times, 0.99)},
        "jobs_per_backfill": found / TIMED,
        "memory_mib": {
            "subscriptions": subscriptions_mib.round(),
            "jobs": jobs_mib.round(),
            "raw_f32_vectors": raw_mib.round(),
        },
        "data_dir_mib": data_dir_mib.round(),
        "reopen_s": (reopen_s * 100.0).round() / 100.0,
        "threads": rayon::current_num_threads(),
    }))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // `open DIR`: only the time to open a data dir (for profiling a restart).
    if let [mode, dir] = &args[..]
        && mode == "open"
    {
        let started = Instant::now();
        let store = EmbeddedStore::open(std::path::Path::new(dir))?;
        println!(
            "opened in {:.2} s, RSS {:.0} MiB",
            started.elapsed().as_secs_f64(),
            rss_mib()
        );
        drop(store);
        return Ok(());
    }
    let sizes: Vec<usize> = match args.first() {
        Some(list) => list
            .split(',')
            .map(|n| n.trim().replace('_', "").parse())
            .collect::<Result<_, _>>()?,
        None => vec![100_000, 1_000_000],
    };
    let jobs: usize = match args.get(1) {
        Some(n) => n.replace('_', "").parse()?,
        None => 100_000,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for subscriptions in sizes {
        let line = runtime.block_on(run(subscriptions, jobs))?;
        println!("{line}");
    }
    Ok(())
}
