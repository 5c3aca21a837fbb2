//! The notifier against a real NATS server, through its consumer: a failed send comes
//! back as a redelivery after a growing delay (honouring `Retry-After`), is never sent
//! twice, and is dead-lettered with its stage and reason when it cannot be sent; a claim
//! left by a notifier that died is taken over (the notice is sent, not lost), a live one
//! is respected; an undecodable match is dead-lettered at once; and a dead letter
//! redriven once the mail server is back is delivered with the notice's own Message-ID.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage as Publish;
use jobmatch_core::messages::{
    self as m, ConsumerSpec, Explanation, MatchFound, NoticeState, SubscriptionConfig,
};
use jobmatch_core::{Channel, Criteria, Posting, Schedule, Workplace};
use jobmatch_e2e::process::{Nats, Smtp};
use jobmatch_e2e::slack::{Failure, SlackReceiver};
use jobmatch_e2e::wait_for;
use jobmatch_workers::bus::Bus;
use jobmatch_workers::dead_letters;
use jobmatch_workers::metrics::Metrics;
use jobmatch_workers::notify::Delivery;
use jobmatch_workers::notify::role::{self, Notifier, NotifierSettings};
use tokio_util::sync::CancellationToken;

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

/// Publishes a match as the matcher does; `copy` gives a second message of the same
/// notice (a republished match past the duplicate window).
async fn publish(bus: &Bus, found: &MatchFound, copy: u32) {
    let id = format!("{}|{}|copy{copy}", found.subscription, found.posting.id);
    bus.js
        .send_publish(
            m::matches_subject(&found.subscription),
            Publish::build()
                .message_id(id)
                .payload(serde_json::to_vec(found).expect("json").into()),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
}

/// A notifier process's loop, in this test process.
fn start(
    bus: &Bus,
    smtp: &str,
    metrics: Arc<Metrics>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let delivery = Delivery::new(
        Some(smtp),
        None,
        "jobmatch <jm@localhost>",
        4,
        Duration::from_secs(5),
    )
    .expect("delivery");
    let settings = NotifierSettings {
        lanes: 4,
        retry: ConsumerSpec {
            attempts: 3,
            retry_first_ms: 100,
            ..m::NOTIFIER_CONSUMER
        },
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(role::run(
        Notifier::new(bus.clone(), delivery, metrics),
        settings,
        cancel.clone(),
    ));
    (cancel, task)
}

fn metrics_text(metrics: &Metrics) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &metrics.registry())
        .expect("encode metrics");
    out
}

