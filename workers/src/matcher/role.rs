//! The `matcher` role.

use std::sync::Arc;

use async_nats::jetstream::message::PublishMessage as Publish;
use jobmatch_core::Posting;
use jobmatch_core::messages::{
    self as m, Embedded, Explanation, MatchFoundJson, SubscriptionProfile,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::criteria::{
    self, POSTING_FIELD, PostingText, accepting_subscriptions, evaluate_text, job_payload,
    prefilter, subscription_payload,
};
use super::facts::PostingFacts;
use super::state::MatcherState;
use crate::bus::{Bus, Handled};
use crate::metrics::Metrics;
use crate::store::batching::UpsertBatcher;
use crate::store::{AnyStore, Point, Query, StoreError, VectorStore};

pub const JOBS_COLLECTION: &str = "jobmatch_jobs";
pub const SUBSCRIPTIONS_COLLECTION: &str = "jobmatch_subscriptions";
/// The candidate pool the API keeps (`/resume/*`), apart from the subscriptions.
pub const RESUMES_COLLECTION: &str = "jobmatch_resumes";
const PROFILE_FIELD: &str = "profile";
/// A subscription's `minScore`, beside its profile: the store's per-point threshold, so a
/// new job's search returns only the subscriptions it scores enough for.
const MIN_SCORE_FIELD: &str = "minScore";
/// Matches published and not yet acknowledged by the stream, at most: their
/// acknowledgements come back pipelined instead of one round trip each.
const MATCHES_IN_FLIGHT: usize = 256;
/// Vectors handled side by side, a point's messages always in the same lane (see
/// [`lane_of_vector`]): their store round trips and publishing overlap, and their
/// upserts are written together.
pub const MATCHER_LANES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing match: {0}")]
    Publish(String),
    #[error("matcher state: {0}")]
    State(String),
}

/// A job's point in [`JOBS_COLLECTION`].
pub fn job_point(posting: &Posting, facts: &PostingFacts, vector: Vec<f32>) -> Point {
    Point {
        id: posting.id.clone(),
        vector,
        payload: job_payload(posting, facts),
    }
}

/// A subscription's point in [`SUBSCRIPTIONS_COLLECTION`]: its profile, its hard
/// criteria as filter fields and its `minScore` as the point's own threshold.
pub fn subscription_point(profile: &SubscriptionProfile, vector: Vec<f32>) -> Point {
    let mut payload = subscription_payload(&profile.criteria);
    payload.insert(PROFILE_FIELD.into(), json!(profile));
    payload.insert(MIN_SCORE_FIELD.into(), json!(profile.criteria.min_score));
    Point {
        id: profile.name.clone(),
        vector,
        payload,
    }
}

/// The subscriptions a new job may match, at most `limit` (the matcher asks for more
/// than are stored, and again with more room when the answer is full: no cap that would
/// drop the least similar ones' matches). The store returns
/// those whose remote and location rules take this job and that it scores at least
/// their own `minScore` for (`evaluate` still decides: the filter and the threshold are
/// the ones it checks). No `minScore` is below 0 (the schema's range), so no hit is.
pub fn subscriptions_query(
    posting: &Posting,
    facts: &PostingFacts,
    vector: Vec<f32>,
    limit: usize,
) -> Query {
    Query {
        vector,
        filter: accepting_subscriptions(posting, facts),
        limit,
        min_score: Some(0.0),
        own_threshold: Some(MIN_SCORE_FIELD),
    }
}

/// The stored jobs a new or changed subscription may match. Term rules are not store
/// filters: it asks for more than `topK` and keeps the best `topK` that pass them.
pub fn backfill_query(criteria: &jobmatch_core::Criteria, vector: Vec<f32>) -> Query {
    Query {
        vector,
        filter: prefilter(criteria),
        limit: (criteria.top_k * 10).max(200),
        min_score: Some(criteria.min_score),
        own_threshold: None,
    }
}

/// A match to publish: the subscription, the posting it takes, why.
struct Found<'a> {
    subscription: String,
    posting: &'a Posting,
    explanation: Explanation,
}

pub struct Matcher {
    bus: Bus,
    store: Arc<AnyStore>,
    /// Every upsert of a job or a subscription goes through here.
    upserts: UpsertBatcher,
    metrics: Arc<Metrics>,
    versions: MatcherState,
    /// Collections are created on the first vector, sized by it.
    collections: tokio::sync::OnceCell<()>,
}

