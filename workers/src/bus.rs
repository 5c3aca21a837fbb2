//! The NATS JetStream plumbing every role shares: one connection, the streams and
//! key-value buckets (created idempotently), and the durable consumers.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv};
use jobmatch_bus::{BusLimits, Mode};
use jobmatch_core::messages as m;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("NATS credentials {path}: {source}")]
    Credentials {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Layout(#[from] jobmatch_bus::SetupError),
    #[error("stream limits: {0}")]
    Limits(#[from] jobmatch_bus::LimitsError),
    #[error("config bucket: {0}")]
    ConfigBucket(String),
}

/// A connection to NATS with JetStream and the buckets the roles use.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub config: kv::Store,
    pub postings: kv::Store,
    pub identities: kv::Store,
    pub schedule: kv::Store,
    pub notices: kv::Store,
    pub resume_vectors: kv::Store,
    pub matcher_state: kv::Store,
    /// Progress per source and subscription, for the operator (see `reports`).
    pub reports_bucket: kv::Store,
    pub reports: crate::reports::Reports,
    /// The limits the layout was set up with (`JOBMATCH_BUS_*`).
    pub limits: BusLimits,
    mode: Mode,
}

/// Where NATS is and how to authenticate to it.
#[derive(Debug, Clone, Default)]
pub struct NatsConnection {
    /// One URL or several, comma-separated (`nats://`, `tls://`; user and password may
    /// be in the URL).
    pub url: String,
    /// A credentials file (`.creds`: a user JWT and its NKey seed).
    pub credentials: Option<std::path::PathBuf>,
    /// A CA certificate (PEM) to trust for NATS's TLS; setting it requires TLS.
    pub ca: Option<std::path::PathBuf>,
}

impl NatsConnection {
    async fn options(&self) -> Result<async_nats::ConnectOptions, BusError> {
        let mut options = match &self.credentials {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| BusError::Credentials {
                    path: path.clone(),
                    source,
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        Ok(options)
    }
}

impl Bus {
    /// Connects to `url` without credentials, leaving an existing layout as it is (see
    /// `connect_to`).
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        Self::connect_to(
            &NatsConnection {
                url: url.to_owned(),
                ..Default::default()
            },
            Mode::KeepExisting,
        )
        .await
    }

    /// Connects and makes sure every stream, bucket and consumer exists; with
    /// [`Mode::Apply`] (the long-running roles) also at this process's limits.
    pub async fn connect_to(nats: &NatsConnection, mode: Mode) -> Result<Self, BusError> {
        crate::tls::install_crypto_provider();
        let url = nats.url.as_str();
        let client = nats
            .options()
            .await?
            .name("jobmatch")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|source| BusError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let js = jetstream::new(client.clone());
        let limits = BusLimits::from_env()?;
        let buckets = jobmatch_bus::ensure(&js, &limits, mode).await?;
        Ok(Self {
            config: buckets.config,
            postings: buckets.postings,
            identities: buckets.identities,
            schedule: buckets.schedule,
            notices: buckets.notices,
            resume_vectors: buckets.resume_vectors,
            matcher_state: buckets.matcher_state,
            reports_bucket: buckets.reports,
            reports: crate::reports::Reports::default(),
            limits,
            mode,
            client,
            js,
        })
    }

    /// The durable pull consumer a role reads its input with. Every replica of a role
    /// shares it, so each message goes to one of them.
    pub async fn consumer(
        &self,
        spec: m::ConsumerSpec,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, BusError> {
        let consumer =
            jobmatch_bus::setup::durable_consumer(&self.js, &spec, &self.limits, self.mode).await?;
        Ok(consumer)
    }
}

/// A change to a configuration entry.
#[derive(Debug)]
pub enum ConfigEvent<T> {
    Put(T),
    Deleted(String),
}

impl Bus {
    /// Current and future entries under `prefix.` (`source`, `subscription`) of the config
    /// bucket. An entry that does not decode is logged and skipped.
    pub async fn watch_config<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &'static str,
    ) -> Result<impl futures::Stream<Item = ConfigEvent<T>> + use<T>, BusError> {
        use futures::StreamExt;
        let watch = self
            .config
            .watch_with_history(format!("{prefix}.*"))
            .await
            .map_err(|e| BusError::ConfigBucket(e.to_string()))?;
        Ok(watch.filter_map(move |entry| async move {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(error = %e, "config watch error");
                    return None;
                }
            };
            let name = entry.key.strip_prefix(prefix)?.trim_start_matches('.').to_owned();
            match entry.operation {
                kv::Operation::Put => match serde_json::from_slice(&entry.value) {
                    Ok(value) => Some(ConfigEvent::Put(value)),
                    Err(e) => {
                        tracing::warn!(key = %entry.key, error = %e, "undecodable config entry skipped");
                        None
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => Some(ConfigEvent::Deleted(name)),
            }
        }))
    }

    /// Writes configuration entries, skipping those already current (so watchers see no
    /// change when nothing changed).
    pub async fn apply_config(&self, loaded: &crate::config::Loaded) -> Result<usize, BusError> {
        let mut written = 0;
        let entries = loaded
            .sources
            .iter()
            .map(|s| (m::source_key(&s.name), serde_json::to_vec(s)))
            .chain(
                loaded
                    .subscriptions
                    .iter()
                    .map(|s| (m::subscription_key(&s.name), serde_json::to_vec(s))),
            );
        for (key, value) in entries {
            let value = value.map_err(|e| BusError::ConfigBucket(e.to_string()))?;
            let current = self
                .config
                .get(&key)
                .await
                .map_err(|e| BusError::ConfigBucket(e.to_string()))?;
            if current.as_deref() != Some(value.as_slice()) {
                self.config
                    .put(&key, value.into())
                    .await
                    .map_err(|e| BusError::ConfigBucket(e.to_string()))?;
                written += 1;
            }
        }
        Ok(written)
    }
}

/// What handling one message came to.
#[derive(Debug)]
pub enum Handled {
    /// Done (or nothing to do): acknowledge.
    Done,
    /// Failed in a way that may pass later: redeliver after the consumer's growing delay
    /// (or `after`, when the far end said how long, capped), dead-letter once the
    /// consumer's attempts are spent.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Can never succeed as it is: dead-letter now.
    Failed { reason: String },
}

impl Handled {
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        Handled::Retry {
            reason: reason.to_string(),
            after: None,
        }
    }
}

/// How often a held message is reported in progress: a third of the consumer's ack wait.
fn progress_every(spec: &m::ConsumerSpec) -> Duration {
    Duration::from_secs((spec.ack_wait_secs / 3).max(1))
}

/// Tells the server that `message` is being worked on, restarting its ack wait.
async fn report_progress(message: &jetstream::Message) {
    if let Err(e) = message.ack_with(jetstream::AckKind::Progress).await {
        tracing::debug!(error = %e, "progress ack failed");
    }
}

/// Runs `work` on `messages`, telling the server they are in progress every third of the
/// consumer's ack wait, so a live handler's messages are never redelivered to another
/// replica meanwhile, however long the work takes; only a dead one's are.
pub async fn with_progress<T>(
    messages: &[jetstream::Message],
    spec: &m::ConsumerSpec,
    work: impl std::future::Future<Output = T>,
) -> T {
    let every = progress_every(spec);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tick.tick() => {
                for message in messages {
                    report_progress(message).await;
                }
            }
        }
    }
}

