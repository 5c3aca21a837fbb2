//! Notices per second through one notifier process against a local SMTP server
//! (aiosmtpd): N matches for 200 email subscriptions are published to MATCHES first, then
//! one `jobmatch notifier` starts and the bench prints how long it took until every
//! notice was accepted by the SMTP server, and the rate.
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
    let nats = Nats::start().await;
    let smtp = Smtp::start().await;
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
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
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
        .env("JOBMATCH_NOTIFY_CONCURRENCY", &concurrency);
    let started = Instant::now();
    let proc = jobmatch_e2e::process::Proc::spawn("notifier", &mut command);
    let mut last = 0;
    while last < n && started.elapsed() < Duration::from_secs(1800) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = mails(&smtp.maildir);
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = proc.stop().await;
    println!(
        "one notifier, {concurrency} lanes: {last} notices in {secs:.2} s (process start included) = {:.0} notices/s",
        last as f64 / secs
    );
    Ok(())
}
