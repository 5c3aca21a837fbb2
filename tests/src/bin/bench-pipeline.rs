//! Pipeline throughput: one Greenhouse board of N postings (the fixture jobs, varied)
//! through `jobmatch all` with four subscriptions, on a real nats-server and SMTP server.
//! Prints when each stage had handled everything, and postings per second.
//!
//!     eval "$(scripts/setup.sh --env)"
//!     cargo build --bin jobmatch && cargo run -p jobmatch-e2e --bin bench-pipeline -- 500

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use jobmatch_core::messages as m;
use jobmatch_e2e::boards::BoardServer;
use jobmatch_e2e::fixture;
use jobmatch_e2e::process::{JobmatchEnv, Nats, Smtp};

/// A Greenhouse board of `n` postings: the fixture jobs repeated, each copy with its own
/// id, title suffix and sentence, so every one is embedded and matched on its own.
fn synthetic_board(n: usize) -> String {
    let text = std::fs::read_to_string(fixture("boards/greenhouse-acme.json")).expect("fixture");
    let board: serde_json::Value = serde_json::from_str(&text).expect("json");
    let jobs = board["jobs"].as_array().expect("jobs");
    let out: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut job = jobs[i % jobs.len()].clone();
            job["id"] = serde_json::json!(7_000_000 + i);
            job["title"] = serde_json::json!(format!(
                "{} (team {})",
                job["title"].as_str().unwrap_or_default(),
                i / jobs.len()
            ));
            let content = job["content"].as_str().unwrap_or_default().to_owned();
            job["content"] =
                serde_json::json!(format!("{content}&lt;p&gt;Opening number {i}.&lt;/p&gt;"));
            job
        })
        .collect();
    serde_json::json!({"jobs": out, "meta": {"total": n}}).to_string()
}

async fn pending(js: &async_nats::jetstream::Context, stream: &str, consumer: &str) -> Option<u64> {
    let s = js.get_stream(stream).await.ok()?;
    let c = s.get_consumer::<PullConfig>(consumer).await.ok()?;
    let info = c.cached_info();
    Some(info.num_pending + info.num_ack_pending as u64)
}

async fn messages(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(500);
    let nats = Nats::start().await;
    let smtp = Smtp::start().await;
    let boards = BoardServer::start_with(vec![("bench".into(), synthetic_board(n))]).await;
    let dir = tempfile::tempdir()?;
    let mut config = std::fs::read_to_string(fixture("pipeline/config.yaml"))?;
    // One source: the synthetic board, polled once during the run.
    let start = config
        .find("apiVersion: v1")
        .expect("secret follows the sources");
    config = format!(
        "apiVersion: jobmatch.dev/v1alpha1\nkind: JobSource\nmetadata: {{name: bench}}\nspec: {{board: {{kind: greenhouse, token: bench}}, baseUrl: {}, interval: 1h}}\n---\n{}",
        boards.url,
        &config[start..]
    );
    for (k, v) in [
        ("ADA_MIN", "0.465"),
        ("GRACE_MIN", "0.55"),
        ("LINUS_MIN", "0.54"),
        ("MARGARET_MIN", "0.5"),
        ("SLACK", "http://127.0.0.1:9"),
    ] {
        config = config.replace(&format!("${{{k}}}"), v);
    }
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config)?;
    let env = JobmatchEnv {
        nats_url: nats.url.clone(),
        smtp_url: Some(smtp.url.clone()),
        data_dir: dir.path().join("data"),
    };
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await?);

    let started = Instant::now();
    let proc = env.spawn(
        &["all", "-f", &path.display().to_string()],
        &dir.path().join("all.log"),
    );
    let (mut fetched, mut embedded, mut matched, mut notified) = (None, None, None, None);
    let mut first_posting = None;
    while notified.is_none() && started.elapsed() < Duration::from_secs(1800) {
        let t = started.elapsed();
        let jobs = messages(&js, m::JOBS_STREAM).await;
        if jobs > 0 && first_posting.is_none() {
            first_posting = Some(t);
        }
        if fetched.is_none() && jobs as usize >= n {
            fetched = Some(t);
        }
        let vectors = messages(&js, m::VECTORS_STREAM).await;
        if embedded.is_none()
            && fetched.is_some()
            && pending(&js, m::JOBS_STREAM, "embedder").await == Some(0)
            && vectors as usize >= n
        {
            embedded = Some(t);
        }
        if matched.is_none()
            && embedded.is_some()
            && pending(&js, m::VECTORS_STREAM, "matcher").await == Some(0)
        {
            matched = Some(t);
        }
        if notified.is_none()
            && matched.is_some()
            && pending(&js, m::MATCHES_STREAM, "notifier")
                .await
                .unwrap_or(0)
                == 0
        {
            notified = Some(t);
        }
        eprint!(
            "\r[{:>5.1}s] postings {jobs} · vectors {vectors}   ",
            t.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!();
    // Notified matches leave MATCHES: its last sequence counts every one published.
    let matches = match js.get_stream(m::MATCHES_STREAM).await {
        Ok(mut s) => s.info().await.map(|i| i.state.last_sequence).unwrap_or(0),
        Err(_) => 0,
    };
    proc.stop().await;
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN);
    let first = secs(first_posting);
    println!("postings: {n}, matches: {matches}");
    println!(
        "first posting published   {:>7.2} s after start (model load, connect, first poll)",
        first
    );
    println!("all postings published    {:>7.2} s", secs(fetched));
    println!("all embedded              {:>7.2} s", secs(embedded));
    println!("all matched               {:>7.2} s", secs(matched));
    println!("all notices sent          {:>7.2} s", secs(notified));
    println!(
        "pipeline throughput       {:>7.1} postings/s (first posting published to all notified)",
        n as f64 / (secs(notified) - first)
    );
    Ok(())
}
