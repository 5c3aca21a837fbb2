//! The `embedder` role.
//!
//! Contract: reads the JOBS stream in batches and publishes each posting with its vector
//! to `jobmatch.vectors.job`; watches `subscription.*` config entries and publishes each
//! resume's vector (or its deletion) to `jobmatch.vectors.subscription`. Messages are
//! acknowledged only after their vectors are published. Texts go through the shared
//! batching queue (the HTTP API's too), waiting for room when it is full.

use std::time::Duration;

use std::sync::Arc;

use async_nats::jetstream::Message;
use async_nats::jetstream::message::PublishMessage as Publish;
use futures::StreamExt;
use jobmatch_core::Posting;
use jobmatch_core::ids::digest_hex;
use jobmatch_core::messages::{self as m, Embedded, SubscriptionConfig, SubscriptionProfile};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::batcher::MAX_PIECES;
use super::{Batcher, Overlong, Wait};
use crate::bus::{Bus, ConfigEvent, Handled};
use crate::metrics::Metrics;

/// Most postings embedded in one pass.
const BATCH: usize = 64;

/// Embeds through the queue, waiting for room rather than failing when it is full, in
/// pieces the queue can hold.
pub async fn embed_texts(batcher: &Batcher, texts: Vec<String>) -> anyhow::Result<Vec<Vec<f32>>> {
    let count = texts.len();
    let piece = batcher.config().max_queued_texts.max(1);
    let mut vectors = Vec::with_capacity(count);
    let mut truncated = 0;
    let mut texts = texts.into_iter().peekable();
    while texts.peek().is_some() {
        let chunk: Vec<String> = texts.by_ref().take(piece).collect();
        let embedded = batcher.embed(chunk, Wait::Yes).await?;
        truncated += embedded.truncated;
        vectors.extend(embedded.vectors);
    }
    if truncated > 0 {
        info!(
            truncated,
            of = count,
            "texts cut at the model's token limit"
        );
    }
    Ok(vectors)
}

async fn publish(
    bus: &Bus,
    subject: &'static str,
    id: Option<String>,
    item: &Embedded,
) -> anyhow::Result<()> {
    let mut publish = Publish::build().payload(serde_json::to_vec(item)?.into());
    if let Some(id) = id {
        publish = publish.message_id(id);
    }
    bus.js.send_publish(subject, publish).await?.await?;
    Ok(())
}

pub async fn run(
    bus: Bus,
    batcher: Batcher,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let consumer = bus.consumer(m::EMBEDDER_CONSUMER).await?;
    let subscriptions = bus
        .watch_config::<SubscriptionConfig>("subscription")
        .await?;
    info!(
        dimension = batcher.model().dimension(),
        max_tokens = batcher.model().max_seq_len(),
        "embedder started"
    );
    // Resumes and postings are two loops: neither waits behind the other, and dropping
    // one's future never abandons a half-received batch of the other.
    let resumes = {
        let (bus, batcher, cancel) = (bus.clone(), batcher.clone(), cancel.clone());
        async move {
            let mut subscriptions = std::pin::pin!(subscriptions);
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    event = subscriptions.next() => event.ok_or_else(|| anyhow::anyhow!("config watch ended"))?,
                };
                if let Err(e) = subscription_changed(&bus, &batcher, event).await {
                    warn!(error = %e, "embedding a resume failed; it is retried when the subscription changes or the embedder restarts");
                }
            }
        }
    };
    let postings = async {
        while !cancel.is_cancelled() {
            let batch = consumer
                .fetch()
                .max_messages(BATCH)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    warn!(error = %e, "fetching postings failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut messages = Vec::new();
            while let Some(message) = batch.next().await {
                match message {
                    Ok(message) => messages.push(message),
                    Err(e) => warn!(error = %e, "consumer error"),
                }
            }
            if !messages.is_empty() {
                embed_postings(&bus, &batcher, &metrics, messages).await?;
            }
        }
        anyhow::Ok(())
    };
    tokio::try_join!(resumes, postings)?;
    info!("embedder stopped");
    Ok(())
}

/// The posting message's sequence in JOBS, its version.
fn version(message: &Message) -> u64 {
    message.info().map(|i| i.stream_sequence).unwrap_or(0)
}

