//! One collection in memory and its exact search.
//!
//! Rows are held in columns: unit-length f32 vectors (the truth every score is), the
//! same vectors in int8 with a scale and an error bound per row (what a thresholded scan
//! reads: a quarter of the memory traffic), the payloads as compact JSON (decoded only
//! for the hits a search returns), the keywords of the indexed payload fields as
//! numbers (what a filter checks, see [`super::keywords`]), and each top-level numeric
//! payload field as an f32 column (a per-point threshold is read from there).
//!
//! A thresholded search is exact: a row's int8 score is within its error bound of the
//! f32 one, so only rows whose bound reaches the threshold are scored again in f32, by
//! the same kernel the f32 scan uses, and only that score decides.

use jobmatch_kernels::dot;
use rayon::prelude::*;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::super::{Hit, Query};
use super::keywords::{Compiled, Keywords};

/// Rows scored per task; a collection of more than [`PARALLEL_ROWS`] is scanned on
/// every core, chunk by chunk.
const CHUNK_ROWS: usize = 4096;
const PARALLEL_ROWS: usize = 4 * CHUNK_ROWS;
const PARALLEL_HITS: usize = 256;
/// Added to every row's error bound: the f32 rounding of either dot product (at most
/// a few 1e-6 for unit vectors of a few hundred dimensions).
const ROUNDING_SLACK: f32 = 1e-4;

#[derive(Default)]
pub(super) struct Collection {
    pub dimension: usize,
    ids: Vec<String>,
    vectors: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// For every unit query q: |q·v − scale·(q·codes)| ≤ error (the norm of the row's
    /// quantization residual, plus [`ROUNDING_SLACK`]).
    errors: Vec<f32>,
    /// Each row's payload, a JSON object.
    payloads: Vec<Box<[u8]>>,
    /// Each row's keywords in indexed fields, as `index` numbers them (sorted).
    keywords: Vec<Box<[u32]>>,
    index: Keywords,
    /// Top-level numeric payload fields, a value per row (NaN where a row has none).
    numbers: HashMap<String, Vec<f32>>,
    rows: HashMap<String, usize>,
}

/// A point's vector as a collection holds it: unit length, and in int8 with its scale
/// and error bound. Computed apart from the collection (a replay does it on every core).
pub(super) struct Row {
    vector: Vec<f32>,
    codes: Vec<i8>,
    scale: f32,
    error: f32,
}

impl Row {
    pub fn of(vector: &[f32]) -> Self {
        let vector = unit(vector);
        let max = vector.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        // Rounded half away from zero, by a cast (not libm's `roundf` per value), in a
        // loop the compiler vectorizes; any code near the value will do, the bound below
        // is computed from the one chosen.
        let codes: Vec<i8> = vector
            .iter()
            .map(|&x| (x * inverse + 0.5f32.copysign(x)).clamp(-127.0, 127.0) as i8)
            .collect();
        let residual: f32 = vector
            .iter()
            .zip(&codes)
            .map(|(&x, &code)| (x - f32::from(code) * scale).powi(2))
            .sum();
        Self {
            vector,
            codes,
            scale,
            // The sum's own rounding (relative, a few 1e-5 at most) is far inside the slack.
            error: residual.sqrt() + ROUNDING_SLACK,
        }
    }

    pub fn dimension(&self) -> usize {
        self.vector.len()
    }
}

/// The vector scaled to length 1 (a zero vector stays zero and scores 0 with anything),
/// so a dot product is the cosine.
fn unit(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter().map(|x| x / norm).collect()
    } else {
        vector.to_vec()
    }
}

impl Collection {
    pub fn new(dimension: usize, capacity: usize) -> Self {
        let d = dimension;
        Self {
            dimension,
            ids: Vec::with_capacity(capacity),
            vectors: Vec::with_capacity(capacity * d),
            codes: Vec::with_capacity(capacity * d),
            scales: Vec::with_capacity(capacity),
            errors: Vec::with_capacity(capacity),
            payloads: Vec::with_capacity(capacity),
            keywords: Vec::with_capacity(capacity),
            rows: HashMap::with_capacity(capacity),
            ..Default::default()
        }
    }

    /// The payload fields whose keywords are indexed.
    pub fn indexed(&self) -> &[String] {
        self.index.fields()
    }

    /// Indexes more payload fields (the rows stored already too); whether any was new.
    pub fn index_fields<S: AsRef<str>>(&mut self, fields: &[S]) -> bool {
        if !self.index.add_fields(fields) {
            return false;
        }
        for (keywords, payload) in self.keywords.iter_mut().zip(&self.payloads) {
            *keywords = self.index.of(&decode(payload));
        }
        true
    }

