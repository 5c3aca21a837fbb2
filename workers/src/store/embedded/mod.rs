//! The embedded vector store: exact cosine search with payload filters, in memory,
//! optionally persisted to an append-only log of checksummed binary records that is
//! replayed at open.
//!
//! - [`collection`]: the rows (f32, int8 with error bounds, typed columns) and the
//!   scan: thresholded searches read int8 and rescore in f32, large collections are
//!   scanned on every core, the top k kept by a bounded heap;
//! - [`log`]: the file format, its torn-tail recovery and rewriting.
//!
//! Chosen over `qdrant-edge` (see docs/design.md, "Vector store"): an exact answer
//! (the matcher must find every subscription a job passes, not most of them), the
//! same filter semantics as the Qdrant backend, and nothing added to build time.

mod collection;
mod keywords;
mod log;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use self::collection::{Collection, Row};
use self::log::{Entry, Log, Record};
use super::{Hit, Point, Query, StoreError, VectorStore};

/// The log is rewritten when it holds more dead records (replaced or deleted points,
/// tombstones) than this and than live points: each rewrite is paid for by as many
/// appends, and the file stays within about twice the live data.
const REWRITE_AFTER_DEAD: usize = 50_000;

struct Inner {
    collections: BTreeMap<String, Collection>,
    log: Option<Log>,
    /// Records in the log that no longer describe a live point.
    dead: usize,
    /// While a log is replayed, its size: no collection in it has more points than
    /// its records could hold, so each is sized for that at once (the memory is only
    /// reserved, not touched, until points fill it).
    replaying: u64,
}

/// A replayed record, an upsert's vector made a collection row already (on every core).
enum Prepared {
    Upsert {
        collection: String,
        id: String,
        row: Row,
        payload: Vec<u8>,
        decoded: Option<serde_json::Map<String, serde_json::Value>>,
    },
    Other(Entry),
}

fn prepare(entry: Entry) -> Prepared {
    match entry {
        Entry::Upsert {
            collection,
            id,
            vector,
            payload,
            decoded,
        } => Prepared::Upsert {
            collection,
            id,
            row: Row::of(&vector),
            payload,
            decoded,
        },
        other => Prepared::Other(other),
    }
}

pub struct EmbeddedStore {
    inner: Arc<RwLock<Inner>>,
}

impl EmbeddedStore {
    /// A store that forgets everything when dropped.
    pub fn in_memory() -> Self {
        Self {
            inner: Arc::new(RwLock::new(Inner {
                collections: BTreeMap::new(),
                log: None,
                dead: 0,
                replaying: 0,
            })),
        }
    }

    /// Opens (or creates) a store persisted under `dir`, replaying its log (and once,
    /// a log of the JSON-lines format before it).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(log::FILE);
        let legacy = dir.join(log::LEGACY_FILE);
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Log {
            path: dir.to_owned(),
            source,
        })?;
        let started = std::time::Instant::now();
        let mut inner = Inner {
            collections: BTreeMap::new(),
            log: None,
            dead: 0,
            replaying: 0,
        };
        let mut rewrite = false;
        let mut valid_len = None;
        if path.exists() {
            inner.replaying = std::fs::metadata(&path).map_or(0, |m| m.len());
            let replayed = log::replay(&path, prepare, |prepared| inner.apply_prepared(prepared))?;
            inner.replaying = 0;
            if replayed.valid_len < replayed.file_len {
                let kept = log::keep_tail(&path, replayed.valid_len)?;
                tracing::warn!(
                    path = %path.display(),
                    intact = replayed.valid_len,
                    cut = replayed.file_len - replayed.valid_len,
                    kept = %kept.display(),
                    "store log ends in a torn or damaged record (a crash mid-write?): cut off and kept beside it"
                );
            }
            valid_len = Some(replayed.valid_len);
        } else if legacy.exists() {
            log::replay_legacy(&legacy, |entry| inner.apply(entry))?;
            rewrite = true;
        }
        let points: usize = inner.collections.values().map(Collection::len).sum();
        rewrite |= valid_len.is_none() || inner.dead > points.max(REWRITE_AFTER_DEAD);
        inner.log = Some(match valid_len {
            Some(len) if !rewrite => Log::append_to(&path, len)?,
            _ => {
                inner.dead = 0;
                Log::rewrite(&path, inner.records())?
            }
        });
        if legacy.exists() {
            std::fs::remove_file(&legacy).map_err(|source| StoreError::Log {
                path: legacy.clone(),
                source,
            })?;
            tracing::info!(from = %legacy.display(), to = %path.display(), "store log converted");
        }
        tracing::info!(
            path = %path.display(),
            points,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store opened"
        );
        Ok(Self {
            inner: Arc::new(RwLock::new(inner)),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Inner) -> Result<T, StoreError>) -> Result<T, StoreError> {
        // A poisoned lock means a panic mid-update; the maps themselves are consistent.
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        f(&inner)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        f(&mut inner)
    }

    /// `f` on a blocking thread, so that a long scan or a large write (milliseconds to
    /// tens of them at a million points) holds no async worker: the matcher's lanes
    /// search side by side while their messages' progress reports still go out.
    async fn off_runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Arc<RwLock<Inner>>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::ShuttingDown),
        }
    }
}

