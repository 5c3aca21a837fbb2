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
