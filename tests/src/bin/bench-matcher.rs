//! The matcher at scale, black box: one `jobmatch matcher` process (embedded store)
//! against a real nats-server, fed vectors as the embedders publish them, timed by the
//! matches it publishes. For each number of subscriptions it prints the ingest rate, the
//! time from one new job's vector to its last match published (p50/p99, one job at a
//! time), a burst of jobs published at once (jobs/s, matches/s, redeliveries), the
//! matcher's peak RSS, its data dir and its restart time; then a new subscription's
//! backfill against a number of stored jobs (p50/p99).
//!
//! Vectors are random unit vectors (384-d, seeded), and every subscription's `minScore`
//! is set so that a job matches about 0.5 % of them (random 384-d cosines are close to
//! normal with σ = 1/√384). The bench knows every cosine, so it also checks that each job
//! reached exactly the subscriptions it should.
//!
//!     eval "$(scripts/setup.sh --env)"
//!     cargo build --release --bin jobmatch --bin bench-matcher
//!     JOBMATCH_BIN=target/release/jobmatch target/release/bench-matcher \
//!         --subscriptions 10000,100000 --jobs 100000

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use futures::StreamExt;
use jobmatch_core::messages::{self as m, Embedded, MatchFound, SubscriptionProfile};
use jobmatch_core::{Criteria, Posting, Workplace};
use jobmatch_e2e::process::{JobmatchEnv, Nats, Proc};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

const DIMENSION: usize = 384;
/// About 0.5 % of random 384-d unit vectors are this similar to a given one (z = 2.576).
const MIN_SCORE: f32 = 0.1315;
/// Cosines this close to the threshold may round either way in the store's kernels.
const MARGIN: f32 = 1e-4;
/// Jobs timed one at a time for the latency figures.
const TIMED_JOBS: usize = 100;
/// New subscriptions timed one at a time for the backfill figures.
const TIMED_BACKFILLS: usize = 50;

struct Args {
    subscriptions: Vec<usize>,
    jobs: usize,
    burst: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        subscriptions: vec![10_000, 100_000],
        jobs: 100_000,
        burst: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--subscriptions" => {
                args.subscriptions = value
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse())
                    .collect::<Result<_, _>>()?
            }
            "--jobs" => args.jobs = value.replace('_', "").parse()?,
            "--burst" => args.burst = value.replace('_', "").parse()?,
            other => {
                anyhow::bail!("unknown flag {other} (--subscriptions N,N… --jobs N --burst N)")
            }
        }
    }
    Ok(args)
}

struct Vectors(rand::rngs::StdRng);