impl Matcher {
    /// Needs a Tokio runtime: the upserts' writer is started on it.
    pub fn new(bus: Bus, store: AnyStore, metrics: Arc<Metrics>) -> Self {
        let store = Arc::new(store);
        Self {
            versions: MatcherState(bus.matcher_state.clone()),
            bus,
            upserts: UpsertBatcher::spawn(store.clone()),
            store,
            metrics,
            collections: tokio::sync::OnceCell::new(),
        }
    }

    pub(crate) fn store(&self) -> &AnyStore {
        &self.store
    }

    pub(crate) fn bus(&self) -> &Bus {
        &self.bus
    }

    pub(crate) async fn ensure_collections(&self, dimension: usize) -> Result<(), StoreError> {
        self.collections
            .get_or_try_init(|| async {
                self.store
                    .ensure_collection(JOBS_COLLECTION, dimension, &criteria::JOB_FILTER_FIELDS)
                    .await?;
                self.store
                    .ensure_collection(
                        SUBSCRIPTIONS_COLLECTION,
                        dimension,
                        &criteria::SUBSCRIPTION_FILTER_FIELDS,
                    )
                    .await?;
                self.store
                    .ensure_collection(RESUMES_COLLECTION, dimension, &[])
                    .await
            })
            .await
            .map(|_| ())
    }

    pub async fn handle(&self, item: Embedded) -> Result<usize, MatchError> {
        match item {
            Embedded::Job {
                posting,
                vector,
                version,
            } => {
                if !self.versions.apply(&posting.id, version, false).await? {
                    debug!(posting = %posting.id, version, "older version of a posting ignored");
                    return Ok(0);
                }
                self.ensure_collections(vector.len()).await?;
                self.job(posting, vector).await
            }
            Embedded::JobClosed { id, version } => {
                if self.versions.apply(&id, version, true).await? {
                    self.delete(JOBS_COLLECTION, id).await?;
                }
                Ok(0)
            }
            Embedded::Subscription {
                profile,
                vector,
                digest,
            } => {
                self.ensure_collections(vector.len()).await?;
                self.subscription(profile, vector, digest).await
            }
            Embedded::SubscriptionDeleted { name } => {
                self.versions.forget_subscription(&name).await?;
                self.delete(SUBSCRIPTIONS_COLLECTION, name).await?;
                Ok(0)
            }
        }
    }

