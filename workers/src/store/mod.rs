//! Vector storage: the `VectorStore` trait and its two backends.
//!
//! - [`embedded::EmbeddedStore`]: exact search in process memory with payload filters,
//!   persisted as an append-only log; the default for `jobmatch all` and for tests.
//! - [`qdrant::QdrantStore`]: a Qdrant server over gRPC, the production default.
//!
//! Both pass the same contract tests (`workers/tests/store_contract.rs`). Scores are
//! cosine similarities. Point ids are our own ids; backends map them to UUIDs as needed.

pub mod batching;
pub mod embedded;
pub mod qdrant;

use std::future::Future;

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("collection {0:?} does not exist")]
    NoCollection(String),
    #[error("collection {collection:?} holds vectors of {expected} dimensions, got {got}")]
    Dimension {
        collection: String,
        expected: usize,
        got: usize,
    },
    #[error("store log {path}: {source}")]
    Log {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("qdrant: {0}")]
    Qdrant(String),
    #[error("the store is shutting down")]
    ShuttingDown,
}

/// A vector with its id and payload.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub id: String,
    pub vector: Vec<f32>,
    pub payload: Map<String, Value>,
}

/// One search result. The payload is shared with the store that holds it (a search
/// returning thousands of points copies none of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub payload: std::sync::Arc<Map<String, Value>>,
}

/// A payload condition. Keys name top-level payload fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The field equals the keyword, or (for an array field) contains it.
    Keyword { key: String, value: String },
    /// The field equals, or contains, any of the keywords.
    AnyKeyword { key: String, values: Vec<String> },
    /// A nested filter.
    Nested(Filter),
}

/// All of `must`, at least one of `should` (when any), none of `must_not`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub must: Vec<Condition>,
    pub should: Vec<Condition>,
    pub must_not: Vec<Condition>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// Whether a payload passes the filter (the reference semantics every backend follows).
    pub fn accepts(&self, payload: &Map<String, Value>) -> bool {
        self.must.iter().all(|c| c.accepts(payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.accepts(payload)))
            && !self.must_not.iter().any(|c| c.accepts(payload))
    }
}

impl Condition {
    pub fn keyword(key: &str, value: &str) -> Self {
        Condition::Keyword {
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    pub fn accepts(&self, payload: &Map<String, Value>) -> bool {
        let holds = |key: &str, wanted: &str| match payload.get(key) {
            Some(Value::String(s)) => s == wanted,
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(wanted)),
            Some(Value::Bool(b)) => wanted == if *b { "true" } else { "false" },
            _ => false,
        };
        match self {
            Condition::Keyword { key, value } => holds(key, value),
            Condition::AnyKeyword { key, values } => values.iter().any(|v| holds(key, v)),
            Condition::Nested(filter) => filter.accepts(payload),
        }
    }
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub vector: Vec<f32>,
    pub filter: Filter,
    pub limit: usize,
    /// Only hits scoring at least this.
    pub min_score: Option<f32>,
    /// A payload field holding each point's own lowest score (a number): a point scoring
    /// below its own is no hit; a point without the field has none. The matcher stores
    /// each subscription's `minScore` there, so a new job's search returns only the
    /// subscriptions whose threshold it passes, not every subscription.
    pub own_threshold: Option<&'static str>,
}

impl Query {
    /// Whether a point scoring `score` with `payload` passes both thresholds.
    pub fn scores_enough(&self, score: f32, payload: &Map<String, Value>) -> bool {
        self.min_score.is_none_or(|min| score >= min)
            && self
                .own_threshold
                .and_then(|field| payload.get(field)?.as_f64())
                // Stored from an f32, so back to the same f32: compared as `evaluate` does.
                .is_none_or(|own| score >= own as f32)
    }
}

/// What every vector store backend does.
pub trait VectorStore: Send + Sync {
    /// Creates the collection if it does not exist, with keyword indexes on `indexed` fields.
    fn ensure_collection(
        &self,
        collection: &str,
        dimension: usize,
        indexed: &[&str],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Inserts or replaces points by id.
    fn upsert(
        &self,
        collection: &str,
        points: Vec<Point>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes points by id; unknown ids are ignored.
    fn delete(
        &self,
        collection: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes points by id and leaves no copy of them behind in the store's own files
    /// (the candidate pool's erasure); backends whose delete already does that delete.
    fn erase(
        &self,
        collection: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.delete(collection, ids)
    }

    /// Whether a point with this id is stored.
    fn contains(
        &self,
        collection: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The best matches, highest score first.
    fn search(
        &self,
        collection: &str,
        query: &Query,
    ) -> impl Future<Output = Result<Vec<Hit>, StoreError>> + Send;

    /// How many points the collection holds.
    fn count(&self, collection: &str) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// The backend chosen at start-up.
pub enum AnyStore {
    Embedded(embedded::EmbeddedStore),
    Qdrant(qdrant::QdrantStore),
}

impl VectorStore for AnyStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        dimension: usize,
        indexed: &[&str],
    ) -> Result<(), StoreError> {
        match self {
            AnyStore::Embedded(s) => s.ensure_collection(collection, dimension, indexed).await,
            AnyStore::Qdrant(s) => s.ensure_collection(collection, dimension, indexed).await,
        }
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        match self {
            AnyStore::Embedded(s) => s.upsert(collection, points).await,
            AnyStore::Qdrant(s) => s.upsert(collection, points).await,
        }
    }

    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        match self {
            AnyStore::Embedded(s) => s.delete(collection, ids).await,
            AnyStore::Qdrant(s) => s.delete(collection, ids).await,
        }
    }

    async fn erase(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        match self {
            AnyStore::Embedded(s) => s.erase(collection, ids).await,
            AnyStore::Qdrant(s) => s.erase(collection, ids).await,
        }
    }

    async fn contains(&self, collection: &str, id: &str) -> Result<bool, StoreError> {
        match self {
            AnyStore::Embedded(s) => s.contains(collection, id).await,
            AnyStore::Qdrant(s) => s.contains(collection, id).await,
        }
    }

    async fn search(&self, collection: &str, query: &Query) -> Result<Vec<Hit>, StoreError> {
        match self {
            AnyStore::Embedded(s) => s.search(collection, query).await,
            AnyStore::Qdrant(s) => s.search(collection, query).await,
        }
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        match self {
            AnyStore::Embedded(s) => s.count(collection).await,
            AnyStore::Qdrant(s) => s.count(collection).await,
        }
    }
}
