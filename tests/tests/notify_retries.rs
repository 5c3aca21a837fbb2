//! The notifier against a real NATS server: a failed send is retried with backoff
//! (honouring `Retry-After`), never sent twice, and dead-lettered, not dropped, when
//! every attempt fails.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jobmatch_core::messages::{self as m, Explanation, MatchFound, SubscriptionConfig};
use jobmatch_core::{Channel, Criteria, Posting, Schedule, Workplace};
use jobmatch_e2e::process::Nats;
use jobmatch_e2e::slack::{Failure, SlackReceiver};
use jobmatch_workers::bus::Bus;
use jobmatch_workers::metrics::Metrics;
use jobmatch_workers::notify::role::{Notifier, Outcome};
use jobmatch_workers::notify::{Delivery, RetryPolicy};

fn found(subscription: &str, job: &str) -> MatchFound {
    MatchFound {
        subscription: subscription.into(),
        posting: Posting {
            id: format!("greenhouse:acme:{job}"),
            source: "acme".into(),
            title: "Senior Frontend Engineer".into(),
            company: "Acme".into(),
            locations: vec!["Remote".into()],
            workplace: Workplace::Remote,
            url: format!("https://boards.greenhouse.io/acme/jobs/{job}"),
            description: "React & TypeScript".into(),
            tags: vec![],
            employment_type: None,
            salary: None,
            posted_at: None,
            updated_at: None,
            ..Default::default()
        },
        explanation: Explanation {
            score: 0.7,
            min_score: 0.5,
            matched_terms: vec![],
            missing_terms: vec![],
            filters: vec![],
        },
    }
}

async fn subscribe(bus: &Bus, name: &str, channel: Channel) {
    let config = SubscriptionConfig {
        name: name.into(),
        resume: "Frontend engineer".into(),
        criteria: Criteria::default(),
        channel,
        schedule: Schedule::Instant,
    };
    bus.config
        .put(
            m::subscription_key(name),
            serde_json::to_vec(&config).expect("json").into(),
        )
        .await
        .expect("put subscription");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_honour_retry_after_then_never_resend_and_dead_letter_failures() {
    let nats = Nats::start().await;
    let slack = SlackReceiver::start().await;
    let bus = Bus::connect(&nats.url).await.expect("bus");
    let metrics = Arc::new(Metrics::default());
    // An SMTP URL where nothing listens: every email attempt fails.
    let dead_smtp = format!("smtp://127.0.0.1:{}", jobmatch_e2e::free_port());
    let retry = RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(5),
    };
    let notifier = Notifier::new(
        bus.clone(),
        Delivery::new(Some(&dead_smtp), "jobmatch <jm@localhost>", retry).expect("delivery"),
        metrics.clone(),
    );

    subscribe(
        &bus,
        "grace",
        Channel::Slack {
            webhook_url: slack.webhook("grace"),
        },
    )
    .await;
    subscribe(
        &bus,
        "bob",
        Channel::Email {
            to: "bob@example.com".into(),
        },
    )
    .await;

    // Rate-limited twice, the second time for 1 s: delivered on the third attempt, and
    // not before Slack's Retry-After had passed.
    slack.fail_next([
        Failure {
            status: 429,
            retry_after: None,
        },
        Failure {
            status: 429,
            retry_after: Some(1),
        },
    ]);
    let match_1 = found("grace", "1");
    assert_eq!(
        notifier.handle(&match_1).await.expect("handle"),
        Outcome::Sent
    );
    let attempts = slack.attempts();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts[2] - attempts[1] >= Duration::from_secs(1),
        "Retry-After honoured: {:?}",
        attempts[2] - attempts[1]
    );
    assert_eq!(slack.messages().len(), 1);

    // Redelivered: not sent again.
    assert_eq!(
        notifier.handle(&match_1).await.expect("handle"),
        Outcome::AlreadySent
    );
    assert_eq!(slack.attempts().len(), 3);

    // A permanent error (400) is not retried; the match is dead-lettered.
    slack.fail_next([Failure {
        status: 400,
        retry_after: None,
    }]);
    assert_eq!(
        notifier.handle(&found("grace", "2")).await.expect("handle"),
        Outcome::DeadLettered
    );
    assert_eq!(slack.attempts().len(), 4);

    // Email to a server that is down: every attempt fails, then dead-lettered, and the
    // claim is released so a later redrive may send it.
    let bob = found("bob", "3");
    assert_eq!(
        notifier.handle(&bob).await.expect("handle"),
        Outcome::DeadLettered
    );
    assert_eq!(
        notifier.handle(&bob).await.expect("handle"),
        Outcome::DeadLettered,
        "claim released after failure"
    );

    let stream = bus
        .js
        .get_stream(m::DEAD_LETTER_STREAM)
        .await
        .expect("dead letters");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages").take(3);
    let mut subjects = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.expect("message");
        let error = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Jobmatch-Error"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        assert!(!error.is_empty(), "dead letters carry their error");
        let body: MatchFound =
            serde_json::from_slice(&message.payload).expect("dead letter is the match");
        subjects.push((message.subject.to_string(), body.posting.id, error));
    }
    assert_eq!(subjects[0].0, "jobmatch.dead.grace");
    assert!(subjects[0].2.contains("HTTP 400"), "{subjects:?}");
    assert_eq!(subjects[1].0, "jobmatch.dead.bob");
    assert!(subjects[1].2.starts_with("email:"), "{subjects:?}");

    // A match for a subscription that no longer exists is dropped, not retried forever.
    assert_eq!(
        notifier.handle(&found("gone", "4")).await.expect("handle"),
        Outcome::SubscriptionGone
    );
    let mut text = String::new();
    prometheus_text(&metrics, &mut text);
    assert!(
        text.contains("jobmatch_notices_sent_total{channel=\"slack\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("jobmatch_notice_failures_total{channel=\"email\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("jobmatch_notices_duplicate_total 1"),
        "{text}"
    );
}

fn prometheus_text(metrics: &Metrics, out: &mut String) {
    prometheus_client::encoding::text::encode(out, &metrics.registry()).expect("encode metrics");
}
