//! A backlog against a real NATS server: a stage whose handler is slow (each message
//! takes a fifteenth of the ack wait, the whole backlog several ack waits) drains it with
//! two replicas, every message handled exactly once and none redelivered, because what a
//! replica has pulled is few and kept in progress until settled; so does a lane that
//! holds its messages behind a slow handler (the notifier's way). And a replica stopped
//! mid-backlog hands what it holds back at once, for another to take.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobmatch_core::messages::{self as m, ConsumerSpec};
use jobmatch_e2e::process::Nats;
use jobmatch_workers::bus::{Bus, Handled, Lanes, consume, consume_in_lanes, deliveries};
use jobmatch_workers::metrics::Metrics;
use tokio_util::sync::CancellationToken;

const SLOW: ConsumerSpec = ConsumerSpec {
    stream: m::VECTORS_STREAM,
    name: "slow-stage",
    ack_wait_secs: 3,
    attempts: 5,
    retry_first_ms: 100,
    retry_max_secs: 1,
};
const BACKLOG: usize = 60;
const WORK: Duration = Duration::from_millis(200);

/// Messages handled, in the order their handlers finished.
type HandledLog = Arc<Mutex<Vec<usize>>>;

/// The backlog: messages `0..n` on VECTORS, every one stored before any replica starts.
async fn publish_backlog(bus: &Bus, n: usize) {
    for i in 0..n {
        bus.js
            .publish(
                m::VECTORS_JOB_SUBJECT,
                serde_json::to_vec(&i).expect("json").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
}

/// One replica of `spec` until `cancel`: each message takes `work`, then goes in `handled`.
fn spawn_replica(
    bus: &Bus,
    spec: ConsumerSpec,
    metrics: &Arc<Metrics>,
    handled: &HandledLog,
    cancel: &CancellationToken,
    work: Duration,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let (bus, metrics, handled, cancel) = (
        bus.clone(),
        metrics.clone(),
        handled.clone(),
        cancel.clone(),
    );
    tokio::spawn(async move {
        consume(&bus, spec, Lanes::SINGLE, &metrics, &cancel, |i: usize| {
            let handled = handled.clone();
            async move {
                tokio::time::sleep(work).await;
                handled.lock().expect("lock").push(i);
                Handled::Done
            }
        })
        .await
    })
}

/// Waits until `handled` holds `n` messages, at most `within`.
async fn wait_handled(handled: &HandledLog, n: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while handled.lock().expect("lock").len() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_slow_stage_drains_a_backlog_without_redeliveries() {
    let nats = Nats::start().await;
    let bus = Bus::connect(&nats.url).await.expect("bus");
    publish_backlog(&bus, BACKLOG).await;
    let handled = HandledLog::default();
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    let replicas: Vec<_> = (0..2)
        .map(|_| spawn_replica(&bus, SLOW, &metrics, &handled, &cancel, WORK))
        .collect();
    // 60 × 200 ms over two replicas: about 6 s, two ack waits.
    wait_handled(&handled, BACKLOG, Duration::from_secs(60)).await;
    // Another ack wait: a message redelivered late would show up now.
    tokio::time::sleep(Duration::from_secs(SLOW.ack_wait_secs + 1)).await;
    cancel.cancel();
    for replica in replicas {
        replica
            .await
            .expect("joins")
            .expect("consumes until cancelled");
    }

    let mut seen = handled.lock().expect("lock").clone();
    let total = seen.len();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        (0..BACKLOG).collect::<Vec<_>>(),
        "every message handled"
    );
    assert_eq!(total, BACKLOG, "each handled exactly once");
    let mut consumer = bus.consumer(SLOW).await.expect("consumer");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!(info.num_redelivered, 0, "{info:?}");
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.num_pending, 0, "{info:?}");
}

/// A replica stopped mid-backlog finishes the message in hand, starts no other, and hands
/// back what it holds once its pull is over: another replica takes it without waiting out
/// the ack wait.
#[tokio::test]
async fn a_stopped_replica_hands_back_what_it_holds() {
    const PATIENT: ConsumerSpec = ConsumerSpec {
        name: "patient-stage",
        ack_wait_secs: 60,
        ..SLOW
    };
    const HELD_BACKLOG: usize = 12;
    let nats = Nats::start().await;
    let bus = Bus::connect(&nats.url).await.expect("bus");
    publish_backlog(&bus, HELD_BACKLOG).await;
    let handled = HandledLog::default();
    let metrics = Arc::new(Metrics::default());
    let replica = |cancel: &CancellationToken, work: Duration| {
        spawn_replica(&bus, PATIENT, &metrics, &handled, cancel, work)
    };
    let first = CancellationToken::new();
    let stopping = replica(&first, Duration::from_secs(1));
    // It has pulled the backlog and is inside its first message.
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.cancel();
    // The message in hand and the end of the pull in flight (it expires 5 s after it was
    // sent): the other eleven, a second each, would take 11 s more.
    tokio::time::timeout(Duration::from_secs(8), stopping)
        .await
        .expect("stops after the message in hand")
        .expect("joins")
        .expect("consumes until cancelled");
    assert_eq!(
        handled.lock().expect("lock").len(),
        1,
        "only the message in hand is finished"
    );
    // Another replica takes the rest well inside the ack wait (held back, they would
    // come again only after it).
    let second = CancellationToken::new();
    let draining = replica(&second, Duration::from_millis(10));
    wait_handled(&handled, HELD_BACKLOG, Duration::from_secs(20)).await;
    second.cancel();
    draining
        .await
        .expect("joins")
        .expect("consumes until cancelled");
    let mut seen = handled.lock().expect("lock").clone();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..HELD_BACKLOG).collect::<Vec<_>>(),
        "each message handled once"
    );
}