    /// Deletes a point; a collection not created yet holds nothing to delete.
    async fn delete(&self, collection: &str, id: String) -> Result<(), MatchError> {
        match self.store.delete(collection, &[id]).await {
            Ok(()) | Err(StoreError::NoCollection(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn job(&self, posting: Posting, vector: Vec<f32>) -> Result<usize, MatchError> {
        // Read once: stored with the job, its filter over subscriptions, every evaluation.
        let facts = PostingFacts::of(&posting);
        self.upserts
            .upsert(
                JOBS_COLLECTION,
                vec![job_point(&posting, &facts, vector.clone())],
            )
            .await?;
        let subscriptions = match self.store.count(SUBSCRIPTIONS_COLLECTION).await {
            Ok(count) => count,
            Err(StoreError::NoCollection(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        if subscriptions == 0 {
            return Ok(0);
        }
        // Asked for more than were counted: subscriptions stored meanwhile (other lanes,
        // other replicas) could push some out of a full answer, and one stored before the
        // count may have had its backfill before this job was stored. A full answer is
        // asked again with twice the room, so every accepting subscription is in it.
        let mut limit = subscriptions + subscriptions / 8 + 64;
        let hits = loop {
            let query = subscriptions_query(&posting, &facts, vector.clone(), limit);
            let hits = self.store.search(SUBSCRIPTIONS_COLLECTION, &query).await?;
            if hits.len() < limit {
                break hits;
            }
            limit *= 2;
        };
        let text = PostingText::with_facts(&posting, facts);
        let mut matches = Vec::new();
        for hit in hits {
            let Some(profile) = hit
                .payload
                .get(PROFILE_FIELD)
                .and_then(|v| SubscriptionProfile::deserialize(v).ok())
            else {
                warn!(subscription = %hit.id, "stored subscription without a readable profile");
                continue;
            };
            match evaluate_text(&profile.criteria, &text, hit.score) {
                Ok(explanation) => matches.push(Found {
                    subscription: profile.name,
                    posting: &posting,
                    explanation,
                }),
                Err(why) => {
                    debug!(subscription = %profile.name, posting = %posting.id, ?why, "no match")
                }
            }
        }
        let found = self.publish_all(matches).await?;
        if found > 0 {
            info!(posting = %posting.id, matches = found, "job matched");
        }
        Ok(found)
    }

    async fn subscription(
        &self,
        profile: SubscriptionProfile,
        vector: Vec<f32>,
        digest: String,
    ) -> Result<usize, MatchError> {
        self.upserts
            .upsert(
                SUBSCRIPTIONS_COLLECTION,
                vec![subscription_point(&profile, vector.clone())],
            )
            .await?;
        // The same resume and criteria again (an embedder restarted): matched before.
        if !self
            .versions
            .subscription_changed(&profile.name, &digest)
            .await?
        {
            debug!(subscription = %profile.name, "unchanged subscription; no backfill");
            return Ok(0);
        }
        let c = &profile.criteria;
        let hits = self
            .store
            .search(JOBS_COLLECTION, &backfill_query(c, vector))
            .await?;
        let mut accepted = Vec::new();
        for hit in hits {
            if accepted.len() >= c.top_k {
                break;
            }
            let Some(posting) = hit
                .payload
                .get(POSTING_FIELD)
                .and_then(|v: &Value| Posting::deserialize(v).ok())
            else {
                warn!(job = %hit.id, "stored job without a readable posting");
                continue;
            };
            let text = PostingText::stored(&posting, &hit.payload);
            if let Ok(explanation) = evaluate_text(c, &text, hit.score) {
                accepted.push((posting, explanation));
            }
        }
        let matches = accepted
            .iter()
            .map(|(posting, explanation)| Found {
                subscription: profile.name.clone(),
                posting,
                explanation: explanation.clone(),
            })
            .collect();
        let found = self.publish_all(matches).await?;
        info!(subscription = %profile.name, matches = found, "backfilled subscription");
        self.versions
            .subscription_backfilled(&profile.name, &digest)
            .await?;
        Ok(found)
    }

    /// Publishes `matches` in order, without waiting for each one's acknowledgement
    /// before sending the next (at most [`MATCHES_IN_FLIGHT`] unacknowledged); returns
    /// once every one is acknowledged, so the vector that found them is acked only then.
    async fn publish_all(&self, matches: Vec<Found<'_>>) -> Result<usize, MatchError> {
        let err = |e: &dyn std::fmt::Display| MatchError::Publish(e.to_string());
        let count = matches.len();
        let mut in_flight = std::collections::VecDeque::with_capacity(MATCHES_IN_FLIGHT);
        // A job's matches share its posting: its JSON and content hash are made once.
        let mut posting: Option<(&str, Box<serde_json::value::RawValue>, String)> = None;
        for found in matches {
            if in_flight.len() >= MATCHES_IN_FLIGHT
                && let Some((subscription, ack)) = in_flight.pop_front()
            {
                self.acknowledged(subscription, ack).await?;
            }
            if posting
                .as_ref()
                .is_none_or(|(id, ..)| *id != found.posting.id)
            {
                let json = serde_json::value::to_raw_value(found.posting).map_err(|e| err(&e))?;
                posting = Some((&found.posting.id, json, found.posting.content_hash()));
            }
            let Some((_, json, hash)) = &posting else {
                continue;
            };
            let payload = serde_json::to_vec(&MatchFoundJson {
                subscription: &found.subscription,
                posting: json,
                explanation: &found.explanation,
            })
            .map_err(|e| err(&e))?;
            let id = m::message_id::match_found(&found.subscription, &found.posting.id, hash);
            debug!(subscription = %found.subscription, posting = %found.posting.id, score = found.explanation.score, "match");
            let ack = self
                .bus
                .js
                .send_publish(
                    m::matches_subject(&found.subscription),
                    Publish::build().message_id(id).payload(payload.into()),
                )
                .await
                .map_err(|e| err(&e))?;
            in_flight.push_back((found.subscription, ack));
        }
        for (subscription, ack) in in_flight {
            self.acknowledged(subscription, ack).await?;
        }
        Ok(count)
    }

    async fn acknowledged(
        &self,
        subscription: String,
        ack: async_nats::jetstream::context::PublishAckFuture,
    ) -> Result<(), MatchError> {
        let ack = ack.await.map_err(|e| MatchError::Publish(e.to_string()))?;
        self.metrics.matches_found.inc();
        // A redelivered vector republishes its matches: count each once.
        if !ack.duplicate {
            self.bus.reports.matched(&subscription);
        }
        Ok(())
    }
}

/// The point a VECTORS message is about, as `job:<id>` or `subscription:<name>`: a
/// job's vector and its closing share a lane, as do a subscription and its deletion,
/// so each point's messages are handled in order while different points' go side by
/// side. (Two points handled at once still find each other: each is upserted before
/// its own search, so the later search sees the other.) Read from the payload, skipping
/// the vector; a message that does not say goes to lane 0 and is dead-lettered there.
fn lane_of_vector(message: &async_nats::jetstream::Message, lanes: usize) -> usize {
    point_of(&message.payload).map_or(0, |point| crate::bus::lane_of(&point, lanes))
}

/// The point an [`Embedded`] message's JSON is about (see [`lane_of_vector`]).
fn point_of(payload: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    #[derive(Deserialize)]
    struct Name {
        name: String,
    }
    #[derive(Deserialize)]
    struct About {
        posting: Option<Id>,
        id: Option<String>,
        profile: Option<Name>,
        name: Option<String>,
    }
    let about: About = serde_json::from_slice(payload).ok()?;
    match about {
        About {
            posting: Some(Id { id }),
            ..
        }
        | About { id: Some(id), .. } => Some(format!("job:{id}")),
        About {
            profile: Some(Name { name }),
            ..
        }
        | About {
            name: Some(name), ..
        } => Some(format!("subscription:{name}")),
        _ => None,
    }
}

pub async fn run(matcher: Matcher, cancel: CancellationToken) -> anyhow::Result<()> {
    info!(lanes = MATCHER_LANES, "matcher started");
    let matcher = Arc::new(matcher);
    let (bus, metrics) = (matcher.bus.clone(), matcher.metrics.clone());
    // Searches and the candidate pool, for the API, beside the stream.
    let service = tokio::spawn(super::service::serve(matcher.clone(), cancel.clone()));
    let lanes = crate::bus::Lanes {
        capacity: crate::bus::HELD_MESSAGES,
        count: MATCHER_LANES,
        lane_of: lane_of_vector,
    };
    crate::bus::consume(
        &bus,
        m::MATCHER_CONSUMER,
        lanes,
        &metrics,
        &cancel,
        |item: Embedded| {
            let matcher = matcher.clone();
            async move {
                match matcher.handle(item).await {
                    Ok(_) => Handled::Done,
                    Err(e) => Handled::retry(e),
                }
            }
        },
    )
    .await?;
    service.await??;
    info!("matcher stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_points_messages_share_a_lane_key_and_other_points_do_not() {
        let posting = Posting {
            id: "greenhouse:acme:1".into(),
            ..Default::default()
        };
        let profile = SubscriptionProfile {
            name: "ada".into(),
            criteria: Default::default(),
        };
        let key = |e: Embedded| point_of(&serde_json::to_vec(&e).expect("json"));
        let job = key(Embedded::Job {
            posting: posting.clone(),
            vector: vec![0.5; 384],
            version: 3,
        });
        assert_eq!(job.as_deref(), Some("job:greenhouse:acme:1"));
        let closed = key(Embedded::JobClosed {
            id: posting.id.clone(),
            version: 4,
        });
        assert_eq!(closed, job);
        let subscription = key(Embedded::Subscription {
            profile,
            vector: vec![0.5; 384],
            digest: "d".into(),
        });
        assert_eq!(subscription.as_deref(), Some("subscription:ada"));
        let deleted = key(Embedded::SubscriptionDeleted { name: "ada".into() });
        assert_eq!(deleted, subscription);
        // A subscription named like a posting id is another point.
        let named = key(Embedded::SubscriptionDeleted {
            name: posting.id.clone(),
        });
        assert_ne!(named, job);
        assert_eq!(point_of(b"not json"), None);
        assert_eq!(point_of(br#"{"kind":"job"}"#), None);
    }
}