/// How many times `message` has been delivered (1 on the first delivery).
pub fn deliveries(message: &jetstream::Message) -> u64 {
    message
        .info()
        .map(|i| i.delivered.max(1) as u64)
        .unwrap_or(1)
}

/// What became of a settled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Done,
    Redelivering,
    DeadLettered,
}

/// Acknowledges, redelivers later or dead-letters `message` as `handled` says. A dead
/// letter is written before the message is terminated, so a crash in between leaves at
/// worst a second dead letter, never none.
pub async fn settle(
    bus: &Bus,
    spec: &m::ConsumerSpec,
    metrics: &crate::metrics::Metrics,
    message: &jetstream::Message,
    handled: Handled,
) -> Result<Settled, async_nats::Error> {
    settle_with(bus, spec, metrics, message, handled, None).await
}

/// [`settle`], and a message settled for good (done or dead-lettered) is also removed
/// from `stream`. The removal comes before the acknowledgement, so a crash or a lost
/// connection in between leaves the message to be redelivered and removed then, never
/// acknowledged and left behind; the server takes a removed message as acknowledged.
pub async fn settle_removing(
    bus: &Bus,
    spec: &m::ConsumerSpec,
    metrics: &crate::metrics::Metrics,
    message: &jetstream::Message,
    handled: Handled,
    stream: &str,
) -> Result<Settled, async_nats::Error> {
    settle_with(bus, spec, metrics, message, handled, Some(stream)).await
}

