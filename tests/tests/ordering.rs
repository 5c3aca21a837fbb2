//! The matcher against a real NATS server: an older version of a posting arriving after a
//! newer close (two embedders, out of order) does not bring the job back, a newer version
//! does; and a subscription republished unchanged (an embedder restart) starts no second
//! backfill, a changed one does.

use std::sync::Arc;

use jobmatch_core::Posting;
use jobmatch_core::messages::{self as m, Embedded, SubscriptionProfile};
use jobmatch_e2e::process::Nats;
use jobmatch_workers::bus::Bus;
use jobmatch_workers::matcher::role::Matcher;
use jobmatch_workers::metrics::Metrics;
use jobmatch_workers::store::AnyStore;
use jobmatch_workers::store::embedded::EmbeddedStore;

fn posting(id: &str) -> Posting {
    Posting {
        id: id.into(),
        source: "acme".into(),
        title: "Backend Engineer".into(),
        company: "Acme".into(),
        locations: vec!["Remote".into()],
        workplace: jobmatch_core::Workplace::Remote,
        url: "https://boards.greenhouse.io/acme/jobs/1".into(),
        description: "Rust".into(),
        ..Default::default()
    }
}

async fn matches_published(bus: &Bus) -> u64 {
    let mut stream = bus.js.get_stream(m::MATCHES_STREAM).await.expect("stream");
    stream.info().await.expect("info").state.messages
}

#[tokio::test(flavor = "multi_thread")]
async fn late_older_versions_and_unchanged_subscriptions_change_nothing() {
    let nats = Nats::start().await;
    let bus = Bus::connect(&nats.url).await.expect("bus");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let matcher = Matcher::new(
        bus.clone(),
        AnyStore::Embedded(store),
        Arc::new(Metrics::default()),
    );
    let vector = vec![0.6, 0.8, 0.0, 0.0];
    let profile = SubscriptionProfile {
        name: "ada".into(),
        criteria: Default::default(),
    };
    let subscription = |digest: &str| Embedded::Subscription {
        profile: profile.clone(),
        vector: vector.clone(),
        digest: digest.into(),
    };
    assert_eq!(matcher.handle(subscription("d1")).await.expect("handle"), 0);

    // The close (JOBS sequence 11) overtakes the update before it (10).
    let id = "greenhouse:acme:1";
    let closed = Embedded::JobClosed {
        id: id.into(),
        version: 11,
    };
    assert_eq!(matcher.handle(closed).await.expect("handle"), 0);
    let late = Embedded::Job {
        posting: posting(id),
        vector: vector.clone(),
        version: 10,
    };
    assert_eq!(
        matcher.handle(late).await.expect("handle"),
        0,
        "stale update ignored"
    );
    assert_eq!(matches_published(&bus).await, 0);
    // Not stored either: a changed subscription's backfill finds nothing.
    assert_eq!(matcher.handle(subscription("d0")).await.expect("handle"), 0);

    // The job reopens later (12): stored and matched.
    let reopened = Embedded::Job {
        posting: posting(id),
        vector: vector.clone(),
        version: 12,
    };
    assert_eq!(matcher.handle(reopened).await.expect("handle"), 1);
    assert_eq!(matches_published(&bus).await, 1);

    // An embedder restart republishes the resume unchanged: no backfill. A changed
    // resume or criteria (another digest) backfills.
    assert_eq!(matcher.handle(subscription("d0")).await.expect("handle"), 0);
    assert_eq!(matcher.handle(subscription("d2")).await.expect("handle"), 1);
}

/// Jobs and subscriptions arriving together are handled side by side (the matcher's
/// lanes), yet every pair finds each other exactly once: each point is stored before
/// its own search, so of two handled at once the later search sees the other.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_and_subscriptions_handled_side_by_side_all_find_each_other() {
    const EACH: usize = 30;
    let nats = Nats::start().await;
    let bus = Bus::connect(&nats.url).await.expect("bus");
    let matcher = Matcher::new(
        bus.clone(),
        AnyStore::Embedded(EmbeddedStore::in_memory()),
        Arc::new(Metrics::default()),
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(jobmatch_workers::matcher::role::run(
        matcher,
        cancel.clone(),
    ));
    let vector = vec![0.6, 0.8, 0.0, 0.0];
    for i in 0..EACH {
        let job = Embedded::Job {
            posting: posting(&format!("greenhouse:acme:{i}")),
            vector: vector.clone(),
            version: 1,
        };
        let subscription = Embedded::Subscription {
            profile: SubscriptionProfile {
                name: format!("s{i}"),
                criteria: jobmatch_core::Criteria {
                    top_k: 1000,
                    ..Default::default()
                },
            },
            vector: vector.clone(),
            digest: format!("d{i}"),
        };
        for (subject, item) in [
            (m::VECTORS_JOB_SUBJECT, job),
            (m::VECTORS_SUBSCRIPTION_SUBJECT, subscription),
        ] {
            bus.js
                .publish(subject, serde_json::to_vec(&item).expect("json").into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    }
    let want = (EACH * EACH) as u64;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while matches_published(&bus).await < want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Settle: a duplicate would show up after the last one expected.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let published = matches_published(&bus).await;
    let stream = bus.js.get_stream(m::MATCHES_STREAM).await.expect("stream");
    let mut seen = std::collections::HashSet::new();
    for sequence in 1..=published {
        let message = stream.get_raw_message(sequence).await.expect("message");
        let found: m::MatchFound = serde_json::from_slice(&message.payload).expect("json");
        seen.insert((found.subscription, found.posting.id));
    }
    let missing: Vec<(usize, usize)> = (0..EACH)
        .flat_map(|s| (0..EACH).map(move |j| (s, j)))
        .filter(|(s, j)| !seen.contains(&(format!("s{s}"), format!("greenhouse:acme:{j}"))))
        .collect();
    assert!(
        missing.is_empty() && published == want,
        "{published} published for {want} pairs; missing (subscription, job): {missing:?}"
    );
    cancel.cancel();
    running.await.expect("join").expect("matcher");
}
