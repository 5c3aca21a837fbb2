//! The edge between a poll and NATS: classifies each posting against the dedup index,
//! publishes what is new, changed, re-posted or closed, and remembers it in the postings
//! bucket (after the publish is acknowledged, so a failure loses nothing: the next poll
//! finds the posting still unremembered and publishes it again).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::jetstream::message::PublishMessage as Publish;
use jobmatch_core::Posting;
use jobmatch_core::ids::kv_key;
use jobmatch_core::messages::{PollCounts, jobs_subject};

use super::Poll;
use super::dedup::{DedupIndex, Fingerprint, Remembered, Verdict};
use crate::bus::Bus;

/// The dedup index every poll task of a replica shares.
#[derive(Clone, Default)]
pub struct SharedIndex(Arc<Mutex<DedupIndex>>);

impl SharedIndex {
    pub fn lock(&self) -> MutexGuard<'_, DedupIndex> {
        match self.0.lock() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Where classified postings go: NATS in the fetcher, nowhere in `jobmatch fetch`.
pub trait Sink {
    /// Publishes a posting (new, updated, re-post or closed).
    fn publish(
        &self,
        posting: &Posting,
        fingerprint: &Fingerprint,
    ) -> impl Future<Output = Result<(), async_nats::Error>> + Send;
    /// Remembers a posting's state for every replica.
    fn remember(
        &self,
        record: &Remembered,
    ) -> impl Future<Output = Result<(), async_nats::Error>> + Send;
}

/// Publishes to `jobmatch.jobs.<source>` and remembers in the postings bucket.
pub struct NatsSink<'a>(pub &'a Bus);

impl Sink for NatsSink<'_> {
    async fn publish(
        &self,
        posting: &Posting,
        fingerprint: &Fingerprint,
    ) -> Result<(), async_nats::Error> {
        let id = if posting.closed {
            format!("{}:closed:{:016x}", posting.id, fingerprint.content)
        } else {
            format!("{}:{:016x}", posting.id, fingerprint.content)
        };
        let ack = self
            .0
            .js
            .send_publish(
                jobs_subject(&posting.source),
                Publish::build()
                    .message_id(id)
                    .payload(serde_json::to_vec(posting)?.into()),
            )
            .await?;
        ack.await?;
        Ok(())
    }

    async fn remember(&self, record: &Remembered) -> Result<(), async_nats::Error> {
        self.0
            .postings
            .put(kv_key(&record.id), serde_json::to_vec(record)?.into())
            .await?;
        Ok(())
    }
}

/// Applies one poll: every posting classified, published when it must be, remembered;
/// postings gone from the board published as closed. Returns what it found.
pub async fn apply(
    sink: &impl Sink,
    index: &SharedIndex,
    source: &str,
    poll: &Poll,
) -> Result<PollCounts, async_nats::Error> {
    let mut counts = PollCounts {
        malformed: poll.skipped.len() as u64,
        filtered: poll.filtered as u64,
        ..PollCounts::default()
    };
    let mut listed: HashSet<&str> = HashSet::with_capacity(poll.postings.len());
    for posting in &poll.postings {
        if !listed.insert(&posting.id) {
            continue; // listed twice in one response
        }
        let fingerprint = Fingerprint::of(posting);
        let verdict = index.lock().classify(&posting.id, &fingerprint);
        let mut record = Remembered {
            id: posting.id.clone(),
            source: source.to_owned(),
            fingerprint,
            duplicate_of: None,
            repost_of: None,
            closed: false,
        };
        match verdict {
            Verdict::Unchanged => {
                counts.unchanged += 1;
                continue;
            }
            Verdict::Duplicate { of } => {
                counts.duplicates += 1;
                if index
                    .lock()
                    .get(&posting.id)
                    .and_then(|r| r.duplicate_of)
                    .as_deref()
                    == Some(&of)
                {
                    continue;
                }
                record.duplicate_of = Some(of);
            }
            Verdict::New => counts.new += 1,
            Verdict::Updated { repost_of } => {
                counts.updated += 1;
                record.repost_of = repost_of;
            }
            Verdict::Repost { of } => {
                counts.reposts += 1;
                record.repost_of = Some(of);
            }
        }
        if record.duplicate_of.is_none() {
            let mut posting = posting.clone();
            posting.repost_of.clone_from(&record.repost_of);
            sink.publish(&posting, &fingerprint).await?;
        }
        sink.remember(&record).await?;
        index.lock().remember(&record);
    }
    // A malformed posting is not a closed one: closures wait for a clean poll.
    if poll.skipped.is_empty() {
        let vanished = index.lock().vanished(source, &listed);
        for (id, was_duplicate) in vanished {
            let Some(mut record) = index.lock().get(&id) else {
                continue;
            };
            record.closed = true;
            if !was_duplicate {
                let closed = Posting {
                    id: id.clone(),
                    source: source.to_owned(),
                    closed: true,
                    ..Posting::default()
                };
                sink.publish(&closed, &record.fingerprint).await?;
                counts.closed += 1;
            }
            sink.remember(&record).await?;
            index.lock().remember(&record);
        }
    }
    Ok(counts)
}

/// For `jobmatch fetch`: classifies without publishing anywhere.
pub struct DrySink;

impl Sink for DrySink {
    async fn publish(&self, _: &Posting, _: &Fingerprint) -> Result<(), async_nats::Error> {
        Ok(())
    }

    async fn remember(&self, _: &Remembered) -> Result<(), async_nats::Error> {
        Ok(())
    }
}