async fn embed_postings(
    bus: &Bus,
    batcher: &Batcher,
    metrics: &Metrics,
    messages: Vec<Message>,
) -> anyhow::Result<()> {
    let spec = m::EMBEDDER_CONSUMER;
    let settle = |message: &Message, handled: Handled| {
        let message = message.clone();
        async move {
            // Unsettled (NATS away), the posting comes back after the ack wait.
            if let Err(e) = crate::bus::settle(bus, &spec, metrics, &message, handled).await {
                warn!(error = %e, "settling a posting failed; it will be redelivered");
            }
            anyhow::Ok(())
        }
    };
    let mut postings = Vec::new();
    let mut accepted = Vec::new();
    for message in messages {
        match serde_json::from_slice::<Posting>(&message.payload) {
            // Nothing to embed: the matcher forgets it.
            Ok(posting) if posting.closed => {
                let id = m::message_id::job_closed(&posting.id, &posting.content_hash());
                let closed = Embedded::JobClosed {
                    id: posting.id,
                    version: version(&message),
                };
                let handled = match publish(bus, m::VECTORS_JOB_SUBJECT, Some(id), &closed).await {
                    Ok(()) => Handled::Done,
                    Err(e) => Handled::retry(e),
                };
                settle(&message, handled).await?;
            }
            Ok(posting) => {
                postings.push(posting);
                accepted.push(message);
            }
            Err(e) => {
                let reason = format!("undecodable posting: {e}");
                settle(&message, Handled::Failed { reason }).await?;
            }
        }
    }
    if postings.is_empty() {
        return Ok(());
    }
    let texts = postings.iter().map(Posting::embedding_text).collect();
    // A busy embedder (the API shares its queue) may take a while: the batch stays in
    // progress on the server meanwhile, so none of it is redelivered to another embedder.
    let embedded = crate::bus::with_progress(&accepted, &spec, embed_texts(batcher, texts)).await;
    let vectors = match embedded {
        Ok(vectors) => vectors,
        Err(e) => {
            warn!(error = %e, count = accepted.len(), "embedding failed; postings will be redelivered");
            for message in &accepted {
                settle(message, Handled::retry(format!("embedding: {e}"))).await?;
            }
            return Ok(());
        }
    };
    for ((posting, vector), message) in postings.into_iter().zip(vectors).zip(accepted) {
        let id = m::message_id::job_vector(&posting.id, &posting.content_hash());
        let job = Embedded::Job {
            posting,
            vector,
            version: version(&message),
        };
        let handled = match publish(bus, m::VECTORS_JOB_SUBJECT, Some(id), &job).await {
            Ok(()) => Handled::Done,
            Err(e) => Handled::retry(e),
        };
        settle(&message, handled).await?;
    }
    Ok(())
}

/// A resume's vector: from the cache when this model embedded the same text before, else
/// embedded now and cached.
/// How resumes are embedded: whole, in pieces combined (`Overlong::Chunk`). Part of the
/// cache key and of a subscription's digest, so a change of it embeds every resume
/// again and backfills every subscription with its new vector.
const RESUME_EMBEDDING: &str = "chunked-mean-1";

async fn resume_vector(bus: &Bus, batcher: &Batcher, resume: &str) -> anyhow::Result<Vec<f32>> {
    let key = digest_hex(&[
        batcher.model().identity().as_bytes(),
        RESUME_EMBEDDING.as_bytes(),
        resume.as_bytes(),
    ]);
    match bus.resume_vectors.get(&key).await {
        Ok(Some(bytes)) => match decode_vector(&bytes, batcher.model().dimension()) {
            Some(vector) => return Ok(vector),
            None => warn!(key, "cached resume vector unreadable; embedding again"),
        },
        Ok(None) => {}
        Err(e) => warn!(error = %e, "resume vector cache unavailable; embedding"),
    }
    let embedded = batcher
        .embed_with(vec![resume.to_owned()], Wait::Yes, Overlong::Chunk)
        .await?;
    if embedded.truncated > 0 {
        info!(
            pieces = MAX_PIECES,
            "resume longer than the pieces embedded: the rest is cut"
        );
    }
    let vector = embedded
        .vectors
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("model returned no vector"))?;
    if let Err(e) = bus
        .resume_vectors
        .put(&key, encode_vector(&vector).into())
        .await
    {
        warn!(error = %e, "caching a resume vector failed");
    }
    Ok(vector)
}

/// Little-endian f32s.
fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8], dimension: usize) -> Option<Vec<f32>> {
    if bytes.len() != dimension * 4 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

async fn subscription_changed(
    bus: &Bus,
    batcher: &Batcher,
    event: ConfigEvent<SubscriptionConfig>,
) -> anyhow::Result<()> {
    match event {
        ConfigEvent::Put(subscription) => {
            let criteria = serde_json::to_vec(&subscription.criteria)?;
            let digest = digest_hex(&[
                batcher.model().identity().as_bytes(),
                RESUME_EMBEDDING.as_bytes(),
                subscription.resume.as_bytes(),
                &criteria,
            ]);
            let id = m::message_id::subscription_vector(&subscription.name, &digest);
            let vector = resume_vector(bus, batcher, &subscription.resume).await?;
            let profile = SubscriptionProfile {
                name: subscription.name.clone(),
                criteria: subscription.criteria,
            };
            publish(
                bus,
                m::VECTORS_SUBSCRIPTION_SUBJECT,
                Some(id),
                &Embedded::Subscription {
                    profile,
                    vector,
                    digest,
                },
            )
            .await?;
            info!(subscription = %subscription.name, "resume vector published");
        }
        ConfigEvent::Deleted(name) => {
            publish(
                bus,
                m::VECTORS_SUBSCRIPTION_SUBJECT,
                None,
                &Embedded::SubscriptionDeleted { name: name.clone() },
            )
            .await?;
            info!(subscription = %name, "subscription deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_vectors_round_trip_and_check_their_size() {
        let v = vec![0.25f32, -1.5, 3.0e-7];
        assert_eq!(decode_vector(&encode_vector(&v), 3), Some(v));
        assert_eq!(decode_vector(&[0u8; 8], 3), None);
    }
}