async fn notice(bus: &Bus, found: &MatchFound) -> Option<NoticeState> {
    let raw = bus.notices.get(found.notice_key()).await.expect("get")?;
    NoticeState::decode(&raw)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_claims_dead_letters_and_redrive() {
    let nats = Nats::start().await;
    let slack = SlackReceiver::start().await;
    let bus = Bus::connect(&nats.url).await.expect("bus");
    let metrics = Arc::new(Metrics::default());
    // An SMTP URL where nothing listens: every email attempt fails.
    let dead_smtp = format!("smtp://127.0.0.1:{}", jobmatch_e2e::free_port());
    let (cancel, task) = start(&bus, &dead_smtp, metrics.clone());
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
    let delivered = |n: usize| {
        let got = slack.messages().len();
        async move { (got >= n).then_some(()) }
    };

    // Rate-limited twice, the second time for 1 s: delivered on the third delivery, not
    // before Slack's Retry-After had passed, with the notice's id.
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
    let first = found("grace", "1");
    publish(&bus, &first, 0).await;
    wait_for("grace/1 delivered", Duration::from_secs(30), || {
        delivered(1)
    })
    .await;
    let attempts = slack.attempts();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts[2] - attempts[1] >= Duration::from_secs(1),
        "Retry-After honoured: {:?}",
        attempts[2] - attempts[1]
    );
    assert_eq!(
        slack.notice_ids()[0],
        jobmatch_core::ids::kv_key(&first.notice_key())
    );
    assert!(notice(&bus, &first).await.is_some_and(|n| n.is_sent()));

    // The same notice again in another message: acknowledged, not sent.
    publish(&bus, &first, 1).await;
    // A notice whose claim a notifier left when it died: taken over and sent.
    let orphan = found("grace", "4");
    let dead_claim = NoticeState::Sending {
        owner: "notifier-that-died".into(),
        until_ms: now_ms() - 1_000,
    };
    bus.notices
        .put(orphan.notice_key(), dead_claim.encode().into())
        .await
        .expect("put");
    publish(&bus, &orphan, 0).await;
    wait_for("grace/4 delivered", Duration::from_secs(10), || {
        delivered(2)
    })
    .await;
    // A notice another live notifier is sending: left to it.
    let held = found("grace", "5");
    let live_claim = NoticeState::Sending {
        owner: "another-notifier".into(),
        until_ms: now_ms() + 60_000,
    };
    bus.notices
        .put(held.notice_key(), live_claim.encode().into())
        .await
        .expect("put");
    publish(&bus, &held, 0).await;
    // A permanent error (400): dead-lettered after one attempt.
    slack.fail_next([Failure {
        status: 400,
        retry_after: None,
    }]);
    publish(&bus, &found("grace", "2"), 0).await;
    // Email to a server that is down: three deliveries, then dead-lettered.
    let bob = found("bob", "3");
    publish(&bus, &bob, 0).await;
    // Not JSON at all: dead-lettered at once.
    bus.js
        .publish(m::matches_subject("grace"), "{not json".into())
        .await
        .expect("publish")
        .await
        .expect("ack");

    let letters = wait_for("three dead letters", Duration::from_secs(30), || {
        let bus = bus.clone();
        async move {
            let letters = dead_letters::list(&bus, Some("notifier")).await.ok()?;
            (letters.len() >= 3).then_some(letters)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bodies: Vec<String> = slack
        .messages()
        .iter()
        .map(|(_, b)| b.to_string())
        .collect();
    assert_eq!(slack.messages().len(), 2, "{bodies:?}");
    assert!(
        bodies[1].contains("greenhouse.io/acme/jobs/4"),
        "{bodies:?}"
    );
    assert_eq!(
        notice(&bus, &held).await,
        Some(live_claim),
        "a live claim is left alone"
    );
    assert_eq!(letters.len(), 3, "{letters:?}");
    for letter in &letters {
        assert_eq!(letter.stage, "notifier");
        assert!(
            letter.subject.starts_with("jobmatch.matches."),
            "{letter:?}"
        );
        assert!(!letter.at.is_empty(), "{letter:?}");
    }
    let reason_of = |part: &str| {
        letters
            .iter()
            .find(|l| l.reason.contains(part))
            .unwrap_or_else(|| panic!("no dead letter with {part:?}: {letters:?}"))
            .clone()
    };
    assert_eq!(reason_of("HTTP 400").deliveries, 1, "not retried");
    assert_eq!(reason_of("undecodable").deliveries, 1, "not retried");
    let bob_letter = reason_of("email:");
    assert_eq!(bob_letter.subject, m::matches_subject("bob"));
    assert_eq!(bob_letter.deliveries, 3);
    assert!(
        bob_letter.reason.contains("gave up after 3"),
        "{bob_letter:?}"
    );
    assert_eq!(
        notice(&bus, &bob).await,
        None,
        "claim released after failure"
    );

    let text = metrics_text(&metrics);
    for line in [
        "jobmatch_notices_sent_total{channel=\"slack\"} 2",
        "jobmatch_notice_takeovers_total 1",
        "jobmatch_dead_letters_total{stage=\"notifier\"} 3",
        "jobmatch_notice_failures_total{channel=\"email\"} 1",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(
        jobmatch_e2e::metric_sum(&text, "jobmatch_notices_duplicate_total") >= 2.0,
        "{text}"
    );
    assert!(
        jobmatch_e2e::metric_sum(&text, "jobmatch_retries_total") >= 4.0,
        "{text}"
    );

    // Stopping: the loop ends cleanly.
    cancel.cancel();
    task.await.expect("join").expect("notifier stopped cleanly");

    // The mail server is up now: bob's dead letter, redriven, is delivered once with the
    // Message-ID derived from its notice key.
    let smtp = Smtp::start().await;
    let (cancel, task) = start(&bus, &smtp.url, metrics.clone());
    assert_eq!(
        dead_letters::redrive(&bus, std::slice::from_ref(&bob_letter))
            .await
            .expect("redrive"),
        1
    );
    let mails = wait_for("bob's mail", Duration::from_secs(30), || {
        let mails = jobmatch_e2e::mail::read_maildir(&smtp.maildir);
        async move { (!mails.is_empty()).then_some(mails) }
    })
    .await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].header("message-id"),
        Some(
            format!(
                "<{}@localhost>",
                jobmatch_core::ids::kv_key(&bob.notice_key())
            )
            .as_str()
        )
    );
    assert!(notice(&bus, &bob).await.is_some_and(|n| n.is_sent()));
    let left = dead_letters::list(&bus, Some("notifier"))
        .await
        .expect("list");
    assert_eq!(left.len(), 2, "the redriven letter is gone: {left:?}");
    assert_eq!(dead_letters::purge(&bus, &left).await.expect("purge"), 2);
    assert!(
        dead_letters::list(&bus, None)
            .await
            .expect("list")
            .is_empty()
    );
    cancel.cancel();
    task.await.expect("join").expect("notifier stopped cleanly");
}
