//! The edge between a poll and NATS: classifies each posting against the dedup index,
//! publishes what is new, changed, re-posted or closed, and remembers it in the postings
//! bucket (after the publish is acknowledged, so a failure loses nothing: the next poll
//! finds the posting still unremembered and publishes it again).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage as Publish;
use jobmatch_core::Posting;
use jobmatch_core::ids::kv_key;
use jobmatch_core::messages::{PollCounts, jobs_subject};
use jobmatch_core::rpc::PostingOutcome;

use super::Poll;
use super::dedup::{DedupIndex, Fingerprint, Remembered, Verdict, board_of};
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
    /// Claims a company + title + location for a posting: `None` when it is this
    /// posting's (now or already), else the id of the posting holding it.
    fn claim(
        &self,
        identity: u64,
        id: &str,
    ) -> impl Future<Output = Result<Option<String>, async_nats::Error>> + Send;
    /// Gives up a claim the posting holds (it closed), so a copy elsewhere can take over.
    fn release(
        &self,
        identity: u64,
        id: &str,
    ) -> impl Future<Output = Result<(), async_nats::Error>> + Send;
}

fn identity_key(identity: u64) -> String {
    format!("{identity:016x}")
}

/// Publishes to `jobmatch.jobs.<source>` and remembers in the postings bucket.
pub struct NatsSink<'a>(pub &'a Bus);

