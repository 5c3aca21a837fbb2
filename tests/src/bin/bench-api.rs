//! `/job/search` through the api gateway with 10,000 stored jobs: requests per second
//! and latency percentiles, by a vector and by a 200-word resume text, at several
//! concurrencies, with one `jobmatch api`, one `jobmatch matcher` (the embedded store)
//! and one `jobmatch embedder` on a real nats-server.
//!
//! The stored jobs are real embeddings of 400 generated postings, each stored 25 times
//! with a little noise (so scores spread as real ones do) and its own payload; they are
//! published to VECTORS as the embedder would, so the bench does not wait for 10,000
//! embeddings. Queries are real embeddings of 200-word resumes.
//!
//!     eval "$(scripts/setup.sh --env)"
//!     cargo build --release --bin jobmatch
//!     JOBMATCH_BIN=target/release/jobmatch cargo run --release -p jobmatch-e2e --bin bench-api -- 10000

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage as Publish;
use jobmatch_core::messages::{self as m, Embedded};
use jobmatch_core::{Posting, Workplace};
use jobmatch_e2e::free_port;
use jobmatch_e2e::process::{JobmatchEnv, Nats, Proc};
use serde_json::{Value, json};

const TITLES: [&str; 10] = [
    "Senior Rust Engineer",
    "Backend Engineer (Go)",
    "Frontend Developer (React)",
    "Data Engineer",
    "Site Reliability Engineer",
    "Machine Learning Engineer",
    "Product Designer",
    "Engineering Manager",
    "Mobile Developer (iOS)",
    "Security Engineer",
];
const STACKS: [&str; 8] = [
    "Rust, Tokio and PostgreSQL",
    "Go, gRPC and Kafka",
    "TypeScript, React and GraphQL",
    "Python, Spark and Airflow",
    "Kubernetes, Terraform and Prometheus",
    "PyTorch, CUDA and feature stores",
    "Swift, SwiftUI and Core Data",
    "Java, Spring and Oracle",
];
const PLACES: [(&str, Workplace); 6] = [
    ("Berlin, Germany", Workplace::Hybrid),
    ("Remote - Europe", Workplace::Remote),
    ("Paris, France", Workplace::Onsite),
    ("London, UK", Workplace::Hybrid),
    ("Remote", Workplace::Remote),
    ("Munich, Germany", Workplace::Onsite),
];

fn posting_text(i: usize) -> (String, String) {
    let title = TITLES[i % TITLES.len()];
    let stack = STACKS[(i / TITLES.len()) % STACKS.len()];
    let description = format!(
        "We are hiring a {title} to work with {stack}. You will design, build and run \
         services used by millions of people, review code, mentor colleagues and share \
         on-call duty. Team {i} values written communication, small pull requests and \
         measuring what we ship. Benefits include learning budget, flexible hours and \
         thirty days of holiday."
    );
    (title.to_owned(), description)
}

fn resume(i: usize) -> String {
    let stack = STACKS[i % STACKS.len()];
    let title = TITLES[i % TITLES.len()];
    let mut text = format!(
        "{title} with {} years of experience, most recently working with {stack}. ",
        3 + i % 9
    );
    let filler = "I have designed and operated production systems end to end, from the \
        first sketch of an API to the dashboards that tell us it works, written design \
        documents, reviewed code and coached newer engineers, and I care about tests, \
        observability, clear writing and calm incident response. ";
    while text.split_whitespace().count() < 200 {
        text.push_str(filler);
    }
    text.split_whitespace()
        .take(200)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Stats {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
    hits: usize,
}

impl Stats {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_ms[i]
    }

    fn line(&self, label: &str) -> String {
        format!(
            "{label:<34} {:>8.0} req/s   p50 {:>6.1} ms   p90 {:>6.1} ms   p99 {:>6.1} ms   {:>4.1} hits/answer   {} errors",
            self.requests as f64 / self.seconds,
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.hits as f64 / self.requests.max(1) as f64,
            self.errors
        )
    }
}