impl Inner {
    fn apply_prepared(&mut self, prepared: Prepared) {
        match prepared {
            Prepared::Upsert {
                collection,
                id,
                row,
                payload,
                decoded,
            } => match decoded {
                Some(decoded) => self.upserted(collection, id, row, &decoded, payload.into()),
                // Checksummed, so written so: not a crash's doing.
                None => tracing::warn!(
                    collection,
                    id,
                    "stored point with an unreadable payload skipped"
                ),
            },
            Prepared::Other(entry) => self.apply(entry),
        }
    }

    /// Applies a record (replayed, or appended just now) to the collections.
    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Collection {
                name,
                dimension,
                indexed,
                rows,
            } => {
                // A record is at least its header, tag, two lengths and the floats.
                let most = self.replaying / (17 + 4 * dimension.max(1) as u64);
                let capacity = rows.max(most as usize);
                self.collections
                    .entry(name)
                    .or_insert_with(|| Collection::new(dimension, capacity))
                    .index_fields(&indexed);
            }
            upsert @ Entry::Upsert { .. } => self.apply_prepared(prepare(upsert)),
            Entry::Delete { collection, id } => {
                // The tombstone and the record it kills.
                if let Some(c) = self.collections.get_mut(&collection)
                    && c.remove(&id)
                {
                    self.dead += 2;
                }
            }
        }
    }

    /// Stores a point (appended to the log already, or replayed from it).
    fn upserted(
        &mut self,
        collection: String,
        id: String,
        row: Row,
        payload: &serde_json::Map<String, serde_json::Value>,
        json: Box<[u8]>,
    ) {
        let c = self
            .collections
            .entry(collection)
            .or_insert_with(|| Collection::new(row.dimension(), 0));
        if row.dimension() == c.dimension && c.upsert(id, row, payload, json) {
            self.dead += 1;
        }
    }

    /// The live state as records: each collection, then its points.
    fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.collections.iter().flat_map(|(name, c)| {
            std::iter::once(Record::Collection {
                name,
                dimension: c.dimension,
                indexed: c.indexed(),
                rows: c.len(),
            })
            .chain(c.points().map(move |(id, vector, payload)| Record::Upsert {
                collection: name,
                id,
                vector,
                payload,
            }))
        })
    }

    /// Appends records to the log (before they are applied: what is applied is on file).
    fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = Record<'a>>,
    ) -> Result<(), StoreError> {
        match &mut self.log {
            Some(log) => log.append(records),
            None => Ok(()),
        }
    }

    /// Applies appended records; rewrites the log when it has become mostly dead ones.
    fn applied(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        for entry in entries {
            self.apply(entry);
        }
        self.rewrite_if_mostly_dead()
    }

    fn rewrite_if_mostly_dead(&mut self) -> Result<(), StoreError> {
        let points: usize = self.collections.values().map(Collection::len).sum();
        if self.dead > points.max(REWRITE_AFTER_DEAD) {
            self.rewrite()?;
        }
        Ok(())
    }

    fn rewrite(&mut self) -> Result<(), StoreError> {
        if let Some(log) = &self.log {
            let path = log.path().to_owned();
            self.log = Some(Log::rewrite(&path, self.records())?);
        }
        self.dead = 0;
        Ok(())
    }

    fn collection(&self, name: &str) -> Result<&Collection, StoreError> {
        self.collections
            .get(name)
            .ok_or_else(|| StoreError::NoCollection(name.to_owned()))
    }
}

