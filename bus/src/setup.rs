//! Applying the layout: every stream, bucket and durable consumer created or updated to
//! its configuration (idempotent; a limit changed in the settings takes effect at the
//! next connection of any process).

use async_nats::jetstream::{self, consumer, kv};
use jobmatch_core::messages::{self as m, ConsumerSpec};

use crate::layout;
use crate::limits::BusLimits;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("creating stream {name}: {message}")]
    Stream { name: String, message: String },
    #[error("creating key-value bucket {name}: {message}")]
    Bucket { name: String, message: String },
    #[error("creating consumer {name} on {stream}: {message}")]
    Consumer {
        stream: &'static str,
        name: &'static str,
        message: String,
    },
}

/// The buckets, opened.
#[derive(Clone)]
pub struct Buckets {
    pub config: kv::Store,
    pub postings: kv::Store,
    pub identities: kv::Store,
    pub schedule: kv::Store,
    pub notices: kv::Store,
    pub reports: kv::Store,
    pub resume_vectors: kv::Store,
    pub matcher_state: kv::Store,
}

/// Whether a process's limits become the layout's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create what is missing and update what exists to these limits: the operator and
    /// the long-running roles, which share one configuration.
    Apply,
    /// Create what is missing, leave what exists as it is: one-off commands (`apply`,
    /// `report`, `dead-letters`), which must not reset limits they were not given.
    KeepExisting,
}

/// Creates (or, with [`Mode::Apply`], updates) every stream, bucket and durable consumer
/// (consumers before anyone reads their lag) and opens the buckets.
pub async fn ensure(
    js: &jetstream::Context,
    limits: &BusLimits,
    mode: Mode,
) -> Result<Buckets, SetupError> {
    for config in layout::streams(limits) {
        let name = config.name.clone();
        let result = match mode {
            Mode::Apply => js.create_or_update_stream(config).await.map(drop),
            Mode::KeepExisting => js.get_or_create_stream(config).await.map(drop),
        };
        result.map_err(|e| SetupError::Stream {
            name,
            message: e.to_string(),
        })?;
    }
    for spec in m::CONSUMERS {
        durable_consumer(js, &spec, limits, mode).await?;
    }
    let mut opened = std::collections::HashMap::new();
    for config in layout::buckets(limits) {
        let name = config.bucket.clone();
        let existing = match mode {
            Mode::Apply => None,
            Mode::KeepExisting => js.get_key_value(&name).await.ok(),
        };
        let store = match existing {
            Some(store) => store,
            None => {
                js.create_or_update_key_value(config)
                    .await
                    .map_err(|e| SetupError::Bucket {
                        name: name.clone(),
                        message: e.to_string(),
                    })?
            }
        };
        opened.insert(name, store);
    }
    let mut take = |name: &str| {
        opened.remove(name).ok_or_else(|| SetupError::Bucket {
            name: name.to_owned(),
            message: "not in the layout".into(),
        })
    };
    Ok(Buckets {
        config: take(m::CONFIG_BUCKET)?,
        postings: take(m::POSTINGS_BUCKET)?,
        identities: take(m::IDENTITIES_BUCKET)?,
        schedule: take(m::SCHEDULE_BUCKET)?,
        notices: take(m::NOTICES_BUCKET)?,
        reports: take(m::REPORTS_BUCKET)?,
        resume_vectors: take(m::RESUME_VECTORS_BUCKET)?,
        matcher_state: take(m::MATCHER_STATE_BUCKET)?,
    })
}

/// One durable consumer, created to the layout if missing; with [`Mode::Apply`] also
/// updated to it.
pub async fn durable_consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    limits: &BusLimits,
    mode: Mode,
) -> Result<consumer::Consumer<consumer::pull::Config>, SetupError> {
    let err = |message: String| SetupError::Consumer {
        stream: spec.stream,
        name: spec.name,
        message,
    };
    let stream = js
        .get_stream_no_info(spec.stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    let config = layout::consumer(spec, limits);
    match mode {
        Mode::Apply => stream.create_consumer(config).await,
        Mode::KeepExisting => stream.get_or_create_consumer(spec.name, config).await,
    }
    .map_err(|e| err(e.to_string()))
}