/// `concurrency` clients posting `bodies` (round robin) to `url` for `duration`.
async fn load(
    client: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<Value>>,
    concurrency: usize,
    duration: Duration,
) -> Stats {
    let started = Instant::now();
    let workers = (0..concurrency).map(|w| {
        let (client, url, bodies) = (client.clone(), url.to_owned(), bodies.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut hits) = (0, 0);
            let mut n = w;
            while started.elapsed() < duration {
                let body = &bodies[n % bodies.len()];
                n += concurrency;
                let sent = Instant::now();
                match client.post(&url).json(body).send().await {
                    Ok(r) if r.status() == 200 => {
                        let answer: Value = r.json().await.unwrap_or_default();
                        hits += answer["hits"].as_array().map_or(0, Vec::len);
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors, hits)
        })
    });
    let mut stats = Stats {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        latencies_ms: Vec::new(),
        hits: 0,
    };
    for worker in futures::future::join_all(workers).await {
        let (latencies, errors, hits) = worker.expect("worker");
        stats.requests += latencies.len();
        stats.latencies_ms.extend(latencies);
        stats.errors += errors;
        stats.hits += hits;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    stats.latencies_ms.sort_by(f64::total_cmp);
    stats
}

fn noisy(base: &[f32], seed: u64) -> Vec<f32> {
    // A small deterministic perturbation (xorshift), renormalized.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = base
        .iter()
        .map(|x| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02;
            x + noise
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    jobmatch_workers::tls::install_crypto_provider();
    let nats = Nats::start().await;
    let dir = tempfile::tempdir()?;
    let env = JobmatchEnv {
        nats_url: nats.url.clone(),
        smtp_url: None,
        data_dir: dir.path().join("data"),
    };
    let listen = format!("127.0.0.1:{}", free_port());
    let quiet = |mut c: tokio::process::Command| {
        c.env("JOBMATCH_LOG", "warn");
        c
    };
    let _procs: Vec<Proc> = [
        vec!["matcher"],
        vec!["embedder"],
        vec!["api", "--listen", &listen],
    ]
    .into_iter()
    .map(|args| {
        let log = dir.path().join(format!("{}.log", args[0]));
        let mut command = quiet(env.command(&args, &log));
        Proc::spawn(&format!("jobmatch {}", args[0]), &mut command)
    })
    .collect();
    let base = format!("http://{listen}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let started = Instant::now();
    loop {
        let ok = client
            .post(format!("{base}/api/embed"))
            .json(&json!({"text": "warm"}))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the API did not come up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 400 real posting embeddings, through the API.
    let distinct = 400.min(jobs);
    let texts: Vec<(String, String)> = (0..distinct).map(posting_text).collect();
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    for chunk in texts.chunks(32) {
        let body =
            json!({"texts": chunk.iter().map(|(t, d)| format!("{t}. {d}")).collect::<Vec<_>>()});
        let answer: Value = client
            .post(format!("{base}/api/batch-embed"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        for v in answer["embeddings"].as_array().cloned().unwrap_or_default() {
            vectors.push(serde_json::from_value(v)?);
        }
    }
    println!(
        "[{:>5.1}s] embedded {} distinct postings",
        started.elapsed().as_secs_f64(),
        vectors.len()
    );

    // 10,000 stored jobs, published to VECTORS as the embedder would.
    let bus = jobmatch_workers::bus::Bus::connect(&nats.url).await?;
    let mut acks = Vec::new();
    for i in 0..jobs {
        let (title, description) = &texts[i % distinct];
        let (place, workplace) = PLACES[i % PLACES.len()];
        let posting = Posting {
            id: format!("greenhouse:bench:{i}"),
            source: "bench".into(),
            title: title.clone(),
            company: format!("Company {}", i % 700),
            locations: vec![place.into()],
            workplace,
            url: format!("https://boards.greenhouse.io/bench/jobs/{i}"),
            description: description.clone(),
            ..Posting::default()
        };
        let id = m::message_id::job_vector(&posting.id, &posting.content_hash());
        let item = Embedded::Job {
            vector: noisy(&vectors[i % distinct], i as u64),
            posting,
            version: i as u64 + 1,
        };
        let ack = bus
            .js
            .send_publish(
                m::VECTORS_JOB_SUBJECT,
                Publish::build()
                    .message_id(id)
                    .payload(serde_json::to_vec(&item)?.into()),
            )
            .await?;
        acks.push(ack);
        if acks.len() == 512 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    let mut consumer = bus
        .js
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            m::MATCHER_CONSUMER.name,
            m::VECTORS_STREAM,
        )
        .await?;
    loop {
        let info = consumer.info().await?;
        let left = info.num_pending + info.num_ack_pending as u64;
        if left == 0 {
            break;
        }
        println!(
            "[{:>5.1}s] storing: {left} of {jobs} jobs to go",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    println!(
        "[{:>5.1}s] {jobs} jobs stored",
        started.elapsed().as_secs_f64()
    );

    // Queries: 20 resumes of 200 words, and their vectors.
    let resumes: Vec<String> = (0..20).map(resume).collect();
    let answer: Value = client
        .post(format!("{base}/api/batch-embed"))
        .json(&json!({"texts": resumes}))
        .send()
        .await?
        .json()
        .await?;
    let queries: Vec<Vec<f32>> = serde_json::from_value(answer["embeddings"].clone())?;
    let criteria = json!({"remote": "allowed", "locations": ["Berlin", "Paris"], "minScore": 0.3});
    let by_vector: Arc<Vec<Value>> = Arc::new(
        queries
            .iter()
            .map(|v| json!({"vector": v, "criteria": criteria, "limit": 10}))
            .collect(),
    );
    let by_text: Arc<Vec<Value>> = Arc::new(
        resumes
            .iter()
            .map(|t| json!({"text": t, "criteria": criteria, "limit": 10}))
            .collect(),
    );
    let url = format!("{base}/job/search");
    let mut lines = Vec::new();
    // Warm-up.
    load(&client, &url, by_vector.clone(), 4, Duration::from_secs(2)).await;
    for concurrency in [1, 4, 8, 16, 32] {
        let stats = load(
            &client,
            &url,
            by_vector.clone(),
            concurrency,
            Duration::from_secs(8),
        )
        .await;
        let line = stats.line(&format!("vector, {concurrency} clients"));
        println!("{line}");
        lines.push(line);
    }
    for concurrency in [1, 4, 16] {
        let stats = load(
            &client,
            &url,
            by_text.clone(),
            concurrency,
            Duration::from_secs(12),
        )
        .await;
        let line = stats.line(&format!("200-word text, {concurrency} clients"));
        println!("{line}");
        lines.push(line);
    }
    // The embedder alone on the same texts, for comparison: batches of 20.
    let embed_url = format!("{base}/api/batch-embed");
    let embed_started = Instant::now();
    let mut embedded = 0;
    while embed_started.elapsed() < Duration::from_secs(12) {
        let r = client
            .post(&embed_url)
            .json(&json!({"texts": resumes}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "batch-embed: {}", r.status());
        embedded += resumes.len();
    }
    let line = format!(
        "{:<34} {:>8.1} texts/s",
        "the embedder alone (batches of 20)",
        embedded as f64 / embed_started.elapsed().as_secs_f64()
    );
    println!("{line}");
    lines.push(line);
    println!(
        "\n/job/search with {jobs} stored jobs (api, matcher, embedder, nats-server and this client on one machine):"
    );
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}