    /// Inserts or replaces a point (its row of `dimension` values), its payload given
    /// both decoded and as the JSON it was stored as; whether it replaced one.
    pub fn upsert(
        &mut self,
        id: String,
        row: Row,
        payload: &Map<String, Value>,
        json: Box<[u8]>,
    ) -> bool {
        let Row {
            vector,
            codes,
            scale,
            error,
        } = row;
        let d = self.dimension;
        let (row, replaced) = match self.rows.get(&id) {
            Some(&row) => {
                self.vectors[row * d..(row + 1) * d].copy_from_slice(&vector);
                self.codes[row * d..(row + 1) * d].copy_from_slice(&codes);
                self.scales[row] = scale;
                self.errors[row] = error;
                (row, true)
            }
            None => {
                let row = self.ids.len();
                self.rows.insert(id.clone(), row);
                self.ids.push(id);
                self.vectors.extend_from_slice(&vector);
                self.codes.extend_from_slice(&codes);
                self.scales.push(scale);
                self.errors.push(error);
                self.payloads.push(Box::default());
                self.keywords.push(Box::default());
                for column in self.numbers.values_mut() {
                    column.push(f32::NAN);
                }
                (row, false)
            }
        };
        for column in self.numbers.values_mut() {
            column[row] = f32::NAN;
        }
        for (key, value) in payload {
            if let Some(number) = value.as_f64() {
                let rows = self.ids.len();
                let column = self
                    .numbers
                    .entry(key.clone())
                    .or_insert_with(|| vec![f32::NAN; rows]);
                column[row] = number as f32;
            }
        }
        self.keywords[row] = self.index.of(payload);
        self.payloads[row] = json;
        replaced
    }

    /// Removes a point; whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(row) = self.rows.remove(id) else {
            return false;
        };
        let d = self.dimension;
        let last = self.ids.len() - 1;
        if row != last {
            self.vectors.copy_within(last * d..(last + 1) * d, row * d);
            self.codes.copy_within(last * d..(last + 1) * d, row * d);
            self.rows.insert(self.ids[last].clone(), row);
        }
        self.vectors.truncate(last * d);
        self.codes.truncate(last * d);
        self.ids.swap_remove(row);
        self.scales.swap_remove(row);
        self.errors.swap_remove(row);
        self.payloads.swap_remove(row);
        self.keywords.swap_remove(row);
        for column in self.numbers.values_mut() {
            column.swap_remove(row);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.rows.contains_key(id)
    }

    /// Every point: its id, unit vector and payload (JSON).
    pub fn points(&self) -> impl Iterator<Item = (&str, &[f32], &[u8])> + '_ {
        let d = self.dimension.max(1);
        self.ids
            .iter()
            .zip(self.vectors.chunks_exact(d))
            .zip(&self.payloads)
            .map(|((id, vector), payload)| (id.as_str(), vector, &payload[..]))
    }

    /// The best `query.limit` points passing its thresholds and filter, best first
    /// (ties by id). The query's vector must have `dimension` values.
    pub fn search(&self, query: &Query) -> Vec<Hit> {
        if query.limit == 0 || self.len() == 0 {
            return Vec::new();
        }
        let vector = unit(&query.vector);
        let own = query.own_threshold.and_then(|f| self.numbers.get(f));
        let scan = Scan {
            c: self,
            query,
            vector: &vector,
            own: own.map(Vec::as_slice),
            filter: self.index.compile(&query.filter),
        };
        let chunks = self.len().div_ceil(CHUNK_ROWS);
        let mut ranked: Vec<Ranked> = if self.len() >= PARALLEL_ROWS {
            (0..chunks)
                .into_par_iter()
                .map(|chunk| scan.chunk(chunk))
                .reduce(Best::default, Best::merge)
        } else {
            (0..chunks)
                .map(|chunk| scan.chunk(chunk))
                .fold(Best::default(), Best::merge)
        }
        .into_sorted(query.limit);
        ranked.truncate(query.limit);
        let hit = |r: &Ranked| Hit {
            id: r.id.to_owned(),
            score: r.score,
            payload: decode(&self.payloads[r.row]).into(),
        };
        // Thousands of hits (a job against a million subscriptions) are decoded on
        // every core.
        if ranked.len() >= PARALLEL_HITS {
            ranked.par_iter().map(hit).collect()
        } else {
            ranked.iter().map(hit).collect()
        }
    }
}

/// A stored payload decoded (it was written from a JSON object, so it reads back as one).
fn decode(json: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(json).unwrap_or_default()
}

/// One search over a collection.
struct Scan<'a> {
    c: &'a Collection,
    query: &'a Query,
    vector: &'a [f32],
    own: Option<&'a [f32]>,
    /// The query's filter in keyword numbers, where it names indexed fields only.
    filter: Option<Compiled>,
}

