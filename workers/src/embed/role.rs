//! The `embedder` role.
//!
//! Contract: reads the JOBS stream in batches and publishes each posting with its vector
//! to `jobmatch.vectors.job`; watches `subscription.*` config entries and publishes each
//! resume's vector (or its deletion) to `jobmatch.vectors.subscription`. Messages are
//! acknowledged only after their vectors are published. Texts go through the shared
//! batching queue (the HTTP API's too), waiting for room when it is full.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::PublishMessage as Publish;
use futures::StreamExt;
use jobmatch_core::Posting;
use jobmatch_core::ids::digest_hex;
use jobmatch_core::messages::{self as m, Embedded, SubscriptionConfig, SubscriptionProfile};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Batcher, Wait};
use crate::bus::{Bus, ConfigEvent};

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

pub async fn run(bus: Bus, batcher: Batcher, cancel: CancellationToken) -> anyhow::Result<()> {
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
                embed_postings(&bus, &batcher, messages).await?;
            }
        }
        anyhow::Ok(())
    };
    tokio::try_join!(resumes, postings)?;
    info!("embedder stopped");
    Ok(())
}

async fn embed_postings(
    bus: &Bus,
    batcher: &Batcher,
    messages: Vec<async_nats::jetstream::Message>,
) -> anyhow::Result<()> {
    let mut postings = Vec::new();
    let mut accepted = Vec::new();
    for message in messages {
        match serde_json::from_slice::<Posting>(&message.payload) {
            // Nothing to embed: the matcher forgets it.
            Ok(posting) if posting.closed => {
                let id = format!("job-closed|{}|{}", posting.id, posting.content_hash());
                publish(
                    bus,
                    m::VECTORS_JOB_SUBJECT,
                    Some(id),
                    &Embedded::JobClosed { id: posting.id },
                )
                .await?;
                message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
            }
            Ok(posting) => {
                postings.push(posting);
                accepted.push(message);
            }
            Err(e) => {
                warn!(subject = %message.subject, error = %e, "undecodable posting dropped");
                message
                    .ack_with(AckKind::Term)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
        }
    }
    if postings.is_empty() {
        return Ok(());
    }
    let texts = postings.iter().map(Posting::embedding_text).collect();
    let vectors = match embed_texts(batcher, texts).await {
        Ok(vectors) => vectors,
        Err(e) => {
            warn!(error = %e, count = accepted.len(), "embedding failed; postings will be redelivered");
            for message in accepted {
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(10))))
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
            return Ok(());
        }
    };
    for ((posting, vector), message) in postings.into_iter().zip(vectors).zip(accepted) {
        let id = format!("job|{}|{}", posting.id, posting.content_hash());
        publish(
            bus,
            m::VECTORS_JOB_SUBJECT,
            Some(id),
            &Embedded::Job { posting, vector },
        )
        .await?;
        message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}

async fn subscription_changed(
    bus: &Bus,
    batcher: &Batcher,
    event: ConfigEvent<SubscriptionConfig>,
) -> anyhow::Result<()> {
    match event {
        ConfigEvent::Put(subscription) => {
            let criteria = serde_json::to_vec(&subscription.criteria)?;
            let id = format!(
                "subscription|{}|{}",
                subscription.name,
                digest_hex(&[subscription.resume.as_bytes(), &criteria])
            );
            let vector = embed_texts(batcher, vec![subscription.resume.clone()])
                .await?
                .pop()
                .ok_or_else(|| anyhow::anyhow!("model returned no vector"))?;
            let profile = SubscriptionProfile {
                name: subscription.name.clone(),
                criteria: subscription.criteria,
            };
            publish(
                bus,
                m::VECTORS_SUBSCRIPTION_SUBJECT,
                Some(id),
                &Embedded::Subscription { profile, vector },
            )
            .await?;
            info!(subscription = %subscription.name, "resume embedded");
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