/// Deletes `message` from `stream` without overwriting its bytes on disk (the client's
/// `delete_message` asks for a secure erase, which made each delete rewrite its block and
/// more than halved the notifier's rate); one already gone counts as deleted.
async fn remove(
    bus: &Bus,
    stream: &str,
    message: &jetstream::Message,
) -> Result<(), async_nats::Error> {
    use jetstream::ErrorCode;
    use jetstream::response::Response;
    #[derive(serde::Deserialize)]
    struct Deleted {}
    let request = serde_json::json!({
        "seq": message.info()?.stream_sequence,
        "no_erase": true,
    });
    let response: Response<Deleted> = bus
        .js
        .request(format!("STREAM.MSG.DELETE.{stream}"), &request)
        .await?;
    match response {
        Response::Ok(Deleted {}) => Ok(()),
        // Not found: deleted by an earlier delivery's settle. Any other failure (10057
        // also carries storage errors) leaves the message unacked, to come back.
        Response::Err { error }
            if error.error_code() == ErrorCode::NO_MESSAGE_FOUND
                || (error.error_code() == ErrorCode::STREAM_MESSAGE_DELETE_FAILED
                    && error.to_string().contains("no message found")) =>
        {
            Ok(())
        }
        Response::Err { error } => Err(error.into()),
    }
}

async fn settle_with(
    bus: &Bus,
    spec: &m::ConsumerSpec,
    metrics: &crate::metrics::Metrics,
    message: &jetstream::Message,
    handled: Handled,
    removing_from: Option<&str>,
) -> Result<Settled, async_nats::Error> {
    use jetstream::AckKind;
    let delivered = deliveries(message);
    let reason = match handled {
        Handled::Done => {
            if let Some(stream) = removing_from {
                remove(bus, stream, message).await?;
            }
            return message.ack().await.map(|()| Settled::Done);
        }
        Handled::Retry { reason, after } if delivered < u64::from(spec.attempts) => {
            let backoff = jobmatch_bus::layout::retry_delay(spec, delivered);
            let cap = Duration::from_secs(spec.retry_max_secs);
            let wait = after.map_or(backoff, |after| after.min(cap).max(backoff));
            metrics.retries(spec.name).inc();
            tracing::warn!(stage = spec.name, subject = %message.subject, delivered, wait_ms = wait.as_millis() as u64, error = %reason, "failed; will be redelivered");
            return message
                .ack_with(AckKind::Nak(Some(wait)))
                .await
                .map(|()| Settled::Redelivering);
        }
        Handled::Retry { reason, .. } => {
            format!("{reason} (gave up after {delivered} deliveries)")
        }
        Handled::Failed { reason } => reason,
    };
    tracing::warn!(stage = spec.name, subject = %message.subject, delivered, error = %reason, "dead-lettered");
    crate::dead_letters::publish(
        bus,
        spec.name,
        &message.subject,
        message.payload.clone(),
        &reason,
        delivered,
    )
    .await?;
    metrics.dead_letters(spec.name).inc();
    if let Some(stream) = removing_from {
        remove(bus, stream, message).await?;
    }
    message
        .ack_with(AckKind::Term)
        .await
        .map(|()| Settled::DeadLettered)
}

/// Most messages one replica of a stage holds at once, delivered and not yet settled.
/// Every one of them is kept in progress while it waits (so a backlog of any size is
/// never redelivered while its first delivery is queued here, however slow the handler),
/// and they are few, so the other replicas get their share of a backlog.
pub const HELD_MESSAGES: usize = 16;
/// How long one pull request waits for messages before the next is sent.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// The messages a durable consumer has delivered to this replica and not yet handed to
/// a handler, in lanes (a handler takes the next of a lane once it is free).
///
/// Messages are pulled only when fewer than `capacity` are held (waiting here or in a
/// handler's hands), a pull at a time, and read from the server as soon as they
/// arrive; each one waiting here is reported in progress every third of the ack wait
/// (handlers keep theirs in progress with [`with_progress`]). So nothing delivered
/// waits out its ack wait unread, and a stopped replica hands back what it holds.
pub struct Inbox {
    consumer: consumer::Consumer<consumer::pull::Config>,
    name: &'static str,
    capacity: usize,
    pull: Option<consumer::pull::Batch>,
    tick: tokio::time::Interval,
    lanes: Vec<std::collections::VecDeque<jetstream::Message>>,
    lane_of: fn(&jetstream::Message, usize) -> usize,
    /// When a failed pull is tried again.
    retry_at: Option<tokio::time::Instant>,
}

