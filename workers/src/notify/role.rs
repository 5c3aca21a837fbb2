//! The `notifier` role: reads MATCHES and sends each notice once.
//!
//! Messages are spread over `lanes` concurrent senders by subscription, so one person's
//! notices go out in the order they were matched while others' go out beside them. Each
//! message is one send attempt: a claim on its notice key, the send, `sent`. What fails
//! is handed back for a later redelivery (the consumer's growing delay, or the far end's
//! `Retry-After`, capped) and dead-lettered once the attempts are spent.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use jobmatch_core::Channel;
use jobmatch_core::messages::{
    self as m, ConsumerSpec, MatchFound, NoticeState, SubscriptionConfig,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Delivery;
use crate::bus::{Bus, Handled};
use crate::metrics::Metrics;

/// How much longer than one send's timeout a claim is held before another notifier may
/// take it over. The claim still lapses before the consumer's ack wait (the redelivery
/// after a crash finds it stale): see `delivery::MAX_SEND_TIMEOUT`.
pub const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// What happened to one match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// The notice was sent before (or another notifier holds its live claim).
    AlreadySent,
    SubscriptionGone,
    /// Not sent this time: the claim is released.
    Failed {
        channel: &'static str,
        reason: String,
        retry: bool,
        after: Option<Duration>,
    },
}

/// How one notifier process runs.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// Concurrent senders.
    pub lanes: usize,
    /// The consumer's redelivery policy, as this process applies it.
    pub retry: ConsumerSpec,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            lanes: 16,
            retry: m::NOTIFIER_CONSUMER,
        }
    }
}

pub struct Notifier {
    bus: Bus,
    delivery: Delivery,
    metrics: Arc<Metrics>,
    /// Names this process in its claims.
    owner: String,
}