impl Sink for NatsSink<'_> {
    async fn publish(
        &self,
        posting: &Posting,
        fingerprint: &Fingerprint,
    ) -> Result<(), async_nats::Error> {
        let id = jobmatch_core::messages::message_id::posting(
            &posting.id,
            posting.closed,
            fingerprint.content,
        );
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

    async fn claim(&self, identity: u64, id: &str) -> Result<Option<String>, async_nats::Error> {
        let key = identity_key(identity);
        let store = &self.0.identities;
        for _ in 0..3 {
            match store.create(&key, id.to_owned().into_bytes().into()).await {
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            // Held: by whom? (Released in between: try again.)
            if let Some(holder) = store.get(&key).await? {
                let holder = String::from_utf8_lossy(&holder).into_owned();
                return Ok((holder != id).then_some(holder));
            }
        }
        Ok(None)
    }

    async fn release(&self, identity: u64, id: &str) -> Result<(), async_nats::Error> {
        let key = identity_key(identity);
        let store = &self.0.identities;
        if let Some(entry) = store.entry(&key).await?
            && entry.operation == kv::Operation::Put
            && *entry.value == *id.as_bytes()
        {
            // Only our own claim: a copy may have claimed it since.
            let _ = store
                .delete_expect_revision(&key, Some(entry.revision))
                .await;
        }
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
        let (outcome, _) = apply_posting(sink, index, source, posting).await?;
        match outcome {
            PostingOutcome::New => counts.new += 1,
            PostingOutcome::Updated => counts.updated += 1,
            PostingOutcome::Unchanged => counts.unchanged += 1,
            PostingOutcome::Duplicate => counts.duplicates += 1,
            PostingOutcome::Repost => counts.reposts += 1,
            PostingOutcome::Closed => counts.closed += 1,
        }
    }
    // A malformed posting is not a closed one: closures wait for a clean poll.
    if poll.skipped.is_empty() {
        let vanished = index.lock().vanished(source, &listed);
        for (id, _) in vanished {
            if close_posting(sink, index, &id).await? {
                counts.closed += 1;
            }
        }
    }
    Ok(counts)
}

/// Classifies one posting of `source` against the index and claims, publishes it when
/// it must be (new, updated, re-post) and remembers it. Returns what it was, with the
/// posting it duplicates for a duplicate.
pub async fn apply_posting(
    sink: &impl Sink,
    index: &SharedIndex,
    source: &str,
    posting: &Posting,
) -> Result<(PostingOutcome, Option<String>), async_nats::Error> {
    let fingerprint = Fingerprint::of(posting);
    let verdict = index.lock().classify(&posting.id, &fingerprint);
    let mut record = Remembered {
        id: posting.id.clone(),
        source: source.to_owned(),
        fingerprint,
        duplicate_of: None,
        repost_of: None,
        closed: false,
        closed_at: None,
    };
    // Tier 2 across replicas: a job new to this index may be another replica's
    // publish from another board that has not reached us yet; the claim decides.
    let verdict = match verdict {
        Verdict::New | Verdict::Repost { .. } | Verdict::Updated { .. }
            if needs_claim(index, &posting.id, &verdict) =>
        {
            let mut holder = sink.claim(fingerprint.identity, &posting.id).await?;
            // A claim left by a posting known closed (its release was lost): take over.
            if let Some(stale) = &holder
                && index.lock().get(stale).is_some_and(|r| r.closed)
            {
                sink.release(fingerprint.identity, stale).await?;
                holder = sink.claim(fingerprint.identity, &posting.id).await?;
            }
            match holder {
                Some(holder) if board_of(&holder) != board_of(&posting.id) => {
                    Verdict::Duplicate { of: holder }
                }
                _ => verdict,
            }
        }
        verdict => verdict,
    };
    let outcome = match verdict {
        Verdict::Unchanged => return Ok((PostingOutcome::Unchanged, None)),
        Verdict::Duplicate { of } => {
            let known = index.lock().get(&posting.id).and_then(|r| r.duplicate_of);
            if known.as_deref() == Some(&of) {
                return Ok((PostingOutcome::Duplicate, Some(of)));
            }
            record.duplicate_of = Some(of);
            PostingOutcome::Duplicate
        }
        Verdict::New => PostingOutcome::New,
        Verdict::Updated { repost_of } => {
            record.repost_of = repost_of;
            // A new title (or company, or place) moves its claim along with it.
            let old = index
                .lock()
                .get(&posting.id)
                .map(|r| r.fingerprint.identity)
                .filter(|old| *old != fingerprint.identity);
            if let Some(old) = old {
                sink.release(old, &posting.id).await?;
                sink.claim(fingerprint.identity, &posting.id).await?;
            }
            PostingOutcome::Updated
        }
        Verdict::Repost { of } => {
            record.repost_of = Some(of);
            PostingOutcome::Repost
        }
    };
    if record.duplicate_of.is_none() {
        let mut posting = posting.clone();
        posting.repost_of.clone_from(&record.repost_of);
        sink.publish(&posting, &fingerprint).await?;
    }
    sink.remember(&record).await?;
    index.lock().remember(&record);
    Ok((outcome, record.duplicate_of))
}

/// Closes a known open posting: its claim released and, unless it was a duplicate
/// (never published), published as closed; remembered as closed. Returns whether a
/// closing was published; an unknown or already closed posting changes nothing.
pub async fn close_posting(
    sink: &impl Sink,
    index: &SharedIndex,
    id: &str,
) -> Result<bool, async_nats::Error> {
    let Some(mut record) = index.lock().get(id) else {
        return Ok(false);
    };
    if record.closed {
        return Ok(false);
    }
    let published = record.duplicate_of.is_none();
    record.closed = true;
    record.closed_at = Some(time::OffsetDateTime::now_utc().unix_timestamp());
    if published {
        sink.release(record.fingerprint.identity, id).await?;
        let closed = Posting {
            id: id.to_owned(),
            source: record.source.clone(),
            closed: true,
            ..Posting::default()
        };
        sink.publish(&closed, &record.fingerprint).await?;
    }
    sink.remember(&record).await?;
    index.lock().remember(&record);
    Ok(published)
}

/// Whether publishing this posting must first claim its company + title + location:
/// when it is new, or a duplicate whose original closed (it takes over).
fn needs_claim(index: &SharedIndex, id: &str, verdict: &Verdict) -> bool {
    match verdict {
        Verdict::New | Verdict::Repost { .. } => true,
        Verdict::Updated { .. } => index
            .lock()
            .get(id)
            .is_some_and(|r| r.duplicate_of.is_some()),
        _ => false,
    }
}

/// Closes every open posting of a source that no longer exists; returns how many.
pub async fn close_all(
    sink: &impl Sink,
    index: &SharedIndex,
    source: &str,
) -> Result<u64, async_nats::Error> {
    let counts = apply(sink, index, source, &Poll::default()).await?;
    Ok(counts.closed)
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

    /// One process: the index alone decides.
    async fn claim(&self, _: u64, _: &str) -> Result<Option<String>, async_nats::Error> {
        Ok(None)
    }

    async fn release(&self, _: u64, _: &str) -> Result<(), async_nats::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Claims shared with "another replica", and what was published.
    #[derive(Default)]
    struct FakeSink {
        claims: Mutex<HashMap<u64, String>>,
        published: Mutex<Vec<Posting>>,
    }

    impl Sink for FakeSink {
        async fn publish(
            &self,
            posting: &Posting,
            _: &Fingerprint,
        ) -> Result<(), async_nats::Error> {
            self.published.lock().expect("lock").push(posting.clone());
            Ok(())
        }

        async fn remember(&self, _: &Remembered) -> Result<(), async_nats::Error> {
            Ok(())
        }

        async fn claim(
            &self,
            identity: u64,
            id: &str,
        ) -> Result<Option<String>, async_nats::Error> {
            let mut claims = self.claims.lock().expect("lock");
            let holder = claims.entry(identity).or_insert_with(|| id.to_owned());
            Ok((holder != id).then(|| holder.clone()))
        }

        async fn release(&self, identity: u64, id: &str) -> Result<(), async_nats::Error> {
            let mut claims = self.claims.lock().expect("lock");
            if claims.get(&identity).is_some_and(|h| h == id) {
                claims.remove(&identity);
            }
            Ok(())
        }
    }

    fn posting(id: &str) -> Posting {
        Posting {
            id: id.into(),
            source: "s".into(),
            title: "Backend Engineer".into(),
            company: "Acme".into(),
            locations: vec!["Berlin".into()],
            description: "Build things.".into(),
            ..Posting::default()
        }
    }

    fn poll_of(postings: Vec<Posting>) -> Poll {
        Poll {
            postings,
            ..Poll::default()
        }
    }

    #[tokio::test]
    async fn a_job_another_replica_claimed_from_another_board_is_a_duplicate() {
        let sink = FakeSink::default();
        let theirs = posting("greenhouse:acme:1");
        sink.claims
            .lock()
            .expect("lock")
            .insert(Fingerprint::of(&theirs).identity, theirs.id.clone());
        // This replica's index has not seen their publish yet.
        let index = SharedIndex::default();
        let ours = posting("remoteok:remoteok.com:9");
        let counts = apply(&sink, &index, "remoteok", &poll_of(vec![ours.clone()]))
            .await
            .expect("apply");
        assert_eq!((counts.new, counts.duplicates), (0, 1));
        assert!(sink.published.lock().expect("lock").is_empty());
        assert_eq!(
            index
                .lock()
                .get(&ours.id)
                .and_then(|r| r.duplicate_of)
                .as_deref(),
            Some("greenhouse:acme:1")
        );
    }

    #[tokio::test]
    async fn a_closed_posting_releases_its_claim_and_a_second_opening_on_one_board_is_kept() {
        let sink = FakeSink::default();
        let index = SharedIndex::default();
        let first = posting("greenhouse:acme:1");
        let mut second = posting("greenhouse:acme:2");
        second.description = "Another opening, same title.".into();
        let counts = apply(&sink, &index, "s", &poll_of(vec![first.clone(), second]))
            .await
            .expect("apply");
        assert_eq!(counts.new, 2, "same board, same title: two openings");
        let counts = apply(&sink, &index, "s", &poll_of(vec![]))
            .await
            .expect("apply");
        assert_eq!(counts.closed, 2);
        assert!(
            sink.claims.lock().expect("lock").is_empty(),
            "claims released"
        );
        let published = sink.published.lock().expect("lock");
        assert_eq!(published.iter().filter(|p| p.closed).count(), 2);
    }

    #[tokio::test]
    async fn a_retitled_posting_moves_its_claim() {
        let sink = FakeSink::default();
        let index = SharedIndex::default();
        let before = posting("greenhouse:acme:1");
        apply(&sink, &index, "s", &poll_of(vec![before.clone()]))
            .await
            .expect("apply");
        let mut after = before.clone();
        after.title = "Staff Backend Engineer".into();
        let counts = apply(&sink, &index, "s", &poll_of(vec![after.clone()]))
            .await
            .expect("apply");
        assert_eq!(counts.updated, 1);
        let claims = sink.claims.lock().expect("lock").clone();
        assert_eq!(
            claims.get(&Fingerprint::of(&after).identity),
            Some(&before.id)
        );
        assert_eq!(
            claims.get(&Fingerprint::of(&before).identity),
            None,
            "the old title is free"
        );
    }
}
