//! The `fetcher` role: the poll loop over every configured source.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use jobmatch_core::messages::SourceConfig;
use jobmatch_core::rpc::FetchReport;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::dedup::Remembered;
use super::http::{BoardClient, Validators};
use super::publish::{NatsSink, SharedIndex};
use super::schedule::{self, Claim};
use crate::bus::{Bus, ConfigEvent};
use crate::metrics::Metrics;

/// Sources this replica is polling now.
pub type InFlight = Arc<std::sync::Mutex<HashSet<String>>>;

/// How often due sources are looked for.
const TICK: Duration = Duration::from_millis(500);
/// Polls running at once in one replica.
const CONCURRENT_POLLS: usize = 8;

/// The schedule-bucket key holding a source's validators for conditional GET.
fn validators_key(source: &str) -> String {
    format!("validators.{source}")
}

/// The sources configured now, by name.
pub type Sources = Arc<Mutex<HashMap<String, SourceConfig>>>;

pub async fn run(
    bus: Bus,
    metrics: Arc<Metrics>,
    client: BoardClient,
    mark_ready: impl FnOnce(),
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let index = SharedIndex::default();
    // Every replica's postings, before the first poll: otherwise all would look new.
    let remembered = follow_postings(&bus, index.clone(), cancel.clone()).await?;
    info!(postings = remembered, "dedup index loaded");
    tokio::spawn(forget_expired(bus.clone(), index.clone(), cancel.clone()));
    mark_ready();
    let sources: Sources = Arc::default();
    // When each source is next due, as last read from the schedule bucket: a lower bound
    // (another replica can only move it later), so the bucket is not asked before then.
    let mut not_before: HashMap<String, i64> = HashMap::new();
    let mut watch = Box::pin(bus.watch_config::<SourceConfig>("source").await?);
    let polls = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_POLLS));
    // Sources this replica is polling now: a slow board is never polled twice at once.
    let in_flight: InFlight = Arc::default();
    let tracker = tokio_util::task::TaskTracker::new();
    // The API's requests: its jobs through dedup, and polls on demand.
    let service = super::service::FetchService {
        bus: bus.clone(),
        metrics: metrics.clone(),
        client: client.clone(),
        index: index.clone(),
        sources: sources.clone(),
        in_flight: in_flight.clone(),
    };
    tracker.spawn(super::service::serve(service, cancel.clone()));
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
                    // Its open postings close: nothing polls them any more. Every replica
                    // does this; the second finds them closed already.
                    let (bus, index) = (bus.clone(), index.clone());
                    tracker.spawn(async move {
                        match super::publish::close_all(&NatsSink(&bus), &index, &name).await {
                            Ok(0) => {}
                            Ok(closed) => info!(source = %name, closed, "postings of a removed source closed"),
                            Err(e) => warn!(source = %name, error = %e, "could not close the postings of a removed source"),
                        }
                    });
                }
                None => anyhow::bail!("config watch ended"),
            },
            _ = tick.tick() => {
                let now = schedule::now_ms();
                let busy = in_flight.lock().map(|f| f.clone()).unwrap_or_default();
                let due: Vec<SourceConfig> = sources
                    .lock()
                    .await
                    .values()
                    .filter(|s| !s.spec.suspend && !busy.contains(&s.name) && not_before.get(&s.name).is_none_or(|t| *t <= now))
                    .cloned()
                    .collect();
                for source in due {
                    let Ok(permit) = polls.clone().try_acquire_owned() else { break };
                    match schedule::claim_due(&bus.schedule, &source.name, source.spec.interval).await {
                        Ok(Claim::Won { next_due_ms }) => {
                            not_before.insert(source.name.clone(), next_due_ms);
                            let (bus, client, metrics, index) = (bus.clone(), client.clone(), metrics.clone(), index.clone());
                            let in_flight = in_flight.clone();
                            if let Ok(mut f) = in_flight.lock() {
                                f.insert(source.name.clone());
                            }
                            tracker.spawn(async move {
                                let _ = poll_and_publish(&bus, &client, &metrics, &index, &source).await;
                                if let Ok(mut f) = in_flight.lock() {
                                    f.remove(&source.name);
                                }
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

/// Feeds the index from the postings bucket (every replica's writes) until cancelled;
/// returns once the entries already there are in, with their number.
async fn follow_postings(
    bus: &Bus,
    index: SharedIndex,
    cancel: CancellationToken,
) -> anyhow::Result<u64> {
    let existing = bus.postings.status().await?.values();
    let mut watch = bus.postings.watch_with_history(">").await?;
    let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel::<()>();
    let mut loaded_tx = Some(loaded_tx);
    if existing == 0
        && let Some(tx) = loaded_tx.take()
    {
        let _ = tx.send(());
    }
    tokio::spawn(async move {
        loop {
            let entry = tokio::select! {
                _ = cancel.cancelled() => return,
                entry = watch.next() => entry,
            };
            let entry = match entry {
                Some(Ok(entry)) => entry,
                Some(Err(e)) => {
                    warn!(error = %e, "postings watch error");
                    continue;
                }
                None => {
                    warn!("postings watch ended");
                    return;
                }
            };
            if entry.operation == kv::Operation::Put {
                match serde_json::from_slice::<Remembered>(&entry.value) {
                    Ok(record) => index.lock().remember(&record),
                    Err(e) => {
                        tracing::debug!(key = %entry.key, error = %e, "unreadable postings entry skipped")
                    }
                }
            }
            if entry.delta == 0
                && let Some(tx) = loaded_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    loaded_rx
        .await
        .map_err(|_| anyhow::anyhow!("postings watch ended while loading"))?;
    Ok(existing)
}

/// Validators as stored, with the digest of the spec they were obtained under: a changed
/// spec (say, a new `titleIncludes`) must read the board afresh, not get a 304.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredValidators {
    spec: String,
    #[serde(flatten)]
    validators: Validators,
}

fn spec_digest(source: &SourceConfig) -> String {
    let spec = serde_json::to_vec(&source.spec).unwrap_or_default();
    jobmatch_core::ids::digest_hex(&[&spec])
}

/// How often closed postings past their retention are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Forgets closed postings older than [`RETENTION`](super::dedup::RETENTION), now and
/// then hourly: deleted from the postings bucket and dropped from this replica's index
/// (every replica sweeps its own index; the deletes are idempotent).
async fn forget_expired(bus: Bus, index: SharedIndex, cancel: CancellationToken) {
    loop {
        let cutoff = time::OffsetDateTime::now_utc().unix_timestamp()
            - super::dedup::RETENTION.as_secs() as i64;
        let expired = index.lock().expired(cutoff);
        if !expired.is_empty() {
            for id in &expired {
                if let Err(e) = bus.postings.purge(jobmatch_core::ids::kv_key(id)).await {
                    warn!(posting = %id, error = %e, "could not forget a closed posting; next sweep retries");
                }
            }
            let forget: HashSet<&str> = expired.iter().map(String::as_str).collect();
            let mut index = index.lock();
            let rebuilt = index.without(&forget);
            *index = rebuilt;
            info!(
                forgotten = expired.len(),
                remembered = index.len(),
                "closed postings past retention forgotten"
            );
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

async fn load_validators(bus: &Bus, source: &SourceConfig) -> Option<Validators> {
    let value = bus
        .schedule
        .get(validators_key(&source.name))
        .await
        .ok()??;
    let stored: StoredValidators = serde_json::from_slice(&value).ok()?;
    (stored.spec == spec_digest(source)).then_some(stored.validators)
}

async fn store_validators(bus: &Bus, source: &SourceConfig, validators: Option<&Validators>) {
    let key = validators_key(&source.name);
    let result = match validators {
        Some(v) => {
            let stored = StoredValidators {
                spec: spec_digest(source),
                validators: v.clone(),
            };
            match serde_json::to_vec(&stored) {
                Ok(json) => bus.schedule.put(key, json.into()).await.map(|_| ()),
                Err(_) => Ok(()),
            }
        }
        None => bus.schedule.delete(key).await.map(|_| ()).or(Ok(())),
    };
    if let Err(e) = result {
        warn!(error = %e, "could not store validators; the next poll is unconditional");
    }
}

/// Polls a source, publishes what changed and reports it; returns what it found or
/// why it failed.
#[tracing::instrument(skip_all, fields(source = %source.name, board = source.spec.board.kind()))]
pub async fn poll_and_publish(
    bus: &Bus,
    client: &BoardClient,
    metrics: &Metrics,
    index: &SharedIndex,
    source: &SourceConfig,
) -> Result<FetchReport, String> {
    metrics.polls.inc();
    let validators = load_validators(bus, source).await;
    let poll = match super::poll(client, source, validators.as_ref()).await {
        Ok(poll) => poll,
        Err(e) => {
            metrics.poll_errors(e.category()).inc();
            warn!(error = %e, category = e.category(), "poll failed");
            bus.reports
                .poll_failed(&source.name, &e.to_string(), e.http_status());
            return Err(e.to_string());
        }
    };
    let mut report = FetchReport {
        source: source.name.clone(),
        seen: poll.postings.len(),
        counts: Default::default(),
        not_modified: poll.not_modified,
        http_status: poll.http_status,
        requests: poll.requests,
        errors: poll
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.location, s.message))
            .collect(),
    };
    if poll.not_modified {
        metrics.polls_not_modified.inc();
        info!("not modified since the last poll");
        bus.reports.poll_not_modified(&source.name);
        return Ok(report);
    }
    for skipped in &poll.skipped {
        warn!(location = %skipped.location, error = %skipped.message, "malformed posting skipped");
    }
    metrics.postings_malformed.inc_by(poll.skipped.len() as u64);
    match super::publish::apply(&NatsSink(bus), index, &source.name, &poll).await {
        Ok(counts) => {
            // Only now: a 304 next time must not hide postings that failed to publish.
            if poll.validators != validators {
                store_validators(bus, source, poll.validators.as_ref()).await;
            }
            bus.reports
                .poll_succeeded(&source.name, poll.postings.len(), counts, poll.http_status);
            metrics.count_postings(&counts);
            metrics
                .postings_published
                .inc_by(counts.new + counts.updated + counts.reposts + counts.closed);
            info!(
                seen = poll.postings.len(),
                new = counts.new,
                updated = counts.updated,
                unchanged = counts.unchanged,
                closed = counts.closed,
                duplicates = counts.duplicates,
                reposts = counts.reposts,
                malformed = counts.malformed,
                filtered = counts.filtered,
                requests = poll.requests,
                "polled"
            );
            report.counts = counts;
            Ok(report)
        }
        Err(e) => {
            warn!(error = %e, "publishing postings failed; they will be published at the next poll");
            let error = format!("publishing postings: {e}");
            bus.reports.poll_failed(&source.name, &error, None);
            Err(error)
        }
    }
}
