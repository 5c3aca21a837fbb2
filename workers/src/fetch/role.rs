//! The `fetcher` role: the poll loop over every configured source.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage as Publish;
use futures::StreamExt;
use jobmatch_core::ids::kv_key;
use jobmatch_core::messages::{SourceConfig, jobs_subject};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::http::BoardClient;
use super::schedule::{self, Claim};
use crate::bus::{Bus, ConfigEvent};
use crate::metrics::Metrics;

/// How often due sources are looked for.
const TICK: Duration = Duration::from_millis(500);
/// Polls running at once in one replica.
const CONCURRENT_POLLS: usize = 8;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishCounts {
    pub new_or_changed: usize,
    pub unchanged: usize,
}

pub async fn run(
    bus: Bus,
    metrics: Arc<Metrics>,
    http_timeout: Duration,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let client = BoardClient::new(http_timeout)?;
    let sources: Arc<Mutex<HashMap<String, SourceConfig>>> = Arc::default();
    // When each source is next due, as last read from the schedule bucket: a lower bound
    // (another replica can only move it later), so the bucket is not asked before then.
    let mut not_before: HashMap<String, i64> = HashMap::new();
    let mut watch = Box::pin(bus.watch_config::<SourceConfig>("source").await?);
    let polls = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_POLLS));
    let tracker = tokio_util::task::TaskTracker::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    info!("fetcher started");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            event = watch.next() => match event {
                Some(ConfigEvent::Put(source)) => {
                    info!(source = %source.name, board = source.spec.board.kind(), "source configured");
                    not_before.remove(&source.name);
                    sources.lock().await.insert(source.name.clone(), source);
                }
                Some(ConfigEvent::Deleted(name)) => {
                    info!(source = %name, "source removed");
                    not_before.remove(&name);
                    sources.lock().await.remove(&name);
                }
                None => anyhow::bail!("config watch ended"),
            },
            _ = tick.tick() => {
                let now = schedule::now_ms();
                let due: Vec<SourceConfig> = sources
                    .lock()
                    .await
                    .values()
                    .filter(|s| !s.spec.suspend && not_before.get(&s.name).is_none_or(|t| *t <= now))
                    .cloned()
                    .collect();
                for source in due {
                    let Ok(permit) = polls.clone().try_acquire_owned() else { break };
                    match schedule::claim_due(&bus.schedule, &source.name, source.spec.interval).await {
                        Ok(Claim::Won { next_due_ms }) => {
                            not_before.insert(source.name.clone(), next_due_ms);
                            let (bus, client, metrics) = (bus.clone(), client.clone(), metrics.clone());
                            tracker.spawn(async move {
                                poll_and_publish(&bus, &client, &metrics, &source).await;
                                drop(permit);
                            });
                        }
                        Ok(Claim::NotDue { until_ms }) => {
                            not_before.insert(source.name.clone(), until_ms);
                        }
                        Ok(Claim::Lost) => {}
                        Err(e) => warn!(source = %source.name, error = %e, "could not claim poll"),
                    }
                }
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    info!("fetcher stopped");
    Ok(())
}

#[tracing::instrument(skip_all, fields(source = %source.name, board = source.spec.board.kind()))]
async fn poll_and_publish(
    bus: &Bus,
    client: &BoardClient,
    metrics: &Metrics,
    source: &SourceConfig,
) {
    metrics.polls.inc();
    let poll = match super::poll(client, source).await {
        Ok(poll) => poll,
        Err(e) => {
            metrics.poll_errors(e.category()).inc();
            warn!(error = %e, category = e.category(), "poll failed");
            bus.reports.poll_failed(&source.name, &e.to_string());
            return;
        }
    };
    for skipped in &poll.skipped {
        warn!(index = skipped.index, error = %skipped.message, "malformed posting skipped");
    }
    metrics.postings_malformed.inc_by(poll.skipped.len() as u64);
    match publish(bus, &poll.postings).await {
        Ok(counts) => {
            bus.reports
                .poll_succeeded(&source.name, poll.postings.len());
            metrics
                .postings_published
                .inc_by(counts.new_or_changed as u64);
            info!(
                seen = poll.postings.len(),
                published = counts.new_or_changed,
                unchanged = counts.unchanged,
                malformed = poll.skipped.len(),
                filtered = poll.filtered,
                "polled"
            );
        }
        Err(e) => {
            warn!(error = %e, "publishing postings failed; they will be published at the next poll");
            bus.reports
                .poll_failed(&source.name, &format!("publishing postings: {e}"));
        }
    }
}

/// Publishes the postings whose content is new, then records their hashes.
pub async fn publish(
    bus: &Bus,
    postings: &[jobmatch_core::Posting],
) -> Result<PublishCounts, async_nats::Error> {
    let mut counts = PublishCounts::default();
    for posting in postings {
        let hash = posting.content_hash();
        let key = kv_key(&posting.id);
        if bus.postings.get(&key).await?.as_deref() == Some(hash.as_bytes()) {
            counts.unchanged += 1;
            continue;
        }
        let ack = bus
            .js
            .send_publish(
                jobs_subject(&posting.source),
                Publish::build()
                    .message_id(format!("{}:{hash}", posting.id))
                    .payload(serde_json::to_vec(posting)?.into()),
            )
            .await?;
        ack.await?;
        bus.postings.put(&key, hash.into_bytes().into()).await?;
        counts.new_or_changed += 1;
    }
    Ok(counts)
}
