//! The embedded vector store: exact (brute-force) cosine search with payload filters,
//! in memory, optionally persisted to an append-only JSON-lines log that is replayed
//! and compacted at open.
//!
//! Chosen over `qdrant-edge` (see DESIGN.md, "Vector store"): exact search over the
//! postings one process sees (tens of thousands) takes milliseconds, the same filter
//! semantics as the Qdrant backend are a few dozen lines, and it adds nothing to build
//! time, where `qdrant-edge` 0.7 adds minutes and newer versions need a newer rustc.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Hit, Point, Query, StoreError, VectorStore};

/// One collection: unit-length vectors in one contiguous matrix (a search streams
/// through it), ids and payloads beside it, and an index from id to row.
#[derive(Default)]
struct Collection {
    dimension: usize,
    ids: Vec<String>,
    vectors: Vec<f32>,
    payloads: Vec<Map<String, Value>>,
    rows: HashMap<String, usize>,
}

impl Collection {
    fn upsert(&mut self, point: Point) {
        let vector = unit(point.vector);
        match self.rows.get(&point.id) {
            Some(&row) => {
                let d = self.dimension;
                self.vectors[row * d..(row + 1) * d].copy_from_slice(&vector);
                self.payloads[row] = point.payload;
            }
            None => {
                self.rows.insert(point.id.clone(), self.ids.len());
                self.ids.push(point.id);
                self.vectors.extend_from_slice(&vector);
                self.payloads.push(point.payload);
            }
        }
    }

    fn remove(&mut self, id: &str) {
        let Some(row) = self.rows.remove(id) else {
            return;
        };
        let d = self.dimension;
        let last = self.ids.len() - 1;
        if row != last {
            self.vectors.copy_within(last * d..(last + 1) * d, row * d);
            self.rows.insert(self.ids[last].clone(), row);
        }
        self.vectors.truncate(last * d);
        self.ids.swap_remove(row);
        self.payloads.swap_remove(row);
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn points(&self) -> impl Iterator<Item = Point> + '_ {
        let d = self.dimension.max(1);
        self.ids
            .iter()
            .zip(self.vectors.chunks_exact(d))
            .zip(&self.payloads)
            .map(|((id, vector), payload)| Point {
                id: id.clone(),
                vector: vector.to_vec(),
                payload: payload.clone(),
            })
    }
}

/// The vector scaled to length 1 (a zero vector stays zero and scores 0 with anything),
/// so a dot product is the cosine.
fn unit(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum LogEntry {
    Collection { name: String, dimension: usize },
    Upsert { collection: String, point: Point },
    Delete { collection: String, id: String },
}

struct Inner {
    collections: BTreeMap<String, Collection>,
    log: Option<(PathBuf, BufWriter<std::fs::File>)>,
}

pub struct EmbeddedStore {
    inner: RwLock<Inner>,
}

impl EmbeddedStore {
    /// A store that forgets everything when dropped.
    pub fn in_memory() -> Self {
        Self {
            inner: RwLock::new(Inner {
                collections: BTreeMap::new(),
                log: None,
            }),
        }
    }

    /// Opens (or creates) a store persisted under `dir`, replaying its log.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("vectors.jsonl");
        let err = |source| StoreError::Log {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut collections = BTreeMap::new();
        if path.exists() {
            let file = std::fs::File::open(&path).map_err(err)?;
            for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.map_err(err)?;
                match serde_json::from_str::<LogEntry>(&line) {
                    Ok(entry) => apply(&mut collections, entry),
                    // A torn last line after a crash: everything before it is intact.
                    Err(e) => {
                        tracing::warn!(path = %path.display(), line = n + 1, error = %e, "skipping unreadable store log line")
                    }
                }
            }
        }
        let log = compact(&path, &collections)?;
        Ok(Self {
            inner: RwLock::new(Inner {
                collections,
                log: Some((path, log)),
            }),
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
}

/// Rewrites the log at `path` as the live state (to a temporary file, synced, then
/// renamed over it) and opens it for appending: nothing deleted survives in it.
fn compact(
    path: &Path,
    collections: &BTreeMap<String, Collection>,
) -> Result<BufWriter<std::fs::File>, StoreError> {
    let err = |source| StoreError::Log {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut out = BufWriter::new(std::fs::File::create(&tmp).map_err(err)?);
        for (name, c) in collections {
            write_entry(
                &mut out,
                &LogEntry::Collection {
                    name: name.clone(),
                    dimension: c.dimension,
                },
            )
            .map_err(err)?;
            for point in c.points() {
                write_entry(
                    &mut out,
                    &LogEntry::Upsert {
                        collection: name.clone(),
                        point,
                    },
                )
                .map_err(err)?;
            }
        }
        out.flush().map_err(err)?;
        out.get_ref().sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(err)?;
    Ok(BufWriter::new(file))
}

fn write_entry(out: &mut impl Write, entry: &LogEntry) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, entry)?;
    out.write_all(b"\n")
}

fn apply(collections: &mut BTreeMap<String, Collection>, entry: LogEntry) {
    match entry {
        LogEntry::Collection { name, dimension } => {
            collections.entry(name).or_default().dimension = dimension;
        }
        LogEntry::Upsert { collection, point } => {
            let c = collections.entry(collection).or_default();
            if c.dimension == 0 {
                c.dimension = point.vector.len();
            }
            if point.vector.len() == c.dimension {
                c.upsert(point);
            }
        }
        LogEntry::Delete { collection, id } => {
            if let Some(c) = collections.get_mut(&collection) {
                c.remove(&id);
            }
        }
    }
}

impl Inner {
    fn record(&mut self, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        if let Some((path, out)) = &mut self.log {
            let err = |source| StoreError::Log {
                path: path.clone(),
                source,
            };
            for entry in &entries {
                write_entry(out, entry).map_err(err)?;
            }
            out.flush().map_err(err)?;
        }
        for entry in entries {
            apply(&mut self.collections, entry);
        }
        Ok(())
    }

    fn collection(&self, name: &str) -> Result<&Collection, StoreError> {
        self.collections
            .get(name)
            .ok_or_else(|| StoreError::NoCollection(name.to_owned()))
    }
}

/// Orders candidates best first, ties by id (so results are stable).
fn best_first(c: &Collection) -> impl Fn(&(f32, usize), &(f32, usize)) -> std::cmp::Ordering {
    |a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| c.ids[a.1].cmp(&c.ids[b.1]))
    }
}