impl<'a> Scan<'a> {
    /// The lowest score row `row` may have: the query's and its own threshold.
    fn threshold(&self, row: usize) -> f32 {
        let global = self.query.min_score.unwrap_or(f32::NEG_INFINITY);
        match self.own.map(|own| own[row]) {
            Some(own) if !own.is_nan() => global.max(own),
            _ => global,
        }
    }

    /// The best rows of one chunk passing thresholds and filter.
    fn chunk(&self, chunk: usize) -> Best<'a> {
        let (c, d) = (self.c, self.c.dimension);
        let rows = chunk * CHUNK_ROWS..((chunk + 1) * CHUNK_ROWS).min(c.len());
        let mut best = Best::new(self.query.limit);
        let mut offer = |row: usize, score: f32| {
            if score >= self.threshold(row) {
                best.offer(score, row, &c.ids[row], || match &self.filter {
                    Some(filter) => filter.accepts(&c.keywords[row]),
                    None => self.query.filter.accepts(&decode(&c.payloads[row])),
                });
            }
        };
        let mut scores = Vec::with_capacity(rows.len());
        let thresholded = self.query.min_score.is_some() || self.own.is_some();
        if thresholded {
            // int8 first; f32 only where the error bound reaches the threshold.
            dot::dot_rows_i8(
                self.vector,
                &c.codes[rows.start * d..rows.end * d],
                &c.scales[rows.clone()],
                &mut scores,
            );
            for (row, approx) in rows.zip(scores) {
                if approx + c.errors[row] >= self.threshold(row) {
                    offer(
                        row,
                        dot::dot(self.vector, &c.vectors[row * d..(row + 1) * d]),
                    );
                }
            }
        } else {
            dot::dot_rows(
                self.vector,
                &c.vectors[rows.start * d..rows.end * d],
                &mut scores,
            );
            for (row, score) in rows.zip(scores) {
                offer(row, score);
            }
        }
        best
    }
}

/// A candidate; ordered worst first ("greater" is worse: a lower score, or the same
/// score and a later id), so a max-heap's top is the one to drop.
struct Ranked<'a> {
    score: f32,
    row: usize,
    id: &'a str,
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.id.cmp(other.id))
    }
}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked<'_> {}

/// The best `limit` candidates seen: a bounded heap. The filter is asked only of a
/// candidate that would get in.
#[derive(Default)]
struct Best<'a> {
    limit: usize,
    heap: BinaryHeap<Ranked<'a>>,
}

