//! The embedded store's file: an append-only log of binary records, each framed by its
//! length and a CRC-32 of its body, replayed at open.
//!
//! ```text
//! file    = "JMSTORE1" record*
//! record  = len:u32 crc32(body):u32 body            (little-endian)
//! body    = 1 name dimension:u32 fields:u32 field*fields rows:u32   a collection
//!         | 2 collection id count:u32 f32*count payload           a point upserted
//!         | 3 collection id                                       a point deleted
//! name, field, collection, id = len:u32 utf-8 bytes;  payload = len:u32 JSON object
//! ```
//!
//! A crash mid-append leaves a torn last record: its length runs past the end or its
//! checksum fails, and replay stops there; what precedes it is intact and the file is
//! cut back to it. Vectors are raw floats (a quarter of their JSON text, and read
//! without parsing); payloads stay JSON, as every backend takes them. A collection
//! record names its indexed payload fields and, written by a rewrite, how many points
//! follow (so a replay sizes its columns once).
//!
//! Data dirs written before this format hold `vectors.jsonl` (JSON lines): it is
//! replayed once and rewritten in this format.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::super::StoreError;

pub(super) const FILE: &str = "vectors.bin";
pub(super) const LEGACY_FILE: &str = "vectors.jsonl";
const MAGIC: &[u8; 8] = b"JMSTORE1";
/// No record is larger than this; a length beyond it is damage, not data.
const MAX_RECORD: usize = 256 << 20;

const COLLECTION: u8 = 1;
const UPSERT: u8 = 2;
const DELETE: u8 = 3;

/// A record to append, borrowing what it writes.
pub(super) enum Record<'a> {
    Collection {
        name: &'a str,
        dimension: usize,
        indexed: &'a [String],
        rows: usize,
    },
    Upsert {
        collection: &'a str,
        id: &'a str,
        vector: &'a [f32],
        /// A JSON object.
        payload: &'a [u8],
    },
    Delete {
        collection: &'a str,
        id: &'a str,
    },
}

/// A record read back.
#[derive(Debug, PartialEq)]
pub(super) enum Entry {
    Collection {
        name: String,
        dimension: usize,
        indexed: Vec<String>,
        rows: usize,
    },
    Upsert {
        collection: String,
        id: String,
        vector: Vec<f32>,
        /// A JSON object.
        payload: Vec<u8>,
        /// The payload decoded (`None`: not a JSON object, which no writer writes).
        decoded: Option<Map<String, Value>>,
    },
    Delete {
        collection: String,
        id: String,
    },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends the framed record to `out`.
pub(super) fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    match record {
        Record::Collection {
            name,
            dimension,
            indexed,
            rows,
        } => {
            out.push(COLLECTION);
            put_str(out, name);
            out.extend_from_slice(&(*dimension as u32).to_le_bytes());
            out.extend_from_slice(&(indexed.len() as u32).to_le_bytes());
            for field in *indexed {
                put_str(out, field);
            }
            out.extend_from_slice(&(*rows as u32).to_le_bytes());
        }
        Record::Upsert {
            collection,
            id,
            vector,
            payload,
        } => {
            out.push(UPSERT);
            put_str(out, collection);
            put_str(out, id);
            out.extend_from_slice(&(vector.len() as u32).to_le_bytes());
            for x in *vector {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(payload);
        }
        Record::Delete { collection, id } => {
            out.push(DELETE);
            put_str(out, collection);
            put_str(out, id);
        }
    }
    let body = &out[start + 8..];
    let (len, crc) = (body.len() as u32, crc32fast::hash(body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads a body's fields in order; `None` when it ends early or holds nonsense.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u32()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode(body: &[u8]) -> Option<Entry> {
    let (&tag, rest) = body.split_first()?;
    let mut f = Fields(rest);
    let entry = match tag {
        COLLECTION => {
            let name = f.str()?;
            let dimension = f.u32()?;
            let fields = f.u32()?;
            let indexed = (0..fields).map(|_| f.str()).collect::<Option<_>>()?;
            Entry::Collection {
                name,
                dimension,
                indexed,
                rows: f.u32()?,
            }
        }
        UPSERT => {
            let collection = f.str()?;
            let id = f.str()?;
            let count = f.u32()?;
            let vector = f
                .take(count.checked_mul(4)?)?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let n = f.u32()?;
            let payload = f.take(n)?.to_vec();
            Entry::Upsert {
                collection,
                id,
                vector,
                decoded: serde_json::from_slice(&payload).ok(),
                payload,
            }
        }
        DELETE => Entry::Delete {
            collection: f.str()?,
            id: f.str()?,
        },
        _ => return None,
    };
    f.0.is_empty().then_some(entry)
}

/// What a replay found.
pub(super) struct Replayed {
    /// Bytes of intact records (from the start of the file); a torn or damaged tail
    /// begins here.
    pub valid_len: u64,
    pub file_len: u64,
}

fn log_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Log {
        path: path.to_owned(),
        source,
    }
}

/// Records read, then checked and decoded on every core, per batch.
const REPLAY_BATCH: usize = 4096;

/// Replays the log at `path` (which must exist) into `apply`, record by record in
/// order, stopping at the first torn or damaged one. Checksums, decoding (the payloads'
/// JSON above all) and `prepare` run on every core, a batch of records at a time.
pub(super) fn replay<T: Send>(
    path: &Path,
    prepare: impl Fn(Entry) -> T + Sync,
    mut apply: impl FnMut(T),
) -> Result<Replayed, StoreError> {
    let err = log_error(path);
    let file = std::fs::File::open(path).map_err(&err)?;
    let file_len = file.metadata().map_err(&err)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    if file_len < 8 {
        return Ok(Replayed {
            valid_len: 0,
            file_len,
        });
    }
    reader.read_exact(&mut magic).map_err(&err)?;
    if &magic != MAGIC {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a jobmatch store log (bad magic)",
        )));
    }
    use rayon::prelude::*;
    let mut valid_len = 8u64;
    let mut read_len = 8u64;
    let mut header = [0u8; 8];
    let mut batch: Vec<(u32, Vec<u8>)> = Vec::with_capacity(REPLAY_BATCH);
    loop {
        // Whole records, as many as the batch takes or the file holds.
        batch.clear();
        let mut torn = false;
        while batch.len() < REPLAY_BATCH {
            if file_len - read_len < 8 {
                torn = file_len > read_len;
                break;
            }
            reader.read_exact(&mut header).map_err(&err)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len > MAX_RECORD || (file_len - read_len - 8) < len as u64 {
                torn = true;
                break;
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).map_err(&err)?;
            read_len += 8 + len as u64;
            batch.push((crc, body));
        }
        let entries: Vec<Option<T>> = batch
            .par_iter()
            .map(|(crc, body)| {
                (crc32fast::hash(body) == *crc)
                    .then(|| decode(body))
                    .flatten()
                    .map(&prepare)
            })
            .collect();
        for ((_, body), entry) in batch.iter().zip(entries) {
            let Some(entry) = entry else {
                return Ok(Replayed {
                    valid_len,
                    file_len,
                });
            };
            apply(entry);
            valid_len += 8 + body.len() as u64;
        }
        if torn || batch.len() < REPLAY_BATCH {
            break;
        }
    }
    Ok(Replayed {
        valid_len,
        file_len,
    })
}