impl Inbox {
    /// An inbox of `lanes` lanes, a message's lane chosen by `lane_of(message, lanes)`.
    pub async fn open(
        bus: &Bus,
        spec: m::ConsumerSpec,
        capacity: usize,
        lanes: usize,
        lane_of: fn(&jetstream::Message, usize) -> usize,
    ) -> Result<Self, BusError> {
        let every = progress_every(&spec);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            consumer: bus.consumer(spec).await?,
            name: spec.name,
            capacity: capacity.max(1),
            pull: None,
            tick,
            lanes: (0..lanes.max(1)).map(|_| Default::default()).collect(),
            lane_of,
            retry_at: None,
        })
    }

    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The next message waiting in `lane`.
    pub fn take(&mut self, lane: usize) -> Option<jetstream::Message> {
        self.lanes.get_mut(lane)?.pop_front()
    }

    /// Whether no pull is in flight (a stopping replica waits for it to end: a message
    /// handed back while the server still holds an open pull for this replica would go
    /// to it again, to wait out the ack wait unread).
    pub fn pull_ended(&self) -> bool {
        self.pull.is_none()
    }

    /// Starts a pull for the room left beside `working` messages in handlers' hands,
    /// unless one is in flight, `cancel` fired or a failed pull is waiting its second
    /// to be tried again.
    pub async fn refill(&mut self, working: usize, cancel: &tokio_util::sync::CancellationToken) {
        let waiting: usize = self.lanes.iter().map(|l| l.len()).sum();
        let room = self.capacity.saturating_sub(waiting + working);
        if self.pull.is_some() || room == 0 || cancel.is_cancelled() || self.retry_at.is_some() {
            return;
        }
        let request = self
            .consumer
            .batch()
            .max_messages(room)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        match request {
            Ok(batch) => self.pull = Some(batch),
            Err(e) => {
                tracing::warn!(consumer = %self.name, error = %e, "pulling messages failed");
                self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
            }
        }
    }

    /// Waits for the next thing to do here: a message arriving (put in its lane), the
    /// pull ending, a failed pull's retry coming due, or the progress tick (reported for
    /// every waiting message). Cancel safe: no message is lost by dropping it.
    pub async fn step(&mut self) {
        use futures::StreamExt;
        let Self {
            pull,
            tick,
            lanes,
            name,
            lane_of,
            retry_at,
            ..
        } = self;
        tokio::select! {
            next = async { pull.as_mut().map(|p| p.next()).expect("guarded").await }, if pull.is_some() => match next {
                Some(Ok(message)) => {
                    let lane = lane_of(&message, lanes.len()).min(lanes.len() - 1);
                    lanes[lane].push_back(message);
                }
                Some(Err(e)) => tracing::warn!(consumer = %name, error = %e, "consumer error"),
                None => *pull = None,
            },
            _ = async { tokio::time::sleep_until(retry_at.expect("guarded")).await }, if retry_at.is_some() => {
                *retry_at = None;
            }
            _ = tick.tick() => {
                for message in lanes.iter().flatten() {
                    report_progress(message).await;
                }
            }
        }
    }

    /// Hands every waiting message back for another replica to take, at once.
    pub async fn hand_back(self, client: &async_nats::Client) {
        for message in self.lanes.into_iter().flatten() {
            if let Err(e) = message.ack_with(jetstream::AckKind::Nak(None)).await {
                tracing::debug!(consumer = %self.name, error = %e, "handing a message back failed; it comes back after the ack wait");
            }
        }
        if let Err(e) = client.flush().await {
            tracing::debug!(consumer = %self.name, error = %e, "flushing the handed-back messages failed");
        }
    }
}