impl Vectors {
    fn next(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIMENSION)
            .map(|_| StandardNormal.sample(&mut self.0))
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn posting(id: &str) -> Posting {
    Posting {
        id: id.into(),
        source: "bench".into(),
        title: "Platform Engineer".into(),
        company: "Bench".into(),
        locations: vec!["Remote".into()],
        workplace: Workplace::Remote,
        url: format!("https://boards.greenhouse.io/bench/jobs/{id}"),
        description: "Operate Kubernetes clusters.".into(),
        ..Default::default()
    }
}

fn subscription(name: String, vector: Vec<f32>) -> Embedded {
    Embedded::Subscription {
        profile: SubscriptionProfile {
            name: name.clone(),
            criteria: Criteria {
                min_score: MIN_SCORE,
                ..Default::default()
            },
        },
        vector,
        digest: name,
    }
}

/// Publishes `items` with pipelined acknowledgements.
async fn publish_all(
    js: &async_nats::jetstream::Context,
    items: impl Iterator<Item = (&'static str, Embedded)>,
) -> anyhow::Result<()> {
    let mut acks = std::collections::VecDeque::new();
    for (subject, item) in items {
        let ack = js
            .publish(subject, serde_json::to_vec(&item)?.into())
            .await?;
        acks.push_back(ack);
        if acks.len() >= 1024
            && let Some(ack) = acks.pop_front()
        {
            ack.await?;
        }
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

/// The matcher's consumer: messages not yet acknowledged, and redeliveries so far.
async fn matcher_backlog(js: &async_nats::jetstream::Context) -> anyhow::Result<(u64, usize)> {
    let stream = js.get_stream(m::MATCHER_CONSUMER.stream).await?;
    let mut consumer = stream
        .get_consumer::<PullConfig>(m::MATCHER_CONSUMER.name)
        .await
        .map_err(|e| anyhow::anyhow!("the matcher's consumer: {e}"))?;
    let info = consumer.info().await?;
    Ok((
        info.num_pending + info.num_ack_pending as u64,
        info.num_redelivered,
    ))
}

async fn drained(js: &async_nats::jetstream::Context) -> anyhow::Result<()> {
    let mut last = Instant::now();
    loop {
        let (backlog, _) = matcher_backlog(js).await?;
        if backlog == 0 {
            return Ok(());
        }
        if last.elapsed() > Duration::from_secs(10) {
            eprintln!("  … {backlog} vectors waiting for the matcher");
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Matches seen on the wire: posting id → subscriptions, and when the last one came.
#[derive(Default)]
struct Seen {
    matches: HashMap<String, (HashSet<String>, Instant)>,
}

async fn watch_matches(client: &async_nats::Client) -> anyhow::Result<Arc<Mutex<Seen>>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut sub = client.subscribe("jobmatch.matches.>").await?;
    let writer = seen.clone();
    tokio::spawn(async move {
        while let Some(message) = sub.next().await {
            let Ok(found) = serde_json::from_slice::<MatchFound>(&message.payload) else {
                continue;
            };
            let mut seen = writer.lock().expect("lock");
            let entry = seen
                .matches
                .entry(found.posting.id)
                .or_insert_with(|| (HashSet::new(), Instant::now()));
            if entry.0.insert(found.subscription) {
                entry.1 = Instant::now();
            }
        }
    });
    client.flush().await?;
    Ok(seen)
}

fn count(seen: &Mutex<Seen>, posting: &str) -> (usize, Option<Instant>) {
    let seen = seen.lock().expect("lock");
    seen.matches
        .get(posting)
        .map_or((0, None), |(subs, at)| (subs.len(), Some(*at)))
}

/// How many of `subscriptions` a job must reach (surely, and at most).
fn expected(job: &[f32], subscriptions: &[Vec<f32>]) -> (usize, usize) {
    let scores: Vec<f32> = subscriptions.iter().map(|s| dot(job, s)).collect();
    (
        scores.iter().filter(|&&s| s >= MIN_SCORE + MARGIN).count(),
        scores.iter().filter(|&&s| s >= MIN_SCORE - MARGIN).count(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(meta) if meta.is_dir() => dir_size(&e.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

struct Matcher {
    env: JobmatchEnv,
    log: std::path::PathBuf,
}

impl Matcher {
    fn start(&self) -> Proc {
        let mut command = self.env.command(&["matcher"], &self.log);
        // The product's own log level: debug would log every rejected candidate.
        command.env("JOBMATCH_LOG", "info");
        Proc::spawn("jobmatch matcher", &mut command)
    }
}

/// Waits until `posting`'s matches number at least `want`; the time of the last one.
async fn reached(seen: &Mutex<Seen>, posting: &str, want: usize, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        let (n, at) = count(seen, posting);
        if n >= want
            && let Some(at) = at
        {
            return at;
        }
        if Instant::now() > deadline {
            panic!("{posting}: {n} matches after {timeout:?}, want {want}");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

async fn at_scale(subscriptions: usize, burst: usize, rng: &mut Vectors) -> anyhow::Result<()> {
    println!("\n## {subscriptions} subscriptions");
    let nats = Nats::start().await;
    let dir = tempfile::tempdir()?;
    let matcher = Matcher {
        env: JobmatchEnv {
            nats_url: nats.url.clone(),
            smtp_url: None,
            data_dir: dir.path().join("data"),
        },
        log: dir.path().join("matcher.log"),
    };
    let mut process = matcher.start();
    let client = async_nats::connect(&nats.url).await?;
    let js = async_nats::jetstream::new(client.clone());
    jobmatch_workers::bus::Bus::connect(&nats.url).await?;
    let seen = watch_matches(&client).await?;

    let vectors: Vec<Vec<f32>> = (0..subscriptions).map(|_| rng.next()).collect();
    let started = Instant::now();
    publish_all(
        &js,
        vectors.iter().enumerate().map(|(i, v)| {
            (
                m::VECTORS_SUBSCRIPTION_SUBJECT,
                subscription(format!("s{i}"), v.clone()),
            )
        }),
    )
    .await?;
    drained(&js).await?;
    let ingest = started.elapsed();
    println!(
        "subscriptions ingested: {:.0}/s ({subscriptions} in {:.1} s)",
        subscriptions as f64 / ingest.as_secs_f64(),
        ingest.as_secs_f64()
    );

    // One job at a time: publish to last match published.
    let mut latencies = Vec::new();
    let mut matches_per_job = 0;
    for j in 0..TIMED_JOBS {
        let job = rng.next();
        let (low, _) = expected(&job, &vectors);
        let id = format!("timed-{j}");
        let sent = Instant::now();
        publish_all(
            &js,
            std::iter::once((
                m::VECTORS_JOB_SUBJECT,
                Embedded::Job {
                    posting: posting(&id),
                    vector: job,
                    version: 0,
                },
            )),
        )
        .await?;
        let last = if low == 0 {
            drained(&js).await?;
            Instant::now()
        } else {
            reached(&seen, &id, low, Duration::from_secs(120)).await
        };
        latencies.push(last.saturating_duration_since(sent));
        matches_per_job += low;
    }
    latencies.sort();
    println!(
        "one job to its last match ({} matches a job): p50 {}, p99 {}",
        matches_per_job / TIMED_JOBS,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );

    // A burst: every job published at once.
    let jobs: Vec<Vec<f32>> = (0..burst).map(|_| rng.next()).collect();
    let (_, redelivered_before) = matcher_backlog(&js).await?;
    let started = Instant::now();
    publish_all(
        &js,
        jobs.iter().enumerate().map(|(j, v)| {
            (
                m::VECTORS_JOB_SUBJECT,
                Embedded::Job {
                    posting: posting(&format!("burst-{j}")),
                    vector: v.clone(),
                    version: 0,
                },
            )
        }),
    )
    .await?;
    drained(&js).await?;
    let took = started.elapsed();
    let (_, redelivered) = matcher_backlog(&js).await?;
    let mut wrong = 0;
    let mut total = 0;
    for (j, v) in jobs.iter().enumerate() {
        let (low, high) = expected(v, &vectors);
        let (n, _) = count(&seen, &format!("burst-{j}"));
        total += n;
        if n < low || n > high {
            wrong += 1;
        }
    }
    println!(
        "{burst} jobs at once: {:.0} jobs/s, {:.0} matches/s, {} redeliveries, {wrong} jobs with a wrong match set",
        burst as f64 / took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        redelivered - redelivered_before
    );
    let pid = process.pid().unwrap_or(0);
    println!(
        "matcher peak RSS {:.0} MiB; data dir {:.1} MiB",
        jobmatch_e2e::peak_rss_mib(pid),
        dir_size(&dir.path().join("data")) as f64 / (1 << 20) as f64
    );

    // Restart: stopped, started, and the next job's matches published.
    process.stop().await;
    let started = Instant::now();
    process = matcher.start();
    let job = rng.next();
    let (low, _) = expected(&job, &vectors);
    publish_all(
        &js,
        std::iter::once((
            m::VECTORS_JOB_SUBJECT,
            Embedded::Job {
                posting: posting("after-restart"),
                vector: job,
                version: 0,
            },
        )),
    )
    .await?;
    reached(&seen, "after-restart", low.max(1), Duration::from_secs(600)).await;
    println!(
        "restart to the first job matched: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    process.stop().await;
    Ok(())
}

async fn backfill(jobs: usize, rng: &mut Vectors) -> anyhow::Result<()> {
    println!("\n## backfill against {jobs} jobs");
    let nats = Nats::start().await;
    let dir = tempfile::tempdir()?;
    let matcher = Matcher {
        env: JobmatchEnv {
            nats_url: nats.url.clone(),
            smtp_url: None,
            data_dir: dir.path().join("data"),
        },
        log: dir.path().join("matcher.log"),
    };
    let mut process = matcher.start();
    let client = async_nats::connect(&nats.url).await?;
    let js = async_nats::jetstream::new(client.clone());
    jobmatch_workers::bus::Bus::connect(&nats.url).await?;
    let vectors: Vec<Vec<f32>> = (0..jobs).map(|_| rng.next()).collect();
    let started = Instant::now();
    publish_all(
        &js,
        vectors.iter().enumerate().map(|(j, v)| {
            (
                m::VECTORS_JOB_SUBJECT,
                Embedded::Job {
                    posting: posting(&format!("j{j}")),
                    vector: v.clone(),
                    version: 0,
                },
            )
        }),
    )
    .await?;
    drained(&js).await?;
    println!(
        "jobs ingested: {:.0}/s",
        jobs as f64 / started.elapsed().as_secs_f64()
    );
    // Each subscription's matches, one subscription at a time: the top 20 above its
    // threshold, so done when min(20, above) have come.
    let mut done: HashMap<String, usize> = HashMap::new();
    let mut sub = client.subscribe("jobmatch.matches.>").await?;
    client.flush().await?;
    let mut latencies = Vec::new();
    for i in 0..TIMED_BACKFILLS {
        let vector = rng.next();
        let (low, _) = expected(&vector, &vectors);
        let want = low.min(Criteria::default().top_k);
        let name = format!("new{i}");
        let sent = Instant::now();
        publish_all(
            &js,
            std::iter::once((
                m::VECTORS_SUBSCRIPTION_SUBJECT,
                subscription(name.clone(), vector),
            )),
        )
        .await?;
        if want == 0 {
            drained(&js).await?;
        }
        while done.get(&name).copied().unwrap_or(0) < want {
            let message = tokio::time::timeout(Duration::from_secs(120), sub.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("match subscription ended"))?;
            if let Ok(found) = serde_json::from_slice::<MatchFound>(&message.payload) {
                *done.entry(found.subscription).or_default() += 1;
            }
        }
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    println!(
        "a new subscription's backfill: p50 {}, p99 {}",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    let pid = process.pid().unwrap_or(0);
    println!(
        "matcher peak RSS {:.0} MiB; data dir {:.1} MiB",
        jobmatch_e2e::peak_rss_mib(pid),
        dir_size(&dir.path().join("data")) as f64 / (1 << 20) as f64
    );
    process.stop().await;
    let started = Instant::now();
    process = matcher.start();
    let vector = rng.next();
    let (low, _) = expected(&vector, &vectors);
    publish_all(
        &js,
        std::iter::once((
            m::VECTORS_SUBSCRIPTION_SUBJECT,
            subscription("after-restart".into(), vector),
        )),
    )
    .await?;
    let want = low.min(Criteria::default().top_k).max(1);
    while done.get("after-restart").copied().unwrap_or(0) < want {
        let message = tokio::time::timeout(Duration::from_secs(600), sub.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("match subscription ended"))?;
        if let Ok(found) = serde_json::from_slice::<MatchFound>(&message.payload) {
            *done.entry(found.subscription).or_default() += 1;
        }
    }
    println!(
        "restart to the first backfill: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    process.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    jobmatch_workers::tls::install_crypto_provider();
    println!(
        "bench-matcher: {} cores, jobmatch {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        jobmatch_e2e::process::jobmatch_bin().display()
    );
    let mut rng = Vectors(rand::rngs::StdRng::seed_from_u64(16));
    for &n in &args.subscriptions {
        at_scale(n, args.burst, &mut rng).await?;
    }
    if args.jobs > 0 {
        backfill(args.jobs, &mut rng).await?;
    }
    Ok(())
}