fn search(c: &Collection, collection: &str, query: &Query) -> Result<Vec<Hit>, StoreError> {
    if query.vector.len() != c.dimension {
        return Err(StoreError::Dimension {
            collection: collection.to_owned(),
            expected: c.dimension,
            got: query.vector.len(),
        });
    }
    if query.limit == 0 || c.len() == 0 {
        return Ok(Vec::new());
    }
    let vector = unit(query.vector.clone());
    let mut scores = Vec::new();
    jobmatch_kernels::dot::dot_rows(&vector, &c.vectors, &mut scores);
    let mut candidates: Vec<(f32, usize)> = scores
        .into_iter()
        .enumerate()
        .filter(|&(row, score)| query.scores_enough(score, &c.payloads[row]))
        .map(|(row, score)| (score, row))
        .collect();
    // Best first, the filter checked only as far as needed: rounds of a partial sort,
    // each four times larger, until `limit` candidates pass.
    let order = best_first(c);
    let mut hits = Vec::with_capacity(query.limit.min(candidates.len()));
    let mut rest = &mut candidates[..];
    let mut take = (query.limit * 2).max(32);
    while hits.len() < query.limit && !rest.is_empty() {
        let m = take.min(rest.len());
        if m < rest.len() {
            rest.select_nth_unstable_by(m - 1, &order);
        }
        let (head, tail) = rest.split_at_mut(m);
        head.sort_unstable_by(&order);
        for &(score, row) in head.iter() {
            if query.filter.accepts(&c.payloads[row]) {
                hits.push(Hit {
                    id: c.ids[row].clone(),
                    score,
                    payload: c.payloads[row].clone(),
                });
                if hits.len() == query.limit {
                    break;
                }
            }
        }
        rest = tail;
        take = take.saturating_mul(4);
    }
    Ok(hits)
}

impl VectorStore for EmbeddedStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        dimension: usize,
        _indexed: &[&str],
    ) -> Result<(), StoreError> {
        self.write(|inner| match inner.collections.get(collection) {
            Some(c) if c.dimension == dimension => Ok(()),
            Some(c) => Err(StoreError::Dimension {
                collection: collection.to_owned(),
                expected: c.dimension,
                got: dimension,
            }),
            None => inner.record(vec![LogEntry::Collection {
                name: collection.to_owned(),
                dimension,
            }]),
        })
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        self.write(|inner| {
            let expected = inner.collection(collection)?.dimension;
            if let Some(bad) = points.iter().find(|p| p.vector.len() != expected) {
                return Err(StoreError::Dimension {
                    collection: collection.to_owned(),
                    expected,
                    got: bad.vector.len(),
                });
            }
            inner.record(
                points
                    .into_iter()
                    .map(|point| LogEntry::Upsert {
                        collection: collection.to_owned(),
                        point,
                    })
                    .collect(),
            )
        })
    }

    async fn delete(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        self.write(|inner| {
            let c = inner.collection(collection)?;
            let entries = ids
                .iter()
                .filter(|id| c.rows.contains_key(*id))
                .map(|id| LogEntry::Delete {
                    collection: collection.to_owned(),
                    id: id.clone(),
                })
                .collect();
            inner.record(entries)
        })
    }

    /// Deletes, then rewrites the log so that the points' vectors and payloads are in no
    /// file any more (a plain delete appends a tombstone until the next open).
    async fn erase(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        self.delete(collection, ids).await?;
        self.write(|inner| {
            if let Some((path, out)) = &mut inner.log {
                *out = compact(path, &inner.collections)?;
            }
            Ok(())
        })
    }

    async fn contains(&self, collection: &str, id: &str) -> Result<bool, StoreError> {
        self.read(|inner| Ok(inner.collection(collection)?.rows.contains_key(id)))
    }

    async fn search(&self, collection: &str, query: &Query) -> Result<Vec<Hit>, StoreError> {
        self.read(|inner| search(inner.collection(collection)?, collection, query))
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        self.read(|inner| Ok(inner.collection(collection)?.len()))
    }
}
