//! Notices per second through one notifier process against a local SMTP server
//! (aiosmtpd): N matches for 200 email subscriptions are published to MATCHES first, then
//! one `jobmatch notifier` starts and the bench prints how long it took until every
//! notice was accepted by the SMTP server, and the rate, with a progress line every 5 s.
//!
//! Two rounds, side by side: the server's maildir in memory (its fsyncs out of the way),
//! and on disk, where Python's `mailbox` fsyncs every mail.
//!
//!     eval "$(scripts/setup.sh --env)"
//!     cargo build --release --bin jobmatch
//!     JOBMATCH_BIN=target/release/jobmatch cargo run --release -p jobmatch-e2e --bin bench-notify -- 5000

use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage as Publish;
use jobmatch_core::messages::{self as m, Explanation, MatchFound, SubscriptionConfig};
use jobmatch_core::{Channel, Criteria, Posting, Schedule};
use jobmatch_e2e::process::{JobmatchEnv, Nats, Smtp};

const SUBSCRIPTIONS: usize = 200;

fn found(n: usize) -> MatchFound {
    MatchFound {
        subscription: format!("s{}", n % SUBSCRIPTIONS),
        posting: Posting {
            id: format!("greenhouse:bench:{n}"),
            source: "bench".into(),
            title: format!("Backend Engineer {n}"),
            company: "Acme".into(),
            locations: vec!["Remote".into()],
            url: format!("https://boards.greenhouse.io/bench/jobs/{n}"),
            description: "Rust, Kubernetes and NATS.".into(),
            ..Default::default()
        },
        explanation: Explanation {
            score: 0.7,
            min_score: 0.5,
            matched_terms: vec!["rust".into()],
            missing_terms: vec![],
            filters: vec![],
        },
    }
}

fn mails(dir: &std::path::Path) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|d| std::fs::read_dir(dir.join(d)).ok())
        .map(|entries| entries.count())
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(5_000);
    let concurrency = std::env::var("JOBMATCH_NOTIFY_CONCURRENCY").unwrap_or_else(|_| "16".into());
    let mut rates = Vec::new();
    for (name, smtp) in [
        ("maildir in memory", Smtp::start_in_memory().await),
        ("maildir on disk", Smtp::start().await),
    ] {
        println!("== {name}");
        let rate = round(n, &concurrency, &smtp).await?;
        rates.push((name, rate));
    }
    println!("one notifier, {concurrency} lanes, {n} notices:");
    for (name, rate) in rates {
        println!("  {name:<18} {rate:>6.0} notices/s");
    }
    Ok(())
}

/// One notifier against `smtp` with `n` matches waiting; the notices per second.
async fn round(n: usize, concurrency: &str, smtp: &Smtp) -> anyhow::Result<f64> {
    let nats = Nats::start().await;
    let bus = jobmatch_workers::bus::Bus::connect(&nats.url).await?;
    for s in 0..SUBSCRIPTIONS {
        let config = SubscriptionConfig {
            name: format!("s{s}"),
            resume: "Backend engineer".into(),
            criteria: Criteria::default(),
            channel: Channel::Email {
                to: format!("s{s}@example.com"),
            },
            schedule: Schedule::Instant,
        };
        bus.config
            .put(
                m::subscription_key(&config.name),
                serde_json::to_vec(&config)?.into(),
            )
            .await?;
    }
    // Acks awaited a window at a time: the client holds at most a few thousand open.
    for window in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut acks = Vec::with_capacity(window.len());
        for &i in window {
            let f = found(i);
            acks.push(
                bus.js
                    .send_publish(
                        m::matches_subject(&f.subscription),
                        Publish::build().payload(serde_json::to_vec(&f)?.into()),
                    )
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
    }
    println!("{n} matches for {SUBSCRIPTIONS} subscriptions published");
    let dir = tempfile::tempdir()?;
    let env = JobmatchEnv {
        nats_url: nats.url.clone(),
        smtp_url: Some(smtp.url.clone()),
        data_dir: dir.path().join("data"),
    };
    let mut command = env.command(&["notifier"], &dir.path().join("notifier.log"));
    command
        .env("JOBMATCH_LOG", "warn")
        .env("JOBMATCH_NOTIFY_CONCURRENCY", concurrency);
    let started = Instant::now();
    let proc = jobmatch_e2e::process::Proc::spawn("notifier", &mut command);
    let (mut last, mut reported) = (0, (Instant::now(), 0));
    while last < n && started.elapsed() < Duration::from_secs(1800) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = mails(&smtp.maildir);
        if reported.0.elapsed() >= Duration::from_secs(5) {
            let rate = (last - reported.1) as f64 / reported.0.elapsed().as_secs_f64();
            println!(
                "[{:>5.1}s] {last} sent, {rate:.0}/s lately",
                started.elapsed().as_secs_f64()
            );
            reported = (Instant::now(), last);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = proc.stop().await;
    println!("{last} notices in {secs:.2} s (process start included)");
    Ok(last as f64 / secs)
}