impl VectorStore for EmbeddedStore {
    /// Creates the collection, or indexes the fields it does not index yet.
    async fn ensure_collection(
        &self,
        collection: &str,
        dimension: usize,
        indexed: &[&str],
    ) -> Result<(), StoreError> {
        self.write(|inner| {
            let mut fields: Vec<String> = indexed.iter().map(|f| (*f).to_owned()).collect();
            match inner.collections.get(collection) {
                Some(c) if c.dimension != dimension => {
                    return Err(StoreError::Dimension {
                        collection: collection.to_owned(),
                        expected: c.dimension,
                        got: dimension,
                    });
                }
                Some(c) if fields.iter().all(|f| c.indexed().contains(f)) => return Ok(()),
                Some(c) => {
                    let known = c.indexed().to_vec();
                    fields.retain(|f| !known.contains(f));
                    fields.splice(0..0, known);
                }
                None => {}
            }
            inner.append([Record::Collection {
                name: collection,
                dimension,
                indexed: &fields,
                rows: 0,
            }])?;
            inner.applied(vec![Entry::Collection {
                name: collection.to_owned(),
                dimension,
                indexed: fields,
                rows: 0,
            }])
        })
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        let collection = collection.to_owned();
        self.off_runtime(move |inner| {
            // Encoded and quantized before the lock is taken: searches go on meanwhile.
            // A map of JSON values always serializes.
            let jsons: Vec<Vec<u8>> = points
                .iter()
                .map(|p| serde_json::to_vec(&p.payload).unwrap_or_default())
                .collect();
            let rows: Vec<Row> = points.iter().map(|p| Row::of(&p.vector)).collect();
            let mut inner = inner.write().unwrap_or_else(|p| p.into_inner());
            let expected = inner.collection(&collection)?.dimension;
            if let Some(bad) = points.iter().find(|p| p.vector.len() != expected) {
                return Err(StoreError::Dimension {
                    collection,
                    expected,
                    got: bad.vector.len(),
                });
            }
            inner.append(points.iter().zip(&jsons).map(|(p, json)| Record::Upsert {
                collection: &collection,
                id: &p.id,
                vector: &p.vector,
                payload: json,
            }))?;
            for ((p, json), row) in points.into_iter().zip(jsons).zip(rows) {
                inner.upserted(collection.clone(), p.id, row, &p.payload, json.into());
            }
            inner.rewrite_if_mostly_dead()
        })
        .await
    }

    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        self.write(|inner| {
            let c = inner.collection(collection)?;
            let ids: Vec<&String> = ids.iter().filter(|id| c.contains(id)).collect();
            inner.append(ids.iter().map(|id| Record::Delete { collection, id }))?;
            inner.applied(
                ids.iter()
                    .map(|id| Entry::Delete {
                        collection: collection.to_owned(),
                        id: (*id).clone(),
                    })
                    .collect(),
            )
        })
    }

    /// Deletes, then rewrites the log so that the points' vectors and payloads are in no
    /// file any more (a plain delete appends a tombstone until the next rewrite).
    async fn erase(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        self.delete(collection, ids).await?;
        self.write(Inner::rewrite)
    }

    async fn contains(&self, collection: &str, id: &str) -> Result<bool, StoreError> {
        self.read(|inner| Ok(inner.collection(collection)?.contains(id)))
    }

    async fn search(&self, collection: &str, query: &Query) -> Result<Vec<Hit>, StoreError> {
        let (collection, query) = (collection.to_owned(), query.clone());
        self.off_runtime(move |inner| {
            let inner = inner.read().unwrap_or_else(|p| p.into_inner());
            let c = inner.collection(&collection)?;
            if query.vector.len() != c.dimension {
                return Err(StoreError::Dimension {
                    collection,
                    expected: c.dimension,
                    got: query.vector.len(),
                });
            }
            Ok(c.search(&query))
        })
        .await
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        self.read(|inner| Ok(inner.collection(collection)?.len()))
    }
}
