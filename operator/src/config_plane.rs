//! The operator's one edge to NATS: the desired configuration the workers read
//! (`jobmatch-config` KV), the worker reports it copies into status, and erasing a
//! deleted subscription's data. The reconcilers see only the `ConfigPlane` trait.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::{StreamExt, future::BoxFuture};
pub use jobmatch_core::messages::Report;
use jobmatch_core::messages::{self as m, SourceConfig, SubscriptionConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigPlaneError {
    #[error("connecting to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("NATS {what}: {message}")]
    Nats { what: &'static str, message: String },
}

impl ConfigPlaneError {
    fn nats(what: &'static str) -> impl Fn(String) -> Self {
        move |message| ConfigPlaneError::Nats { what, message }
    }
}

/// Where the workers' configuration lives.
pub trait ConfigPlane: Send + Sync {
    /// Writes the entry if it differs from what is stored; true when it wrote.
    fn put_source(&self, config: &SourceConfig) -> BoxFuture<'_, Result<bool, ConfigPlaneError>>;
    fn put_subscription(
        &self,
        config: &SubscriptionConfig,
    ) -> BoxFuture<'_, Result<bool, ConfigPlaneError>>;
    /// Removes a source's entry (the fetchers stop polling it).
    fn delete_source(&self, name: &str) -> BoxFuture<'_, Result<(), ConfigPlaneError>>;
    /// Removes a subscription's entry while its spec is invalid; keeps its notice keys, so
    /// fixing the spec sends nothing twice.
    fn delete_subscription(&self, name: &str) -> BoxFuture<'_, Result<(), ConfigPlaneError>>;
    /// The names of every source with an entry.
    fn source_names(&self) -> BoxFuture<'_, Result<Vec<String>, ConfigPlaneError>>;
    /// Removes a subscription's entry (the embedder then tells the matchers to drop its
    /// resume vector) and purges its pending and dead-lettered notices and its notice keys.
    fn erase_subscription(&self, name: &str) -> BoxFuture<'_, Result<(), ConfigPlaneError>>;
    /// The latest report for `source.<name>` or `subscription.<name>`.
    fn report(&self, key: &str) -> Option<Report>;
}

/// The NATS implementation.
pub struct NatsConfigPlane {
    js: jetstream::Context,
    config: kv::Store,
    reports: Arc<RwLock<HashMap<String, Report>>>,
    _watch: tokio::task::JoinHandle<()>,
}

impl NatsConfigPlane {
    /// Connects, makes sure the streams, buckets and durable consumers exist (the
    /// scalers read consumer lag, so consumers come before scalers), and starts
    /// following the reports.
    pub async fn connect(
        url: &str,
        credentials: Option<&std::path::Path>,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, ConfigPlaneError> {
        let connect_error = |message: String| ConfigPlaneError::Connect {
            url: url.to_owned(),
            message,
        };
        let mut options = match credentials {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| connect_error(format!("credentials {}: {e}", path.display())))?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(ca) = ca {
            options = options
                .add_root_certificates(ca.to_owned())
                .require_tls(true);
        }
        let client = options
            .name("jobmatch-operator")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let js = jetstream::new(client);
        let limits = jobmatch_bus::BusLimits::from_env()
            .map_err(|e| ConfigPlaneError::nats("stream limits")(e.to_string()))?;
        let buckets = jobmatch_bus::ensure(&js, &limits, jobmatch_bus::Mode::Apply)
            .await
            .map_err(|e| ConfigPlaneError::nats("setting up streams and buckets")(e.to_string()))?;
        let config = buckets.config;
        let reports_store = buckets.reports;
        let reports = Arc::new(RwLock::new(HashMap::new()));
        let watch = reports_store
            .watch_with_history(">")
            .await
            .map_err(|e| ConfigPlaneError::nats("watching reports")(e.to_string()))?;
        let cache = reports.clone();
        let task = tokio::spawn(async move {
            let mut watch = watch;
            while let Some(entry) = watch.next().await {
                let Ok(entry) = entry else { continue };
                let mut cache = match cache.write() {
                    Ok(c) => c,
                    Err(poisoned) => poisoned.into_inner(),
                };
                match entry.operation {
                    kv::Operation::Put => match serde_json::from_slice::<Report>(&entry.value) {
                        Ok(r) => {
                            cache.insert(entry.key, r);
                        }
                        Err(e) => {
                            tracing::warn!(key = %entry.key, error = %e, "undecodable report skipped")
                        }
                    },
                    _ => {
                        cache.remove(&entry.key);
                    }
                }
            }
        });
        Ok(Self {
            js,
            config,
            reports,
            _watch: task,
        })
    }

    async fn put_if_changed(&self, key: String, value: Vec<u8>) -> Result<bool, ConfigPlaneError> {
        let current = self
            .config
            .get(&key)
            .await
            .map_err(|e| ConfigPlaneError::nats("reading config")(e.to_string()))?;
        if current.as_deref() == Some(value.as_slice()) {
            return Ok(false);
        }
        self.config
            .put(&key, value.into())
            .await
            .map_err(|e| ConfigPlaneError::nats("writing config")(e.to_string()))?;
        Ok(true)
    }

    async fn delete_if_present(&self, key: String) -> Result<(), ConfigPlaneError> {
        let current = self
            .config
            .get(&key)
            .await
            .map_err(|e| ConfigPlaneError::nats("reading config")(e.to_string()))?;
        if current.is_some() {
            self.config
                .delete(&key)
                .await
                .map_err(|e| ConfigPlaneError::nats("deleting config")(e.to_string()))?;
        }
        Ok(())
    }
}

impl ConfigPlane for NatsConfigPlane {
    fn put_source(&self, config: &SourceConfig) -> BoxFuture<'_, Result<bool, ConfigPlaneError>> {
        let key = m::source_key(&config.name);
        let value = serde_json::to_vec(config);
        Box::pin(async move {
            let value = value.map_err(|e| ConfigPlaneError::nats("encoding")(e.to_string()))?;
            self.put_if_changed(key, value).await
        })
    }

    fn put_subscription(
        &self,
        config: &SubscriptionConfig,
    ) -> BoxFuture<'_, Result<bool, ConfigPlaneError>> {
        let key = m::subscription_key(&config.name);
        let value = serde_json::to_vec(config);
        Box::pin(async move {
            let value = value.map_err(|e| ConfigPlaneError::nats("encoding")(e.to_string()))?;
            self.put_if_changed(key, value).await
        })
    }

    fn delete_source(&self, name: &str) -> BoxFuture<'_, Result<(), ConfigPlaneError>> {
        let key = m::source_key(name);
        Box::pin(self.delete_if_present(key))
    }

    fn delete_subscription(&self, name: &str) -> BoxFuture<'_, Result<(), ConfigPlaneError>> {
        let key = m::subscription_key(name);
        Box::pin(self.delete_if_present(key))
    }

    fn source_names(&self) -> BoxFuture<'_, Result<Vec<String>, ConfigPlaneError>> {
        Box::pin(async move {
            let mut keys = self
                .config
                .keys()
                .await
                .map_err(|e| ConfigPlaneError::nats("listing config keys")(e.to_string()))?;
            let mut names = Vec::new();
            while let Some(key) = keys.next().await {
                let key =
                    key.map_err(|e| ConfigPlaneError::nats("listing config keys")(e.to_string()))?;
                if let Some(name) = key.strip_prefix("source.") {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
    }

    fn erase_subscription(&self, name: &str) -> BoxFuture<'_, Result<(), ConfigPlaneError>> {
        let name = name.to_owned();
        Box::pin(async move {
            self.delete_if_present(m::subscription_key(&name)).await?;
            for (stream, subject) in [
                (m::MATCHES_STREAM, m::matches_subject(&name)),
                (m::DEAD_LETTER_STREAM, m::notice_dead_letter_subject(&name)),
            ] {
                let s = self
                    .js
                    .get_stream(stream)
                    .await
                    .map_err(|e| ConfigPlaneError::nats("opening stream")(e.to_string()))?;
                s.purge()
                    .filter(subject)
                    .await
                    .map_err(|e| ConfigPlaneError::nats("purging notices")(e.to_string()))?;
            }
            // The notice keys `<name>.<job>`: one purge of the bucket's stream by
            // subject, instead of listing every key of every subscription.
            let bucket_stream = format!("KV_{}", m::NOTICES_BUCKET);
            self.js
                .get_stream(&bucket_stream)
                .await
                .map_err(|e| ConfigPlaneError::nats("opening stream")(e.to_string()))?
                .purge()
                .filter(format!("$KV.{}.{name}.>", m::NOTICES_BUCKET))
                .await
                .map_err(|e| ConfigPlaneError::nats("purging notice keys")(e.to_string()))?;
            Ok(())
        })
    }

    fn report(&self, key: &str) -> Option<Report> {
        let cache = match self.reports.read() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        cache.get(key).cloned()
    }
}
