//! The NATS JetStream plumbing every role shares: one connection, the streams and
//! key-value buckets (created idempotently), and the durable consumers.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
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
    #[error("creating stream {name}: {source}")]
    Stream {
        name: &'static str,
        source: jetstream::context::CreateStreamError,
    },
    #[error("creating key-value bucket {name}: {source}")]
    Bucket {
        name: &'static str,
        source: jetstream::context::CreateKeyValueError,
    },
    #[error("creating consumer {name} on {stream}: {source}")]
    Consumer {
        stream: &'static str,
        name: &'static str,
        source: async_nats::Error,
    },
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
    /// Progress per source and subscription, for the operator (see `reports`).
    pub reports_bucket: kv::Store,
    pub reports: crate::reports::Reports,
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

/// How long a published message id is remembered for deduplication.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

impl Bus {
    /// Connects to `url` without credentials (see `connect_to`).
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        Self::connect_to(&NatsConnection {
            url: url.to_owned(),
            ..Default::default()
        })
        .await
    }

    /// Connects and makes sure every stream and bucket exists.
    pub async fn connect_to(nats: &NatsConnection) -> Result<Self, BusError> {
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
        for (name, subjects) in m::STREAMS {
            js.create_or_update_stream(stream::Config {
                name: name.to_owned(),
                subjects: vec![subjects.to_owned()],
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|source| BusError::Stream { name, source })?;
        }
        let bucket = |name: &'static str, history: i64| {
            let js = js.clone();
            async move {
                js.create_or_update_key_value(kv::Config {
                    bucket: name.to_owned(),
                    history,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|source| BusError::Bucket { name, source })
            }
        };
        Ok(Self {
            config: bucket(m::CONFIG_BUCKET, m::CONFIG_HISTORY).await?,
            postings: bucket(m::POSTINGS_BUCKET, 1).await?,
            identities: bucket(m::IDENTITIES_BUCKET, 1).await?,
            schedule: bucket(m::SCHEDULE_BUCKET, 1).await?,
            notices: bucket(m::NOTICES_BUCKET, 1).await?,
            reports_bucket: bucket(m::REPORTS_BUCKET, 1).await?,
            reports: crate::reports::Reports::default(),
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
        let m::ConsumerSpec {
            stream,
            name,
            ack_wait_secs,
        } = spec;
        let err = |source: async_nats::Error| BusError::Consumer {
            stream,
            name,
            source,
        };
        let stream_handle = self
            .js
            .get_stream(stream)
            .await
            .map_err(|e| err(e.into()))?;
        stream_handle
            .get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(ack_wait_secs),
                    max_ack_pending: m::MAX_ACK_PENDING,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| err(e.into()))
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

/// Reads a durable consumer until `cancel` fires, one message at a time: decodes it as
/// JSON `T`, hands it to `handle`, acknowledges on success and asks for redelivery after
/// `retry` on failure. An undecodable message is logged and terminated (never
/// redelivered). Cancellation is checked between messages, never inside one, so no
/// acknowledgement is lost.
pub async fn consume<T, E, F, Fut>(
    consumer: consumer::Consumer<consumer::pull::Config>,
    cancel: &tokio_util::sync::CancellationToken,
    retry: Duration,
    mut handle: F,
) -> anyhow::Result<()>
where
    T: serde::de::DeserializeOwned,
    E: std::fmt::Display,
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    use futures::StreamExt;
    use jetstream::AckKind;
    let name = consumer.cached_info().name.clone();
    let mut messages = consumer.messages().await?;
    let ack = |result: Result<(), async_nats::Error>| {
        result.map_err(|e| anyhow::anyhow!("{name}: acknowledging: {e}"))
    };
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            next = messages.next() => match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    tracing::warn!(consumer = %name, error = %e, "consumer error");
                    continue;
                }
                None => anyhow::bail!("consumer {name} ended"),
            },
        };
        let item: T = match serde_json::from_slice(&message.payload) {
            Ok(item) => item,
            Err(e) => {
                tracing::warn!(consumer = %name, subject = %message.subject, error = %e, "undecodable message dropped");
                ack(message.ack_with(AckKind::Term).await)?;
                continue;
            }
        };
        match handle(item).await {
            Ok(()) => ack(message.ack().await)?,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "handling failed; will be redelivered");
                ack(message.ack_with(AckKind::Nak(Some(retry))).await)?;
            }
        }
    }
}
