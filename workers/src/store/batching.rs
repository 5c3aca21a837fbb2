//! Upserts of concurrent callers written to the store together: one Qdrant request (or
//! one log append) for the points of every message being handled at that moment,
//! instead of one round trip each.
//!
//! A caller's upsert returns once its batch is written (or failed, with its: a batch that fails is written again caller by caller, so one bad point
//! fails only its own message), so "upsert, then search" keeps its meaning: a point is findable by the time
//! its upsert returns. Batches form by themselves: while one is being written, the
//! upserts that arrive wait and go out together in the next.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Point, StoreError, VectorStore};

/// Most points written in one request.
pub const MAX_BATCH_POINTS: usize = 256;

struct Pending {
    collection: String,
    points: Vec<Point>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// A handle to the task that writes batches; the task ends when every handle is gone.
#[derive(Clone)]
pub struct UpsertBatcher {
    queue: mpsc::Sender<Pending>,
}

impl UpsertBatcher {
    /// Starts the writing task on the current runtime.
    pub fn spawn<S: VectorStore + 'static>(store: Arc<S>) -> Self {
        // Bounded: callers wait (each holds its message) rather than queue without end.
        let (queue, pending) = mpsc::channel(MAX_BATCH_POINTS);
        tokio::spawn(write_batches(store, pending));
        Self { queue }
    }

    /// Upserts `points` into `collection` with whatever else is waiting to be written.
    pub async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        let (done, written) = oneshot::channel();
        let pending = Pending {
            collection: collection.to_owned(),
            points,
            done,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        written.await.unwrap_or(Err(StoreError::ShuttingDown))
    }
}

async fn write_batches<S: VectorStore>(store: Arc<S>, mut pending: mpsc::Receiver<Pending>) {
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        let mut points = batch[0].points.len();
        while points < MAX_BATCH_POINTS
            && let Ok(next) = pending.try_recv()
        {
            points += next.points.len();
            batch.push(next);
        }
        for (collection, group) in by_collection(batch) {
            write(store.as_ref(), &collection, group).await;
        }
    }
}

/// One collection's upserts in one request; if that fails, one request each.
async fn write<S: VectorStore>(store: &S, collection: &str, mut group: Vec<Pending>) {
    if group.len() > 1 {
        let points: Vec<Point> = group.iter().flat_map(|p| p.points.clone()).collect();
        let count = points.len();
        match store.upsert(collection, points).await {
            Ok(()) => {
                tracing::trace!(
                    collection,
                    points = count,
                    callers = group.len(),
                    "batch upserted"
                );
                for p in group {
                    // A caller that gave up (its message comes back) needs no answer.
                    let _ = p.done.send(Ok(()));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(collection, points = count, error = %e, "batch upsert failed; writing its upserts one by one");
            }
        }
    }
    for p in group.drain(..) {
        let _ = p.done.send(store.upsert(collection, p.points).await);
    }
}

/// The batch split by collection, collections in the order they first appear and each
/// one's upserts in arrival order (a later upsert of a point wins, as it would alone).
fn by_collection(batch: Vec<Pending>) -> Vec<(String, Vec<Pending>)> {
    let mut groups: Vec<(String, Vec<Pending>)> = Vec::new();
    for p in batch {
        match groups.iter_mut().find(|(c, _)| *c == p.collection) {
            Some((_, group)) => group.push(p),
            None => groups.push((p.collection.clone(), vec![p])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::{Query, VectorStore};

    fn point(id: &str, x: f32) -> Point {
        Point {
            id: id.into(),
            vector: vec![x, 1.0 - x],
            payload: Default::default(),
        }
    }

    #[tokio::test]
    async fn concurrent_upserts_are_all_written_and_each_is_findable_when_it_returns() {
        let store = Arc::new(EmbeddedStore::in_memory());
        for c in ["a", "b"] {
            store.ensure_collection(c, 2, &[]).await.unwrap();
        }
        let batcher = UpsertBatcher::spawn(store.clone());
        let writes = (0..200).map(|i| {
            let (batcher, store) = (batcher.clone(), store.clone());
            async move {
                let collection = if i % 3 == 0 { "a" } else { "b" };
                let id = format!("p{i}");
                batcher
                    .upsert(collection, vec![point(&id, (i % 7) as f32 / 7.0)])
                    .await
                    .unwrap();
                assert!(store.contains(collection, &id).await.unwrap(), "{id}");
            }
        });
        futures::future::join_all(writes).await;
        assert_eq!(store.count("a").await.unwrap(), 67);
        assert_eq!(store.count("b").await.unwrap(), 133);
    }

    #[tokio::test]
    async fn a_failed_upsert_fails_only_its_own_caller() {
        let store = Arc::new(EmbeddedStore::in_memory());
        store.ensure_collection("a", 2, &[]).await.unwrap();
        let batcher = UpsertBatcher::spawn(store.clone());
        let missing = batcher.upsert("nowhere", vec![point("x", 0.5)]).await;
        assert!(
            matches!(&missing, Err(StoreError::NoCollection(c)) if c == "nowhere"),
            "{missing:?}"
        );
        // A wrong-sized vector beside good ones fails alone.
        let bad = Point {
            vector: vec![1.0, 0.0, 0.0],
            ..point("bad", 0.0)
        };
        let (bad, good) = tokio::join!(
            batcher.upsert("a", vec![bad]),
            batcher.upsert("a", vec![point("y", 0.5)])
        );
        assert!(matches!(bad, Err(StoreError::Dimension { .. })), "{bad:?}");
        good.unwrap();
        let hits = store
            .search(
                "a",
                &Query {
                    vector: vec![0.5, 0.5],
                    filter: Default::default(),
                    limit: 10,
                    min_score: None,
                    own_threshold: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), 1);
    }
}
