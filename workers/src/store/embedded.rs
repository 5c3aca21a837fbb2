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
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{Hit, Point, Query, StoreError, VectorStore, cosine};

#[derive(Default)]
struct Collection {
    dimension: usize,
    points: HashMap<String, Point>,
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
    inner: Mutex<Inner>,
}

impl EmbeddedStore {
    /// A store that forgets everything when dropped.
    pub fn in_memory() -> Self {
        Self {
            inner: Mutex::new(Inner {
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
        // Compact: rewrite the live state, then append from there.
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut out = BufWriter::new(std::fs::File::create(&tmp).map_err(err)?);
            for (name, c) in &collections {
                write_entry(
                    &mut out,
                    &LogEntry::Collection {
                        name: name.clone(),
                        dimension: c.dimension,
                    },
                )
                .map_err(err)?;
                for point in c.points.values() {
                    write_entry(
                        &mut out,
                        &LogEntry::Upsert {
                            collection: name.clone(),
                            point: point.clone(),
                        },
                    )
                    .map_err(err)?;
                }
            }
            out.flush().map_err(err)?;
            out.get_ref().sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &path).map_err(err)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(err)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                collections,
                log: Some((path, BufWriter::new(file))),
            }),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A poisoned lock means a panic mid-update; the map itself is still consistent.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner)
    }
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
            collections
                .entry(collection)
                .or_default()
                .points
                .insert(point.id.clone(), point);
        }
        LogEntry::Delete { collection, id } => {
            if let Some(c) = collections.get_mut(&collection) {
                c.points.remove(&id);
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

impl VectorStore for EmbeddedStore {
    async fn ensure_collection(
        &self,
        collection: &str,
        dimension: usize,
        _indexed: &[&str],
    ) -> Result<(), StoreError> {
        self.with(|inner| match inner.collections.get(collection) {
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
        self.with(|inner| {
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
        self.with(|inner| {
            let c = inner.collection(collection)?;
            let entries = ids
                .iter()
                .filter(|id| c.points.contains_key(*id))
                .map(|id| LogEntry::Delete {
                    collection: collection.to_owned(),
                    id: id.clone(),
                })
                .collect();
            inner.record(entries)
        })
    }

    async fn search(&self, collection: &str, query: &Query) -> Result<Vec<Hit>, StoreError> {
        self.with(|inner| {
            let c = inner.collection(collection)?;
            if query.vector.len() != c.dimension {
                return Err(StoreError::Dimension {
                    collection: collection.to_owned(),
                    expected: c.dimension,
                    got: query.vector.len(),
                });
            }
            let mut hits: Vec<Hit> = c
                .points
                .values()
                .filter(|p| query.filter.accepts(&p.payload))
                .map(|p| (p, cosine(&query.vector, &p.vector)))
                .filter(|(_, score)| query.min_score.is_none_or(|min| *score >= min))
                .map(|(p, score)| Hit {
                    id: p.id.clone(),
                    score,
                    payload: p.payload.clone(),
                })
                .collect();
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
            hits.truncate(query.limit);
            Ok(hits)
        })
    }

    async fn count(&self, collection: &str) -> Result<usize, StoreError> {
        self.with(|inner| Ok(inner.collection(collection)?.points.len()))
    }
}