impl<'a> Best<'a> {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            heap: BinaryHeap::new(),
        }
    }

    fn offer(&mut self, score: f32, row: usize, id: &'a str, accepts: impl FnOnce() -> bool) {
        let candidate = Ranked { score, row, id };
        if self.heap.len() < self.limit {
            if accepts() {
                self.heap.push(candidate);
            }
        } else if self.heap.peek().is_some_and(|worst| candidate < *worst) && accepts() {
            self.heap.pop();
            self.heap.push(candidate);
        }
    }

    fn merge(mut self, mut other: Self) -> Self {
        if self.heap.len() < other.heap.len() {
            std::mem::swap(&mut self, &mut other);
        }
        self.limit = self.limit.max(other.limit);
        for candidate in other.heap {
            if self.heap.len() < self.limit {
                self.heap.push(candidate);
            } else if self.heap.peek().is_some_and(|worst| candidate < *worst) {
                self.heap.pop();
                self.heap.push(candidate);
            }
        }
        self
    }

    /// Best first.
    fn into_sorted(self, limit: usize) -> Vec<Ranked<'a>> {
        let mut ranked = self.heap.into_sorted_vec();
        ranked.truncate(limit);
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Filter;

    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        // A small deterministic generator: enough spread for cosines on both sides of
        // any threshold.
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        (0..n).map(|_| (0..dim).map(|_| next()).collect()).collect()
    }

    fn upsert(c: &mut Collection, id: &str, vector: &[f32], payload: Map<String, Value>) -> bool {
        let json = serde_json::to_vec(&payload)
            .expect("json")
            .into_boxed_slice();
        c.upsert(id.to_owned(), Row::of(vector), &payload, json)
    }

    fn query(vector: Vec<f32>, limit: usize, min: Option<f32>, own: bool) -> Query {
        Query {
            vector,
            filter: Filter::default(),
            limit,
            min_score: min,
            own_threshold: own.then_some("least"),
        }
    }

    /// The int8 scan with rescoring finds exactly what scoring every row in f32 finds,
    /// with the same scores, across many thresholds (rows near each threshold included).
    #[test]
    fn thresholded_search_equals_an_exact_scan() {
        let dim = 48;
        let rows = vectors(PARALLEL_ROWS + 500, dim, 7);
        let mut c = Collection::new(dim, 0);
        for (i, v) in rows.iter().enumerate() {
            let mut payload = Map::new();
            if i % 3 != 0 {
                payload.insert("least".into(), Value::from(0.05 * (i % 7) as f64));
            }
            upsert(&mut c, &format!("p{i:05}"), v, payload);
        }
        for (q, query_vector) in vectors(20, dim, 99).into_iter().enumerate() {
            let unit_query = unit(&query_vector);
            for (min, own) in [(Some(0.2), false), (Some(0.05), true), (None, true)] {
                let hits = c.search(&query(query_vector.clone(), usize::MAX, min, own));
                let mut expected: Vec<(String, f32)> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i, dot::dot(&unit_query, &unit(v))))
                    .filter(|&(i, score)| {
                        let least = (own && i % 3 != 0).then_some((0.05 * (i % 7) as f64) as f32);
                        min.is_none_or(|m| score >= m) && least.is_none_or(|l| score >= l)
                    })
                    .map(|(i, score)| (format!("p{i:05}"), score))
                    .collect();
                expected.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let got: Vec<(String, f32)> = hits.into_iter().map(|h| (h.id, h.score)).collect();
                assert_eq!(got, expected, "query {q}, min {min:?}, own {own}");
            }
        }
    }

    #[test]
    fn top_k_is_the_best_with_ties_by_id_in_parallel_and_not() {
        for n in [100, PARALLEL_ROWS + 10] {
            let mut c = Collection::new(2, 0);
            for i in 0..n {
                // Pairs of equal vectors: ties broken by id.
                let angle = (i / 2) as f32 * 0.0001;
                upsert(
                    &mut c,
                    &format!("p{i:06}"),
                    &[angle.cos(), angle.sin()],
                    Map::new(),
                );
            }
            let hits = c.search(&query(vec![1.0, 0.0], 5, None, false));
            let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            assert_eq!(ids, ["p000000", "p000001", "p000002", "p000003", "p000004"]);
        }
    }

    #[test]
    fn replace_and_remove_keep_columns_in_step() {
        let mut c = Collection::new(2, 0);
        let with = |least: f64| {
            let mut m = Map::new();
            m.insert("least".into(), Value::from(least));
            m
        };
        upsert(&mut c, "a", &[1.0, 0.0], with(0.9));
        upsert(&mut c, "b", &[1.0, 0.1], Map::new());
        upsert(&mut c, "c", &[1.0, 0.2], with(0.99));
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        assert!(upsert(&mut c, "b", &[1.0, 0.1], with(0.999)));
        let hits = c.search(&query(vec![1.0, 0.0], 10, None, true));
        // c scores 0.981 < 0.99, b 0.995 < 0.999: none passes its own threshold.
        assert!(
            hits.is_empty(),
            "{:?}",
            hits.iter().map(|h| &h.id).collect::<Vec<_>>()
        );
        upsert(&mut c, "b", &[1.0, 0.1], Map::new());
        let hits = c.search(&query(vec![1.0, 0.0], 10, None, true));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, "b");
    }

    #[test]
    fn indexed_filters_follow_replaces_removes_and_late_indexing() {
        let mut c = Collection::new(2, 0);
        let city = |name: &str| {
            let mut m = Map::new();
            m.insert("city".into(), Value::from(name));
            m
        };
        upsert(&mut c, "a", &[1.0, 0.0], city("berlin"));
        upsert(&mut c, "b", &[1.0, 0.1], city("paris"));
        let berlin = Query {
            filter: crate::store::Filter {
                must: vec![crate::store::Condition::keyword("city", "berlin")],
                ..Default::default()
            },
            ..query(vec![1.0, 0.0], 10, None, false)
        };
        let ids = |c: &Collection| -> Vec<String> {
            c.search(&berlin).into_iter().map(|h| h.id).collect()
        };
        // Not indexed yet: decoded payloads decide.
        assert_eq!(ids(&c), ["a"]);
        assert!(c.index_fields(&["city"]));
        assert!(!c.index_fields(&["city"]));
        assert_eq!(ids(&c), ["a"]);
        upsert(&mut c, "b", &[1.0, 0.1], city("berlin"));
        upsert(&mut c, "a", &[1.0, 0.0], city("paris"));
        assert_eq!(ids(&c), ["b"]);
        upsert(&mut c, "c", &[1.0, 0.2], city("berlin"));
        assert!(c.remove("b"));
        assert_eq!(ids(&c), ["c"]);
        let hits = c.search(&berlin);
        assert_eq!(hits[0].payload["city"], "berlin");
    }
}