/// Reads a durable consumer until `cancel` fires: decodes each message as JSON `T` and
/// hands it to `handle` in its lane (see [`consume_in_lanes`]), then settles it as the
/// handler says (acknowledged, redelivered later, or dead-lettered). A message that
/// does not decode is dead-lettered at once. Each message held is kept in progress
/// until settled.
pub async fn consume<T, F, Fut>(
    bus: &Bus,
    spec: m::ConsumerSpec,
    lanes: Lanes,
    metrics: &crate::metrics::Metrics,
    cancel: &tokio_util::sync::CancellationToken,
    mut handle: F,
) -> anyhow::Result<()>
where
    T: serde::de::DeserializeOwned,
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Handled>,
{
    use futures::future::Either;
    consume_in_lanes(bus, spec, lanes, cancel, |message| {
        let handling = match serde_json::from_slice::<T>(&message.payload) {
            Ok(item) => Either::Left(handle(item)),
            Err(e) => Either::Right(std::future::ready(Handled::Failed {
                reason: format!("undecodable: {e}"),
            })),
        };
        async move {
            let handled = with_progress(std::slice::from_ref(&message), &spec, handling).await;
            // Unsettled (NATS away), the message comes back after the ack wait.
            if let Err(e) = settle(bus, &spec, metrics, &message, handled).await {
                tracing::warn!(consumer = %spec.name, error = %e, "settling a message failed; it will be redelivered");
            }
        }
    })
    .await
}

/// The lane of whatever `key` names (a subscription, a point): a stable hash, so its
/// messages are always in the same lane and so handled in order.
pub fn lane_of(key: &str, lanes: usize) -> usize {
    let digest = jobmatch_core::ids::digest_hex(&[key.as_bytes()]);
    let n = u64::from_str_radix(&digest[..8], 16).unwrap_or(0);
    (n % lanes.max(1) as u64) as usize
}

/// How a consumer's messages are spread over concurrent handlers.
#[derive(Debug, Clone, Copy)]
pub struct Lanes {
    /// Most messages held at once, waiting or in a handler's hands.
    pub capacity: usize,
    /// Handlers, one message at a time each.
    pub count: usize,
    /// A message's lane, given the count: the messages of one lane are handled in the
    /// order they were delivered.
    pub lane_of: fn(&jetstream::Message, usize) -> usize,
}

impl Lanes {
    /// One handler, [`HELD_MESSAGES`] held: a stage that takes its messages one by one.
    pub const SINGLE: Lanes = Lanes {
        capacity: HELD_MESSAGES,
        count: 1,
        lane_of: first_lane,
    };
}

fn first_lane(_: &jetstream::Message, _: usize) -> usize {
    0
}

/// Reads a durable consumer until `cancel` fires, handing each message to `handle` (which
/// keeps it in progress and settles it) in its lane, a lane's messages one after another,
/// the lanes side by side. What waits for its lane is kept in progress here (see
/// [`Inbox`]). Cancellation is checked between messages, never inside one, so no
/// acknowledgement is lost; no new one is started after it, and once the pull in flight
/// is over (at most [`PULL_EXPIRES`]) the messages still held are handed back.
pub async fn consume_in_lanes<F, Fut>(
    bus: &Bus,
    spec: m::ConsumerSpec,
    lanes: Lanes,
    cancel: &tokio_util::sync::CancellationToken,
    mut handle: F,
) -> anyhow::Result<()>
where
    F: FnMut(jetstream::Message) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::StreamExt;
    let mut inbox = Inbox::open(bus, spec, lanes.capacity, lanes.count, lanes.lane_of).await?;
    let mut busy = vec![false; inbox.lanes()];
    let mut working = futures::stream::FuturesUnordered::new();
    loop {
        // After `cancel`, no new message is started: those held are handed back below.
        if !cancel.is_cancelled() {
            for (lane, busy) in busy.iter_mut().enumerate() {
                if !*busy && let Some(message) = inbox.take(lane) {
                    *busy = true;
                    let work = handle(message);
                    working.push(async move {
                        work.await;
                        lane
                    });
                }
            }
        }
        inbox.refill(working.len(), cancel).await;
        tokio::select! {
            _ = cancel.cancelled(), if working.is_empty() && inbox.pull_ended() => break,
            _ = inbox.step() => {}
            Some(lane) = working.next(), if !working.is_empty() => busy[lane] = false,
        }
    }
    inbox.hand_back(&bus.client).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_gets_the_same_lane_and_keys_spread() {
        let a = lane_of("ada", 16);
        assert!(a < 16);
        assert_eq!(a, lane_of("ada", 16));
        let spread: std::collections::HashSet<_> =
            (0..64).map(|i| lane_of(&format!("s{i}"), 16)).collect();
        assert!(spread.len() > 8, "{spread:?}");
        assert_eq!(lane_of("ada", 1), 0);
        assert_eq!(lane_of("ada", 0), 0);
    }
}
