//! Deduplication in three tiers, as pure data:
//!
//! 1. the native id: a posting seen before is unchanged or, when its content hash
//!    differs, an update;
//! 2. a normalized company + title + location key across boards (legal suffixes,
//!    punctuation and word order do not matter): the same job on a second board is a
//!    duplicate, remembered but not published again;
//! 3. a 64-bit SimHash of the description: a new id whose text is within
//!    [`NEAR_BITS`] bits of a known posting of the same company is a re-post, published
//!    and flagged with the id it repeats.
//!
//! Every fetcher replica keeps one [`DedupIndex`], fed from the postings bucket, so the
//! tiers hold across replicas and restarts. Entries are compact (no id is stored twice)
//! so that a replica can remember millions of postings.

use std::collections::{HashMap, HashSet};

use jobmatch_core::Posting;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Two descriptions whose SimHashes differ in at most this many bits are the same text.
pub const NEAR_BITS: u32 = 3;
/// SimHash bands: with at most [`NEAR_BITS`] differing bits, one 16-bit band is equal.
const BANDS: usize = 4;
/// Descriptions shorter than this many words are not compared (too little to tell).
const MIN_WORDS: usize = 24;

/// A 16-hex-digit digest of a string: short native ids for feeds and career pages.
pub fn short_hash(text: &str) -> String {
    format!("{:016x}", xxh3_64(text.as_bytes()))
}

/// What dedup needs to know of a posting, computed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The content hash: changes when the posting must be published again.
    #[serde(rename = "h")]
    pub content: u64,
    /// Normalized company + title + location.
    #[serde(rename = "k")]
    pub identity: u64,
    /// Normalized company alone: re-posts are compared within one company.
    #[serde(rename = "c")]
    pub company: u64,
    /// SimHash of the description; 0 when it is too short to compare.
    #[serde(rename = "s")]
    pub simhash: u64,
}

impl Fingerprint {
    pub fn of(p: &Posting) -> Self {
        let company = company_key(&p.company);
        let key = format!(
            "{company}\n{}\n{}",
            title_key(&p.title),
            location_key(&p.locations)
        );
        Self {
            content: u64::from_str_radix(&p.content_hash()[..16], 16).unwrap_or_default(),
            identity: xxh3_64(key.as_bytes()),
            company: xxh3_64(company.as_bytes()),
            simhash: simhash(&p.description),
        }
    }
}