/// Replays a data dir's JSON-lines log of the format before this one.
pub(super) fn replay_legacy(path: &Path, mut apply: impl FnMut(Entry)) -> Result<(), StoreError> {
    #[derive(serde::Deserialize)]
    struct LegacyPoint {
        id: String,
        vector: Vec<f32>,
        payload: Map<String, Value>,
    }
    #[derive(serde::Deserialize)]
    #[serde(tag = "op", rename_all = "lowercase")]
    enum Legacy {
        Collection {
            name: String,
            dimension: usize,
        },
        Upsert {
            collection: String,
            point: LegacyPoint,
        },
        Delete {
            collection: String,
            id: String,
        },
    }
    use std::io::BufRead;
    let err = log_error(path);
    let file = std::fs::File::open(path).map_err(&err)?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        match serde_json::from_str::<Legacy>(&line.map_err(&err)?) {
            Ok(Legacy::Collection { name, dimension }) => apply(Entry::Collection {
                name,
                dimension,
                indexed: Vec::new(),
                rows: 0,
            }),
            Ok(Legacy::Upsert { collection, point }) => apply(Entry::Upsert {
                collection,
                id: point.id,
                vector: point.vector,
                payload: serde_json::to_vec(&point.payload).unwrap_or_default(),
                decoded: Some(point.payload),
            }),
            Ok(Legacy::Delete { collection, id }) => apply(Entry::Delete { collection, id }),
            // A torn last line after a crash: everything before it is intact.
            Err(e) => {
                tracing::warn!(path = %path.display(), line = n + 1, error = %e, "skipping unreadable store log line")
            }
        }
    }
    Ok(())
}

/// The open log, appended to record by record.
pub(super) struct Log {
    path: PathBuf,
    file: std::fs::File,
    buf: Vec<u8>,
    /// Bytes of whole records in the file: where the next append goes.
    len: u64,
}