fn channel_name(c: &Channel) -> &'static str {
    match c {
        Channel::Email { .. } => "email",
        Channel::Slack { .. } => "slack",
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Who may send, given what the notice key holds.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimView {
    Sent,
    /// Another notifier is sending it now; its own delivery of the match finishes it.
    HeldByOther,
    /// Left by a notifier that died, unreadable, or our own from an attempt whose outcome
    /// was not recorded: take it over and send (at worst a repeat, never a loss).
    Stale,
}

pub fn view(state: Option<&NoticeState>, owner: &str, now_ms: i64) -> ClaimView {
    match state {
        Some(NoticeState::Sent { .. }) => ClaimView::Sent,
        Some(NoticeState::Sending { owner: o, until_ms }) if *until_ms > now_ms && o != owner => {
            ClaimView::HeldByOther
        }
        _ => ClaimView::Stale,
    }
}

impl Notifier {
    pub fn new(bus: Bus, delivery: Delivery, metrics: Arc<Metrics>) -> Self {
        Self {
            bus,
            delivery,
            metrics,
            owner: format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()),
        }
    }

    fn claim(&self) -> bytes::Bytes {
        NoticeState::Sending {
            owner: self.owner.clone(),
            until_ms: now_ms() + (self.delivery.timeout() + CLAIM_MARGIN).as_millis() as i64,
        }
        .encode()
        .into()
    }

    /// Claims the notice key; the revision of our claim, or why we may not send.
    async fn take_claim(&self, key: &str) -> Result<Result<u64, Outcome>, async_nats::Error> {
        let notices = &self.bus.notices;
        match notices.create(key, self.claim()).await {
            Ok(revision) => return Ok(Ok(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        let Some(entry) = notices.entry(key).await? else {
            // Gone between the create and the read: the next delivery tries again.
            return Ok(Err(Outcome::Failed {
                channel: "unknown",
                reason: "notice key changed while claiming".into(),
                retry: true,
                after: None,
            }));
        };
        let state = NoticeState::decode(&entry.value);
        match view(state.as_ref(), &self.owner, now_ms()) {
            ClaimView::Sent | ClaimView::HeldByOther => {
                self.metrics.notices_duplicate.inc();
                Ok(Err(Outcome::AlreadySent))
            }
            ClaimView::Stale => match notices.update(key, self.claim(), entry.revision).await {
                Ok(revision) => {
                    self.metrics.notice_takeovers.inc();
                    warn!(key, "took over a stale notice claim; the notice may repeat");
                    Ok(Ok(revision))
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    self.metrics.notices_duplicate.inc();
                    Ok(Err(Outcome::AlreadySent))
                }
                Err(e) => Err(e.into()),
            },
        }
    }

    async fn mark_sent(&self, key: &str, found: &MatchFound) -> Result<(), async_nats::Error> {
        let sent = NoticeState::Sent {
            at: jobmatch_core::rfc3339_now(),
            summary: Some(m::NoticeSummary::of(found)),
        };
        self.bus.notices.put(key, sent.encode().into()).await?;
        Ok(())
    }

    /// One attempt at one notice.
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
        let subscription: SubscriptionConfig = match serde_json::from_slice(&raw) {
            Ok(s) => s,
            Err(e) => {
                return Ok(Outcome::Failed {
                    channel: "unknown",
                    reason: format!("subscription entry unreadable: {e}"),
                    retry: false,
                    after: None,
                });
            }
        };
        let key = found.notice_key();
        let channel = channel_name(&subscription.channel);
        let revision = match self.take_claim(&key).await? {
            Ok(revision) => revision,
            Err(Outcome::Failed {
                reason,
                retry,
                after,
                ..
            }) => {
                return Ok(Outcome::Failed {
                    channel,
                    reason,
                    retry,
                    after,
                });
            }
            Err(outcome) => return Ok(outcome),
        };
        match self.delivery.send(&subscription.channel, found).await {
            Ok(()) => {
                // The one round trip between the server's acceptance and `sent`.
                self.mark_sent(&key, found).await?;
                self.metrics.notices_sent(channel).inc();
                self.bus.reports.notice_sent(&found.subscription);
                info!(subscription = %found.subscription, posting = %found.posting.id, channel, "notice sent");
                Ok(Outcome::Sent)
            }
            Err(e) => {
                // Release the claim (only if it is still ours) so the next delivery, or a
                // redrive of the dead letter, sends it.
                if let Err(release) = self
                    .bus
                    .notices
                    .delete_expect_revision(&key, Some(revision))
                    .await
                {
                    debug!(key, error = %release, "claim not released (taken over meanwhile)");
                }
                Ok(Outcome::Failed {
                    channel,
                    reason: e.to_string(),
                    retry: e.retryable(),
                    after: e.retry_after(),
                })
            }
        }
    }

    /// Handles one delivery and says how to settle it; on the last attempt a failure is
    /// counted on the subscription's status.
    async fn handle_delivery(
        &self,
        found: &MatchFound,
        delivered: u64,
        settings: &NotifierSettings,
    ) -> Handled {
        let outcome = match self.handle(found).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed {
                channel: "unknown",
                reason: format!("NATS: {e}"),
                retry: true,
                after: None,
            },
        };
        match outcome {
            Outcome::Sent | Outcome::AlreadySent | Outcome::SubscriptionGone => Handled::Done,
            Outcome::Failed {
                channel,
                reason,
                retry,
                after,
            } => {
                let last = !retry || delivered >= u64::from(settings.retry.attempts);
                if last {
                    warn!(subscription = %found.subscription, posting = %found.posting.id, error = %reason, "notice failed; dead-lettered");
                    self.metrics.notice_failures(channel).inc();
                    self.bus.reports.notice_failed(&found.subscription, &reason);
                }
                if retry {
                    Handled::Retry { reason, after }
                } else {
                    Handled::Failed { reason }
                }
            }
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("pid{}", std::process::id()))
}

/// The lane of a MATCHES message: its subscription's.
fn lane_of_message(message: &jetstream::Message, lanes: usize) -> usize {
    let subscription = message
        .subject
        .strip_prefix(m::MATCHES_SUBJECT_PREFIX)
        .unwrap_or(&message.subject);
    crate::bus::lane_of(subscription, lanes)
}

/// One notice: decoded, attempted (kept in progress meanwhile) and settled.
async fn notice(notifier: &Notifier, settings: &NotifierSettings, message: jetstream::Message) {
    let handled = match serde_json::from_slice::<MatchFound>(&message.payload) {
        Ok(found) => {
            let delivered = crate::bus::deliveries(&message);
            let work = notifier.handle_delivery(&found, delivered, settings);
            crate::bus::with_progress(std::slice::from_ref(&message), &m::NOTIFIER_CONSUMER, work)
                .await
        }
        Err(e) => Handled::Failed {
            reason: format!("undecodable: {e}"),
        },
    };
    // Notified (or given up), the match leaves MATCHES; the notice key keeps its
    // summary. Unsettled (NATS away), the match comes back after the ack wait.
    if let Err(e) = crate::bus::settle_removing(
        &notifier.bus,
        &settings.retry,
        &notifier.metrics,
        &message,
        handled,
        m::MATCHES_STREAM,
    )
    .await
    {
        warn!(error = %e, "settling a match failed; it will be redelivered");
    }
}

/// Sends notices until `cancel` fires: a lane per concurrent sender, a subscription's
/// notices always in the same lane and so in order. Twice as many messages as lanes are
/// held, each kept in progress until settled (see `bus::consume_in_lanes`). After
/// `cancel`, each lane finishes the notice in hand and the rest are handed back at once.
pub async fn run(
    notifier: Notifier,
    settings: NotifierSettings,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let count = settings.lanes.max(1);
    let lanes = crate::bus::Lanes {
        capacity: count * 2,
        count,
        lane_of: lane_of_message,
    };
    info!(lanes = count, "notifier started");
    let (notifier, settings) = (Arc::new(notifier), Arc::new(settings));
    let bus = notifier.bus.clone();
    crate::bus::consume_in_lanes(&bus, m::NOTIFIER_CONSUMER, lanes, &cancel, |message| {
        let (notifier, settings) = (notifier.clone(), settings.clone());
        async move { notice(&notifier, &settings, message).await }
    })
    .await?;
    notifier.delivery.close().await;
    info!("notifier stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_expire_and_only_their_owner_reads_them_as_sent() {
        let claim = |owner: &str, until_ms| NoticeState::Sending {
            owner: owner.into(),
            until_ms,
        };
        let sent = NoticeState::Sent {
            at: String::new(),
            summary: None,
        };
        assert_eq!(view(Some(&sent), "me", 100), ClaimView::Sent);
        assert_eq!(
            view(Some(&claim("other", 200)), "me", 100),
            ClaimView::HeldByOther
        );
        // Our own live claim: an attempt whose outcome went unrecorded; send again.
        assert_eq!(view(Some(&claim("me", 200)), "me", 100), ClaimView::Stale);
        // A notifier that died mid-send: its claim lapses and the notice is sent again.
        assert_eq!(view(Some(&claim("other", 50)), "me", 100), ClaimView::Stale);
        assert_eq!(view(None, "me", 100), ClaimView::Stale);
    }
}