/// Words that say what kind of company it is, not which.
const LEGAL_WORDS: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "gmbh",
    "ag",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "sa",
    "sas",
    "sarl",
    "bv",
    "nv",
    "oy",
    "ab",
    "as",
    "aps",
    "srl",
    "spa",
    "pty",
    "kg",
    "se",
    "the",
    "group",
    "holdings",
];

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// `Acme, Inc.` and `ACME Inc` and `The Acme Company` → `acme`.
pub fn company_key(company: &str) -> String {
    words(company)
        .filter(|w| !LEGAL_WORDS.contains(&w.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Sr. Engineer, Backend (m/w/d)` and `Backend Senior Engineer` → `backend engineer senior`.
pub fn title_key(title: &str) -> String {
    let mut words: Vec<String> = words(title)
        .filter(|w| {
            w.len() > 1
                && !matches!(
                    w.as_str(),
                    "remote" | "hybrid" | "onsite" | "all" | "genders"
                )
        })
        .map(|w| {
            match w.as_str() {
                "sr" | "snr" => "senior",
                "jr" | "jnr" => "junior",
                "eng" | "engr" => "engineer",
                "dev" => "developer",
                "mgr" => "manager",
                "swe" => "software engineer",
                other => return other.to_owned(),
            }
            .to_owned()
        })
        .flat_map(|w| w.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    words.sort();
    words.dedup();
    words.join(" ")
}

/// The first place named, in words, without remote/hybrid: `Remote - Europe` →
/// `europe`, `Berlin, Germany` → `berlin`; empty when no place is named.
pub fn location_key(locations: &[String]) -> String {
    const NOISE: &[&str] = &[
        "remote", "hybrid", "onsite", "on", "site", "office", "anywhere", "fully", "only", "or",
        "and", "in",
    ];
    let Some(first) = locations.first() else {
        return String::new();
    };
    for part in first.split([',', '/', '|', '(', ')', ';', '-', '–']) {
        let mut ws: Vec<String> = words(part)
            .filter(|w| !NOISE.contains(&w.as_str()))
            .collect();
        if !ws.is_empty() {
            ws.sort();
            return ws.join(" ");
        }
    }
    String::new()
}

/// 64-bit SimHash over word trigrams; 0 for a text too short to compare.
pub fn simhash(text: &str) -> u64 {
    let words: Vec<String> = words(text).collect();
    if words.len() < MIN_WORDS {
        return 0;
    }
    let mut counts = [0i32; 64];
    for shingle in words.windows(3) {
        let h = xxh3_64_with_seed(shingle[0].as_bytes(), 0)
            ^ xxh3_64_with_seed(shingle[1].as_bytes(), 1)
            ^ xxh3_64_with_seed(shingle[2].as_bytes(), 2);
        for (bit, count) in counts.iter_mut().enumerate() {
            *count += if h >> bit & 1 == 1 { 1 } else { -1 };
        }
    }
    let hash = counts.iter().enumerate().fold(
        0u64,
        |acc, (bit, &c)| if c > 0 { acc | 1 << bit } else { acc },
    );
    hash.max(1)
}

/// What the postings bucket holds per posting, for every replica's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub id: String,
    pub source: String,
    #[serde(flatten)]
    pub fingerprint: Fingerprint,
    /// Tier 2: the posting (on another board) this one duplicates; never published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Tier 3: the earlier posting this one re-posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repost_of: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
    /// When it closed, in seconds since the epoch: closed postings are forgotten after
    /// [`RETENTION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<i64>,
}

/// How long a closed posting is remembered (to recognise its re-posts) before it is
/// forgotten, so the index does not grow with every posting ever seen.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// What a polled posting is, given what is remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    New,
    /// Known, content changed (or it reopened): publish again. Keeps its re-post flag.
    Updated {
        repost_of: Option<String>,
    },
    Unchanged,
    /// The same job, already published from another board.
    Duplicate {
        of: String,
    },
    /// A new id with a known description: publish, flagged.
    Repost {
        of: String,
    },
}

const NONE: u32 = u32::MAX;

#[derive(Debug)]
struct Slot {
    id: Box<str>,
    /// Length of the `board:identity` prefix of `id`.
    board_len: u16,
    fingerprint: Fingerprint,
    source: u32,
    duplicate_of: u32,
    repost_of: u32,
    closed: bool,
    /// Seconds since the epoch when it closed; 0 when open or unknown.
    closed_at: u32,
}

impl Slot {
    fn board(&self) -> &str {
        &self.id[..usize::from(self.board_len)]
    }
}

/// Slots sharing one key: one inline, more on the heap.
#[derive(Debug)]
enum Bucket {
    One(u32),
    Many(Vec<u32>),
}

impl Bucket {
    fn slots(&self) -> &[u32] {
        match self {
            Bucket::One(s) => std::slice::from_ref(s),
            Bucket::Many(v) => v,
        }
    }

    fn add(&mut self, slot: u32) {
        match self {
            Bucket::One(s) if *s != slot => *self = Bucket::Many(vec![*s, slot]),
            Bucket::Many(v) if !v.contains(&slot) => v.push(slot),
            _ => {}
        }
    }

    /// Removes `slot`; true when the bucket is now empty.
    fn remove(&mut self, slot: u32) -> bool {
        match self {
            Bucket::One(s) => *s == slot,
            Bucket::Many(v) => {
                v.retain(|s| *s != slot);
                v.is_empty()
            }
        }
    }
}

/// The `board:identity` prefix of a posting id.
pub fn board_of(id: &str) -> &str {
    id.rfind(':').map_or(id, |i| &id[..i])
}

/// Every posting remembered, indexed for the three tiers.
#[derive(Debug, Default)]
pub struct DedupIndex {
    slots: Vec<Slot>,
    /// xxh3 of the id → slot (the slot's id is compared, so a collision is a miss).
    by_id: HashMap<u64, u32>,
    by_identity: HashMap<u64, u32>,
    /// (band number, 16 bits of the SimHash) → slots.
    bands: HashMap<u32, Bucket>,
    sources: Vec<Box<str>>,
    source_ids: HashMap<Box<str>, u32>,
}

fn band_keys(simhash: u64) -> [u32; BANDS] {
    std::array::from_fn(|b| ((b as u32) << 16) | ((simhash >> (16 * b)) & 0xffff) as u32)
}

impl DedupIndex {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot_of(&self, id: &str) -> Option<u32> {
        let slot = *self.by_id.get(&xxh3_64(id.as_bytes()))?;
        (&*self.slots[slot as usize].id == id).then_some(slot)
    }

    fn id_of(&self, slot: u32) -> Option<String> {
        (slot != NONE).then(|| self.slots[slot as usize].id.to_string())
    }

    /// The entry for an id, as the bucket would hold it.
    pub fn get(&self, id: &str) -> Option<Remembered> {
        let s = &self.slots[self.slot_of(id)? as usize];
        Some(Remembered {
            id: s.id.to_string(),
            source: self.sources[s.source as usize].to_string(),
            fingerprint: s.fingerprint,
            duplicate_of: self.id_of(s.duplicate_of),
            repost_of: self.id_of(s.repost_of),
            closed: s.closed,
            closed_at: (s.closed_at > 0).then_some(i64::from(s.closed_at)),
        })
    }

    /// Tier by tier, what a polled posting is.
    pub fn classify(&self, id: &str, fp: &Fingerprint) -> Verdict {
        // A copy whose original closed carries that job now: published, but as the job
        // its subscribers already heard of.
        let mut carries = None;
        if let Some(slot) = self.slot_of(id) {
            let s = &self.slots[slot as usize];
            if s.duplicate_of != NONE {
                let original = &self.slots[s.duplicate_of as usize];
                if !original.closed {
                    return Verdict::Duplicate {
                        of: original.id.to_string(),
                    };
                }
                carries = Some(self.root_of(s.duplicate_of));
            } else if s.fingerprint.content == fp.content && !s.closed {
                return Verdict::Unchanged;
            } else {
                return Verdict::Updated {
                    repost_of: self.id_of(s.repost_of),
                };
            }
        }
        let board = board_of(id);
        if let Some(&other) = self.by_identity.get(&fp.identity) {
            let o = &self.slots[other as usize];
            if !o.closed && o.duplicate_of == NONE && o.board() != board && &*o.id != id {
                return Verdict::Duplicate {
                    of: o.id.to_string(),
                };
            }
        }
        if fp.simhash != 0 {
            for key in band_keys(fp.simhash) {
                let Some(bucket) = self.bands.get(&key) else {
                    continue;
                };
                for &other in bucket.slots() {
                    let o = &self.slots[other as usize];
                    if &*o.id != id
                        && o.duplicate_of == NONE
                        && o.fingerprint.company == fp.company
                        && (o.fingerprint.simhash ^ fp.simhash).count_ones() <= NEAR_BITS
                    {
                        // A re-post of a re-post is a re-post of the first.
                        return Verdict::Repost {
                            of: self.root_of(other),
                        };
                    }
                }
            }
        }
        match self.slot_of(id) {
            // A duplicate whose original closed: published now, carrying the original.
            Some(_) => Verdict::Updated { repost_of: carries },
            None => Verdict::New,
        }
    }

    /// The first posting of the job `slot` is: itself, or what it re-posts.
    fn root_of(&self, slot: u32) -> String {
        let s = &self.slots[slot as usize];
        self.id_of(s.repost_of).unwrap_or_else(|| s.id.to_string())
    }

    fn source_number(&mut self, source: &str) -> u32 {
        if let Some(&n) = self.source_ids.get(source) {
            return n;
        }
        let n = self.sources.len() as u32;
        self.sources.push(source.into());
        self.source_ids.insert(source.into(), n);
        n
    }

    fn slot_or_placeholder(&mut self, id: &str) -> u32 {
        if let Some(slot) = self.slot_of(id) {
            return slot;
        }
        let source = self.source_number("");
        let slot = self.slots.len() as u32;
        self.slots.push(Slot {
            id: id.into(),
            board_len: board_of(id).len().min(usize::from(u16::MAX)) as u16,
            fingerprint: Fingerprint {
                content: 0,
                identity: 0,
                company: 0,
                simhash: 0,
            },
            source,
            duplicate_of: NONE,
            repost_of: NONE,
            closed: false,
            closed_at: 0,
        });
        self.by_id.insert(xxh3_64(id.as_bytes()), slot);
        slot
    }

    /// Records a posting (a new one, or a new state of a known one).
    pub fn remember(&mut self, r: &Remembered) {
        let source = self.source_number(&r.source);
        // An original or earlier posting not seen here yet (another replica's, still on
        // its way through the bucket) gets a placeholder its own record fills in later.
        let duplicate_of = r
            .duplicate_of
            .as_deref()
            .map_or(NONE, |d| self.slot_or_placeholder(d));
        let repost_of = r
            .repost_of
            .as_deref()
            .map_or(NONE, |d| self.slot_or_placeholder(d));
        let closed_at = r
            .closed_at
            .filter(|_| r.closed)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0);
        let slot = match self.slot_of(&r.id) {
            Some(slot) => {
                let old = self.slots[slot as usize].fingerprint;
                if old.simhash != r.fingerprint.simhash && old.simhash != 0 {
                    for key in band_keys(old.simhash) {
                        if self.bands.get_mut(&key).is_some_and(|b| b.remove(slot)) {
                            self.bands.remove(&key);
                        }
                    }
                }
                if old.identity != r.fingerprint.identity
                    && self.by_identity.get(&old.identity) == Some(&slot)
                {
                    self.by_identity.remove(&old.identity);
                }
                let s = &mut self.slots[slot as usize];
                s.fingerprint = r.fingerprint;
                s.source = source;
                s.duplicate_of = duplicate_of;
                s.repost_of = repost_of;
                s.closed = r.closed;
                s.closed_at = closed_at;
                slot
            }
            None => {
                let slot = self.slots.len() as u32;
                self.slots.push(Slot {
                    id: r.id.as_str().into(),
                    board_len: board_of(&r.id).len().min(usize::from(u16::MAX)) as u16,
                    fingerprint: r.fingerprint,
                    source,
                    duplicate_of,
                    repost_of,
                    closed: r.closed,
                    closed_at,
                });
                self.by_id.insert(xxh3_64(r.id.as_bytes()), slot);
                slot
            }
        };
        // Tier 2 points at an open original; a closed one gives way to the next.
        let holder = self.by_identity.get(&r.fingerprint.identity).copied();
        let replace = match holder {
            None => true,
            Some(h) => h == slot || self.slots[h as usize].closed,
        };
        if replace && duplicate_of == NONE && !r.closed {
            self.by_identity.insert(r.fingerprint.identity, slot);
        }
        if r.fingerprint.simhash != 0 && duplicate_of == NONE {
            for key in band_keys(r.fingerprint.simhash) {
                self.bands
                    .entry(key)
                    .and_modify(|b| b.add(slot))
                    .or_insert(Bucket::One(slot));
            }
        }
    }

    /// Closed postings whose retention ran out before `cutoff` (seconds since the epoch),
    /// except those an open duplicate still points at.
    pub fn expired(&self, cutoff: i64) -> Vec<String> {
        let referenced: std::collections::HashSet<u32> = self
            .slots
            .iter()
            .filter(|s| !s.closed && s.duplicate_of != NONE)
            .map(|s| s.duplicate_of)
            .collect();
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                s.closed
                    && s.closed_at > 0
                    && i64::from(s.closed_at) < cutoff
                    && !referenced.contains(&(*i as u32))
            })
            .map(|(_, s)| s.id.to_string())
            .collect()
    }

    /// The same index without `forget`: rebuilt, so their memory is returned.
    pub fn without(&self, forget: &HashSet<&str>) -> DedupIndex {
        let mut index = DedupIndex::default();
        for (i, s) in self.slots.iter().enumerate() {
            let placeholder =
                s.fingerprint.identity == 0 && self.sources[s.source as usize].is_empty();
            if placeholder || forget.contains(&*s.id) {
                continue;
            }
            if let Some(mut record) = self.get(&s.id) {
                let forgotten =
                    |id: &Option<String>| id.as_deref().is_some_and(|id| forget.contains(id));
                if forgotten(&record.repost_of) {
                    record.repost_of = None;
                }
                debug_assert!(
                    !forgotten(&record.duplicate_of),
                    "slot {i}: a referenced original is kept"
                );
                index.remember(&record);
            }
        }
        index
    }

    /// Open postings of `source` that the last poll did not list: they closed. The flag
    /// says whether it was a duplicate (never published, so nothing to announce).
    pub fn vanished(&self, source: &str, listed: &HashSet<&str>) -> Vec<(String, bool)> {
        let Some(&source) = self.source_ids.get(source) else {
            return Vec::new();
        };
        self.slots
            .iter()
            .filter(|s| s.source == source && !s.closed && !listed.contains(&*s.id))
            .map(|s| (s.id.to_string(), s.duplicate_of != NONE))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "We are looking for a backend engineer to build event driven services in Rust \
        with Tokio and NATS, run them on Kubernetes, and own what you build in production with \
        Prometheus dashboards and a humane on-call rotation across two time zones.";

    fn posting(id: &str, company: &str, title: &str, location: &str, text: &str) -> Posting {
        Posting {
            id: id.into(),
            source: id.split(':').next().unwrap_or_default().into(),
            title: title.into(),
            company: company.into(),
            locations: vec![location.into()],
            description: text.into(),
            ..Posting::default()
        }
    }

    fn remember(index: &mut DedupIndex, p: &Posting, verdict: &Verdict) {
        index.remember(&Remembered {
            id: p.id.clone(),
            source: p.source.clone(),
            fingerprint: Fingerprint::of(p),
            duplicate_of: match verdict {
                Verdict::Duplicate { of } => Some(of.clone()),
                _ => None,
            },
            repost_of: match verdict {
                Verdict::Repost { of } => Some(of.clone()),
                Verdict::Updated { repost_of } => repost_of.clone(),
                _ => None,
            },
            closed: p.closed,
            closed_at: None,
        });
    }

    #[test]
    fn keys_ignore_legal_suffixes_punctuation_and_word_order() {
        assert_eq!(company_key("Acme, Inc."), company_key("ACME Inc"));
        assert_eq!(company_key("The Acme Company"), "acme");
        assert_eq!(
            title_key("Sr. Engineer, Backend (m/w/d)"),
            title_key("Backend Senior Engineer")
        );
        assert_ne!(
            title_key("Backend Engineer"),
            title_key("Frontend Engineer")
        );
        assert_eq!(location_key(&["Remote - Europe".into()]), "europe");
        assert_eq!(location_key(&["Berlin, Germany".into()]), "berlin");
    }

    #[test]
    fn simhash_is_near_for_near_texts_and_far_for_others() {
        let a = simhash(TEXT);
        let b = simhash(&TEXT.replace("two time zones", "two timezones"));
        let c = simhash(
            "A data analyst position in our finance team, working with SQL, dbt and Looker to report monthly figures to the board and support budgeting, forecasting and audits every quarter of the year.",
        );
        assert!(
            (a ^ b).count_ones() <= NEAR_BITS + 8,
            "{}",
            (a ^ b).count_ones()
        );
        assert!((a ^ c).count_ones() > NEAR_BITS, "{}", (a ^ c).count_ones());
        assert_eq!(simhash("too short"), 0);
    }

    #[test]
    fn the_three_tiers() {
        let mut index = DedupIndex::default();
        let gh = posting(
            "greenhouse:acme:1",
            "Acme, Inc.",
            "Senior Backend Engineer",
            "Remote - Europe",
            TEXT,
        );
        assert_eq!(index.classify(&gh.id, &Fingerprint::of(&gh)), Verdict::New);
        remember(&mut index, &gh, &Verdict::New);
        // Tier 1: same id, same content; then changed content.
        assert_eq!(
            index.classify(&gh.id, &Fingerprint::of(&gh)),
            Verdict::Unchanged
        );
        let mut changed = gh.clone();
        changed.title = "Staff Backend Engineer".into();
        assert_eq!(
            index.classify(&gh.id, &Fingerprint::of(&changed)),
            Verdict::Updated { repost_of: None }
        );
        // Tier 2: the same job on another board.
        let rok = posting(
            "remoteok:remoteok.com:77",
            "ACME",
            "Backend Engineer, Senior",
            "Europe",
            "Short text.",
        );
        let verdict = index.classify(&rok.id, &Fingerprint::of(&rok));
        assert_eq!(verdict, Verdict::Duplicate { of: gh.id.clone() });
        remember(&mut index, &rok, &verdict);
        assert_eq!(
            index.classify(&rok.id, &Fingerprint::of(&rok)),
            Verdict::Duplicate { of: gh.id.clone() }
        );
        // Tier 3: a re-post on the same board with a new id and the same text.
        let repost = posting(
            "greenhouse:acme:2",
            "Acme",
            "Backend Engineer (Rust)",
            "Berlin",
            TEXT,
        );
        assert_eq!(
            index.classify(&repost.id, &Fingerprint::of(&repost)),
            Verdict::Repost { of: gh.id.clone() }
        );
        // Another company with the same boilerplate is not a re-post.
        let other = posting(
            "greenhouse:globex:9",
            "Globex",
            "Backend Engineer (Rust)",
            "Berlin",
            TEXT,
        );
        assert_eq!(
            index.classify(&other.id, &Fingerprint::of(&other)),
            Verdict::New
        );
    }

    #[test]
    fn vanished_postings_close_and_a_surviving_duplicate_takes_over() {
        let mut index = DedupIndex::default();
        let gh = posting(
            "greenhouse:acme:1",
            "Acme",
            "Backend Engineer",
            "Berlin",
            TEXT,
        );
        remember(&mut index, &gh, &Verdict::New);
        let rok = posting(
            "remoteok:remoteok.com:7",
            "Acme",
            "Backend Engineer",
            "Berlin",
            "x",
        );
        let v = index.classify(&rok.id, &Fingerprint::of(&rok));
        remember(&mut index, &rok, &v);
        let listed = HashSet::new();
        assert_eq!(
            index.vanished("greenhouse", &listed),
            vec![(gh.id.clone(), false)]
        );
        let mut closed = gh.clone();
        closed.closed = true;
        remember(&mut index, &closed, &Verdict::Unchanged);
        assert!(index.vanished("greenhouse", &listed).is_empty());
        // The copy carries the job now, as the job its subscribers heard of (its text
        // differs, so it is no re-post by text): no second notice.
        assert_eq!(
            index.classify(&rok.id, &Fingerprint::of(&rok)),
            Verdict::Updated {
                repost_of: Some(gh.id.clone())
            }
        );
        // A closed posting that comes back is an update.
        assert_eq!(
            index.classify(&gh.id, &Fingerprint::of(&gh)),
            Verdict::Updated { repost_of: None }
        );
    }

    #[test]
    fn a_repost_of_a_repost_names_the_first_posting() {
        let mut index = DedupIndex::default();
        let first = posting(
            "greenhouse:acme:1",
            "Acme",
            "Backend Engineer",
            "Berlin",
            TEXT,
        );
        remember(&mut index, &first, &Verdict::New);
        let second = posting("greenhouse:acme:2", "Acme", "Rust Engineer", "Berlin", TEXT);
        let v = index.classify(&second.id, &Fingerprint::of(&second));
        assert_eq!(
            v,
            Verdict::Repost {
                of: first.id.clone()
            }
        );
        remember(&mut index, &second, &v);
        // The first closes; the job is posted a third time.
        let mut closed = first.clone();
        closed.closed = true;
        remember(&mut index, &closed, &Verdict::Unchanged);
        let third = posting("greenhouse:acme:3", "Acme", "Backend Dev", "Berlin", TEXT);
        let v = index.classify(&third.id, &Fingerprint::of(&third));
        assert_eq!(
            v,
            Verdict::Repost {
                of: first.id.clone()
            },
            "not of the second"
        );
    }

    #[test]
    fn closed_postings_past_retention_are_forgotten_unless_a_duplicate_points_at_them() {
        let mut index = DedupIndex::default();
        let old = posting(
            "greenhouse:acme:1",
            "Acme",
            "Backend Engineer",
            "Berlin",
            TEXT,
        );
        let kept = posting("greenhouse:acme:2", "Acme", "Data Engineer", "Berlin", "x");
        let copy = posting(
            "remoteok:remoteok.com:2",
            "Acme",
            "Data Engineer",
            "Berlin",
            "x",
        );
        let open = posting("greenhouse:acme:3", "Acme", "Designer", "Berlin", "y");
        for p in [&old, &kept, &open] {
            remember(&mut index, p, &Verdict::New);
        }
        let v = index.classify(&copy.id, &Fingerprint::of(&copy));
        remember(&mut index, &copy, &v);
        for (p, at) in [(&old, 1_000), (&kept, 1_000)] {
            let mut r = index.get(&p.id).unwrap();
            r.closed = true;
            r.closed_at = Some(at);
            index.remember(&r);
        }
        // The copy's original closed but the copy has not been polled since: kept.
        assert_eq!(index.expired(2_000), vec![old.id.clone()]);
        assert!(index.expired(500).is_empty(), "not yet past retention");
        let forget: HashSet<&str> = [old.id.as_str()].into();
        let rebuilt = index.without(&forget);
        assert_eq!(rebuilt.len(), 3);
        assert!(rebuilt.get(&old.id).is_none());
        assert_eq!(
            rebuilt.get(&copy.id).unwrap().duplicate_of,
            Some(kept.id.clone())
        );
        // Forgotten, its text no longer makes a new posting a re-post.
        let again = posting(
            "greenhouse:acme:9",
            "Acme",
            "Backend Engineer II",
            "Berlin",
            TEXT,
        );
        assert_eq!(
            rebuilt.classify(&again.id, &Fingerprint::of(&again)),
            Verdict::New
        );
    }

    #[test]
    fn remembered_round_trips_through_json() {
        let r = Remembered {
            id: "lever:x:1".into(),
            source: "x".into(),
            fingerprint: Fingerprint {
                content: 1,
                identity: 2,
                company: 3,
                simhash: 4,
            },
            duplicate_of: None,
            repost_of: Some("lever:x:0".into()),
            closed: true,
            closed_at: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Remembered>(&json).unwrap(), r);
    }
}
