//! The Qdrant backend: a Qdrant server over gRPC through `qdrant-client`.
//!
//! Our ids become UUIDv5 point ids (Qdrant accepts only UUIDs and integers); the id
//! itself travels in the payload under [`ID_FIELD`] and is stripped on the way out.

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    self as q, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, GetPointsBuilder, PointStruct, PointsIdsList,
    QueryPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};
use serde_json::{Map, Value};

use super::{Condition, Filter, Hit, Point, Query, StoreError, VectorStore};

/// Payload field that carries our own id.
pub const ID_FIELD: &str = "jobmatch_id";

pub struct QdrantStore {
    client: Qdrant,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Qdrant(e.to_string())
}

fn point_id(id: &str) -> q::PointId {
    q::PointId::from(jobmatch_core::ids::point_id(id).to_string())
}

impl QdrantStore {
    /// Connects to a Qdrant gRPC endpoint, e.g. `http://qdrant:6334` (`https://` for
    /// TLS, trusting the system's roots or `SSL_CERT_FILE`), with an optional API key.
    pub fn connect(url: &str, api_key: Option<&str>) -> Result<Self, StoreError> {
        let client = Qdrant::from_url(url)
            .api_key(api_key.map(str::to_owned))
            .build()
            .map_err(err)?;
        Ok(Self { client })
    }
}

fn condition(c: &Condition) -> q::Condition {
    match c {
        Condition::Keyword { key, value } => q::Condition::matches(key.clone(), value.clone()),
        Condition::AnyKeyword { key, values } => q::Condition::matches(key.clone(), values.clone()),
        Condition::Nested(f) => q::Condition::from(filter(f)),
    }
}

fn filter(f: &Filter) -> q::Filter {
    q::Filter {
        must: f.must.iter().map(condition).collect(),
        should: f.should.iter().map(condition).collect(),
        must_not: f.must_not.iter().map(condition).collect(),
        ..Default::default()
    }
}

impl VectorStore for QdrantStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        dimension: usize,
        indexed: &[&str],
    ) -> Result<(), StoreError> {
        if !self
            .client
            .collection_exists(collection)
            .await
            .map_err(err)?
        {
            let created =
                self.client
                    .create_collection(CreateCollectionBuilder::new(collection).vectors_config(
                        VectorParamsBuilder::new(dimension as u64, Distance::Cosine),
                    ))
                    .await;
            // Another replica may have created it in between.
            if let Err(e) = created
                && !self
                    .client
                    .collection_exists(collection)
                    .await
                    .map_err(err)?
            {
                return Err(err(e));
            }
        }
        for field in indexed.iter().copied().chain([ID_FIELD]) {
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(collection, field, FieldType::Keyword)
                        .wait(true),
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points
            .into_iter()
            .map(|p| {
                let mut payload = p.payload;
                payload.insert(ID_FIELD.to_owned(), Value::String(p.id.clone()));
                PointStruct::new(
                    point_id(&p.id),
                    p.vector,
                    qdrant_client::Payload::from(payload),
                )
            })
            .collect::<Vec<_>>();
        self.client
            .upsert_points(UpsertPointsBuilder::new(collection, points).wait(true))
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = PointsIdsList {
            ids: ids.iter().map(|id| point_id(id)).collect(),
        };
        self.client
            .delete_points(DeletePointsBuilder::new(collection).points(ids).wait(true))
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn contains(&self, collection: &str, id: &str) -> Result<bool, StoreError> {
        let response = self
            .client
            .get_points(
                GetPointsBuilder::new(collection, vec![point_id(id)])
                    .with_payload(false)
                    .with_vectors(false),
            )
            .await
            .map_err(err)?;
        Ok(!response.result.is_empty())
    }

    async fn search(&self, collection: &str, query: &Query) -> Result<Vec<Hit>, StoreError> {
        let mut request = QueryPointsBuilder::new(collection)
            .query(query.vector.clone())
            .limit(query.limit as u64)
            .with_payload(true);
        if !query.filter.is_empty() {
            request = request.filter(filter(&query.filter));
        }
        if let Some(min) = query.min_score {
            request = request.score_threshold(min);
        }
        let response = self.client.query(request).await.map_err(err)?;
        // Qdrant has no per-point threshold: applied to what it answers (exact when the
        // limit covers every candidate, as the matcher's job search asks).
        Ok(response
            .result
            .into_iter()
            .map(|point| {
                let mut payload: Map<String, Value> =
                    qdrant_client::Payload::from(point.payload).into();
                let id = match payload.remove(ID_FIELD) {
                    Some(Value::String(id)) => id,
                    _ => String::new(),
                };
                Hit {
                    id,
                    score: point.score,
                    payload: payload.into(),
                }
            })
            .filter(|hit| query.scores_enough(hit.score, &hit.payload))
            .collect())
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        let response = self
            .client
            .count(CountPointsBuilder::new(collection).exact(true))
            .await
            .map_err(err)?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }
}