/// Lanes as the notifier has them: one lane's messages wait behind its slow handler for
/// several ack waits while the other lanes go on; every waiting one is kept in progress,
/// so none is delivered twice, and each lane keeps its messages in order.
#[tokio::test]
async fn a_slow_lane_holds_its_messages_without_redeliveries() {
    const LANED: ConsumerSpec = ConsumerSpec {
        name: "laned-stage",
        ..SLOW
    };
    const MESSAGES: usize = 48;
    /// Lane 0 takes the first 16 messages, 600 ms each (9.6 s: three ack waits; up to
    /// seven wait 4.2 s behind the one in hand, longer than one); the
    /// other three lanes take the rest, 10 ms each.
    fn lane_of(message: &async_nats::jetstream::Message, lanes: usize) -> usize {
        let i: usize = serde_json::from_slice(&message.payload).unwrap_or(0);
        if i < 16 { 0 } else { 1 + i % (lanes - 1) }
    }
    let nats = Nats::start().await;
    let bus = Bus::connect(&nats.url).await.expect("bus");
    publish_backlog(&bus, MESSAGES).await;
    let handled: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let cancel = CancellationToken::new();
    let lanes = Lanes {
        capacity: 8,
        count: 4,
        lane_of,
    };
    let replica = {
        let (bus, handled, cancel) = (bus.clone(), handled.clone(), cancel.clone());
        tokio::spawn(async move {
            consume_in_lanes(&bus, LANED, lanes, &cancel, |message| {
                let handled = handled.clone();
                async move {
                    let i: usize = serde_json::from_slice(&message.payload).expect("index");
                    let work = if i < 16 { 600 } else { 10 };
                    tokio::time::sleep(Duration::from_millis(work)).await;
                    handled
                        .lock()
                        .expect("lock")
                        .push((i, deliveries(&message)));
                    message.ack().await.expect("ack");
                }
            })
            .await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while handled.lock().expect("lock").len() < MESSAGES && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(LANED.ack_wait_secs + 1)).await;
    cancel.cancel();
    replica
        .await
        .expect("joins")
        .expect("consumes until cancelled");

    let handled = handled.lock().expect("lock").clone();
    assert_eq!(
        handled.len(),
        MESSAGES,
        "each handled exactly once: {handled:?}"
    );
    assert!(
        handled.iter().all(|&(_, delivered)| delivered == 1),
        "none delivered twice: {handled:?}"
    );
    let slow: Vec<usize> = handled
        .iter()
        .map(|&(i, _)| i)
        .filter(|&i| i < 16)
        .collect();
    assert_eq!(slow, (0..16).collect::<Vec<_>>(), "a lane keeps its order");
    let mut consumer = bus.consumer(LANED).await.expect("consumer");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!(info.num_redelivered, 0, "{info:?}");
    assert_eq!(info.num_pending, 0, "{info:?}");
}