impl Log {
    /// Opens the log at `path` for appending after its first `valid_len` bytes (what
    /// follows, a torn record, is cut off).
    pub fn append_to(path: &Path, valid_len: u64) -> Result<Self, StoreError> {
        let err = log_error(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(&err)?;
        file.set_len(valid_len).map_err(&err)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(valid_len)).map_err(&err)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            buf: Vec::new(),
            len: valid_len,
        })
    }

    /// Writes the whole log anew from `records` (to a temporary file, synced, then
    /// renamed over the log) and opens it for appending: nothing else survives in it.
    pub fn rewrite<'a>(
        path: &Path,
        records: impl Iterator<Item = Record<'a>>,
    ) -> Result<Self, StoreError> {
        let err = log_error(path);
        let tmp = path.with_extension("bin.tmp");
        {
            let mut out =
                BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).map_err(&err)?);
            out.write_all(MAGIC).map_err(&err)?;
            let mut buf = Vec::new();
            for record in records {
                buf.clear();
                encode(&record, &mut buf);
                out.write_all(&buf).map_err(&err)?;
            }
            out.flush().map_err(&err)?;
            out.get_ref().sync_all().map_err(&err)?;
        }
        std::fs::rename(&tmp, path).map_err(&err)?;
        if let Some(dir) = path.parent()
            && let Ok(dir) = std::fs::File::open(dir)
        {
            // The rename itself durable, where the platform allows it.
            let _ = dir.sync_all();
        }
        let len = std::fs::metadata(path).map_err(&err)?.len();
        Self::append_to(path, len)
    }

    /// Appends records, in one write, and hands them to the OS (a process crash loses
    /// none of them; a machine crash may lose the last few, never corrupting the rest).
    /// A write that fails (a full disk) is cut back off, so the next append does not
    /// follow a torn record, where a replay would stop.
    pub fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = Record<'a>>,
    ) -> Result<(), StoreError> {
        self.buf.clear();
        for record in records {
            encode(&record, &mut self.buf);
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                let len = self.len;
                let cut = self.file.set_len(len).and_then(|()| {
                    std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(len)).map(|_| ())
                });
                if let Err(cut) = cut {
                    tracing::error!(path = %self.path.display(), error = %cut, "could not cut a failed append off the store log; a restart will");
                }
                Err(log_error(&self.path)(e))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Keeps the bytes of a log from `from` on beside it (`vectors.bin.damaged-<from>`)
/// before they are cut off: a torn last append is a few records, but damage earlier in
/// the file would cut off everything after it, which is kept there to be recovered.
pub(super) fn keep_tail(path: &Path, from: u64) -> Result<PathBuf, StoreError> {
    let err = log_error(path);
    let kept = path.with_extension(format!("bin.damaged-{from}"));
    let mut file = std::fs::File::open(path).map_err(&err)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(from)).map_err(&err)?;
    let mut out = std::fs::File::create(&kept).map_err(&err)?;
    std::io::copy(&mut file, &mut out).map_err(&err)?;
    out.sync_all().map_err(&err)?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Vec<u8> {
        br#"{"city":"berlin","least":0.5,"tags":["a","b"]}"#.to_vec()
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(FILE);
        let p = payload();
        let indexed = ["city".to_owned()];
        let records = [
            Record::Collection {
                name: "jobs",
                dimension: 3,
                indexed: &indexed,
                rows: 1,
            },
            Record::Upsert {
                collection: "jobs",
                id: "a",
                vector: &[1.0, -0.5, 0.25],
                payload: &p,
            },
            Record::Delete {
                collection: "jobs",
                id: "a",
            },
        ];
        let mut log = Log::rewrite(&path, records.into_iter()).expect("write");
        drop(log);
        let mut entries = Vec::new();
        let replayed = replay(&path, |e| e, |e| entries.push(e)).expect("replay");
        assert_eq!(replayed.valid_len, replayed.file_len);
        assert_eq!(
            entries,
            [
                Entry::Collection {
                    name: "jobs".into(),
                    dimension: 3,
                    indexed: vec!["city".into()],
                    rows: 1,
                },
                Entry::Upsert {
                    collection: "jobs".into(),
                    id: "a".into(),
                    vector: vec![1.0, -0.5, 0.25],
                    payload: p.clone(),
                    decoded: serde_json::from_slice(&p).ok(),
                },
                Entry::Delete {
                    collection: "jobs".into(),
                    id: "a".into()
                },
            ]
        );
        let intact = replayed.valid_len;

        // Every way a last append can be torn: each prefix of one more record.
        let mut torn = Vec::new();
        encode(
            &Record::Upsert {
                collection: "jobs",
                id: "b",
                vector: &[0.0, 1.0, 0.0],
                payload: &p,
            },
            &mut torn,
        );
        for cut in 0..torn.len() {
            let mut bytes = std::fs::read(&path).expect("read");
            bytes.truncate(intact as usize);
            bytes.extend_from_slice(&torn[..cut]);
            std::fs::write(&path, &bytes).expect("write");
            let mut n = 0;
            let replayed = replay(&path, |e| e, |_| n += 1).expect("replay");
            assert_eq!((n, replayed.valid_len), (3, intact), "cut at {cut}");
        }
        // A flipped bit in the body fails its checksum.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.truncate(intact as usize);
        let mut damaged = torn.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x10;
        bytes.extend_from_slice(&damaged);
        std::fs::write(&path, &bytes).expect("write");
        let mut n = 0;
        assert_eq!(
            replay(&path, |e| e, |_| n += 1).expect("replay").valid_len,
            intact
        );
        assert_eq!(n, 3);

        // Appending after the intact part cuts the damage off and goes on from there.
        log = Log::append_to(&path, intact).expect("append");
        log.append([Record::Delete {
            collection: "jobs",
            id: "b",
        }])
        .expect("append");
        drop(log);
        let mut n = 0;
        let replayed = replay(&path, |e| e, |_| n += 1).expect("replay");
        assert_eq!((n, replayed.valid_len), (4, replayed.file_len));
    }
}
