//! The `notifier` role.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use jobmatch_core::Channel;
use jobmatch_core::messages::{self as m, MatchFound, SubscriptionConfig};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Delivery;
use crate::bus::Bus;
use crate::metrics::Metrics;

/// What happened to one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    AlreadySent,
    SubscriptionGone,
    DeadLettered,
}

pub struct Notifier {
    bus: Bus,
    delivery: Delivery,
    metrics: Arc<Metrics>,
}

fn channel_name(c: &Channel) -> &'static str {
    match c {
        Channel::Email { .. } => "email",
        Channel::Slack { .. } => "slack",
    }
}

impl Notifier {
    pub fn new(bus: Bus, delivery: Delivery, metrics: Arc<Metrics>) -> Self {
        Self {
            bus,
            delivery,
            metrics,
        }
    }

    pub async fn handle(&self, found: &MatchFound) -> Result<Outcome, async_nats::Error> {
        let Some(raw) = self
            .bus
            .config
            .get(m::subscription_key(&found.subscription))
            .await?
        else {
            info!(subscription = %found.subscription, "subscription no longer exists; match dropped");
            return Ok(Outcome::SubscriptionGone);
        };
        let subscription: SubscriptionConfig = serde_json::from_slice(&raw)?;
        let key = found.notice_key();
        match self.bus.notices.create(&key, "sending".into()).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                self.metrics.notices_duplicate.inc();
                return Ok(Outcome::AlreadySent);
            }
            Err(e) => return Err(e.into()),
        }
        let channel = channel_name(&subscription.channel);
        match self.delivery.send(&subscription.channel, found).await {
            Ok(()) => {
                self.bus.notices.put(&key, "sent".into()).await?;
                self.metrics.notices_sent(channel).inc();
                self.bus.reports.notice_sent(&found.subscription);
                info!(subscription = %found.subscription, posting = %found.posting.id, channel, "notice sent");
                Ok(Outcome::Sent)
            }
            Err(e) => {
                warn!(subscription = %found.subscription, posting = %found.posting.id, error = %e, "notice failed after retries; dead-lettered");
                self.metrics.notice_failures(e.channel()).inc();
                self.bus
                    .reports
                    .notice_failed(&found.subscription, &e.to_string());
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Jobmatch-Error", e.to_string().as_str());
                self.bus
                    .js
                    .publish_with_headers(
                        m::dead_letter_subject(&found.subscription),
                        headers,
                        serde_json::to_vec(found)?.into(),
                    )
                    .await?
                    .await?;
                // Release the claim: a later redrive of the dead letter may send it.
                self.bus.notices.delete(&key).await?;
                Ok(Outcome::DeadLettered)
            }
        }
    }
}

pub async fn run(notifier: Notifier, cancel: CancellationToken) -> anyhow::Result<()> {
    let consumer = notifier.bus.consumer(m::NOTIFIER_CONSUMER).await?;
    info!("notifier started");
    let notifier = &notifier;
    crate::bus::consume(
        consumer,
        &cancel,
        Duration::from_secs(5),
        |found: MatchFound| async move { notifier.handle(&found).await.map(|_| ()) },
    )
    .await?;
    info!("notifier stopped");
    Ok(())
}
