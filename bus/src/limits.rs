//! How large the streams and buckets may grow, and how many replicas they keep: read from
//! `JOBMATCH_BUS_*` environment variables (the operator forwards its own to every worker,
//! so one setting reaches every process), with defaults sized for a million postings.
//!
//! | what | default | about 10k postings | about 1M postings |
//! |---|---|---|---|
//! | JOBS (≈3 KB a posting version) | 30 d, 4 GiB | 30–60 MB | 3–4 GB |
//! | VECTORS (≈7 KB: posting + vector) | 30 d, 8 GiB | 70 MB | 7–8 GB |
//! | MATCHES (≈3.5 KB a match, until notified) | 14 d, 1 GiB | what waits | |
//! | DEAD_LETTERS | 30 d, 1 GiB | | |
//! | notice keys (≈150 B each) | 400 d, 2 GiB | | |
//! | dedup memory (≈300 B a posting) | 2 GiB | 3 MB | 300 MB |
//!
//! Streams drop their oldest messages at a limit (what the consumers have read long
//! before); buckets refuse new keys at theirs, so nothing they guard is forgotten silently.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("{var}={value:?}: {why}")]
    Invalid {
        var: &'static str,
        value: String,
        why: String,
    },
}

/// One stream's or bucket's bounds. A zero age or a negative size is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub max_age: Duration,
    pub max_bytes: i64,
}

const DAY: u64 = 24 * 3600;
const GIB: i64 = 1 << 30;
const MIB: i64 = 1 << 20;

const fn bound(days: u64, bytes: i64) -> Bound {
    Bound {
        max_age: Duration::from_secs(days * DAY),
        max_bytes: bytes,
    }
}

/// Every limit of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusLimits {
    pub jobs: Bound,
    pub vectors: Bound,
    pub matches: Bound,
    pub dead_letters: Bound,
    /// The notice keys: kept as long as a posting can come back (re-posts are recognised
    /// for 90 days after a posting closes; open postings live for months).
    pub notices: Bound,
    /// What dedup remembers per posting (closed postings are pruned after 90 days).
    pub postings: Bound,
    /// Replicas of every stream and bucket (3 on a NATS cluster).
    pub replicas: usize,
}

impl Default for BusLimits {
    fn default() -> Self {
        Self {
            jobs: bound(30, 4 * GIB),
            vectors: bound(30, 8 * GIB),
            matches: bound(14, GIB),
            dead_letters: bound(30, GIB),
            notices: bound(400, 2 * GIB),
            postings: bound(0, 2 * GIB),
            replicas: 1,
        }
    }
}

/// The variables [`BusLimits::from_lookup`] reads, so the operator can forward them.
pub const ENV_VARS: [&str; 13] = [
    "JOBMATCH_BUS_JOBS_MAX_AGE",
    "JOBMATCH_BUS_JOBS_MAX_BYTES",
    "JOBMATCH_BUS_VECTORS_MAX_AGE",
    "JOBMATCH_BUS_VECTORS_MAX_BYTES",
    "JOBMATCH_BUS_MATCHES_MAX_AGE",
    "JOBMATCH_BUS_MATCHES_MAX_BYTES",
    "JOBMATCH_BUS_DEAD_LETTERS_MAX_AGE",
    "JOBMATCH_BUS_DEAD_LETTERS_MAX_BYTES",
    "JOBMATCH_BUS_NOTICES_MAX_AGE",
    "JOBMATCH_BUS_NOTICES_MAX_BYTES",
    "JOBMATCH_BUS_POSTINGS_MAX_AGE",
    "JOBMATCH_BUS_POSTINGS_MAX_BYTES",
    "JOBMATCH_BUS_REPLICAS",
];

impl BusLimits {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, LimitsError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads every `JOBMATCH_BUS_*` variable `lookup` knows; the others keep their
    /// defaults. Ages are humantime (`30d`, `12h`, `0` for unlimited), sizes bytes with
    /// an optional unit (`4GiB`, `500MB`, `-1` for unlimited).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LimitsError> {
        let mut limits = Self::default();
        let [
            jobs_age,
            jobs_bytes,
            vectors_age,
            vectors_bytes,
            matches_age,
            matches_bytes,
            dead_age,
            dead_bytes,
            notices_age,
            notices_bytes,
            postings_age,
            postings_bytes,
            replicas,
        ] = ENV_VARS;
        for (bound, age_var, bytes_var) in [
            (&mut limits.jobs, jobs_age, jobs_bytes),
            (&mut limits.vectors, vectors_age, vectors_bytes),
            (&mut limits.matches, matches_age, matches_bytes),
            (&mut limits.dead_letters, dead_age, dead_bytes),
            (&mut limits.notices, notices_age, notices_bytes),
            (&mut limits.postings, postings_age, postings_bytes),
        ] {
            if let Some(value) = lookup(age_var) {
                bound.max_age = parse_age(age_var, &value)?;
            }
            if let Some(value) = lookup(bytes_var) {
                bound.max_bytes = parse_bytes(bytes_var, &value)?;
            }
        }
        if let Some(value) = lookup(replicas) {
            limits.replicas = match value.trim().parse::<usize>() {
                Ok(n @ 1..=5) => n,
                _ => {
                    return Err(LimitsError::Invalid {
                        var: replicas,
                        value,
                        why: "a replica count from 1 to 5".into(),
                    });
                }
            };
        }
        Ok(limits)
    }
}

fn parse_age(var: &'static str, value: &str) -> Result<Duration, LimitsError> {
    let value = value.trim();
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(value).map_err(|e| LimitsError::Invalid {
        var,
        value: value.to_owned(),
        why: format!("a duration such as 30d or 12h: {e}"),
    })
}

fn parse_bytes(var: &'static str, value: &str) -> Result<i64, LimitsError> {
    let value = value.trim();
    if value == "-1" {
        return Ok(-1);
    }
    let invalid = |why: String| LimitsError::Invalid {
        var,
        value: value.to_owned(),
        why,
    };
    let size: bytesize::ByteSize = value
        .parse()
        .map_err(|e| invalid(format!("a size such as 4GiB or 500MB: {e}")))?;
    match i64::try_from(size.as_u64()) {
        Ok(n) if n >= MIB => Ok(n),
        _ => Err(invalid("at least 1MiB (or -1 for unlimited)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<BusLimits, LimitsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BusLimits::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_bound_every_stream() {
        let l = read(&[]).unwrap();
        assert_eq!(l, BusLimits::default());
        for b in [l.jobs, l.vectors, l.matches, l.dead_letters, l.notices] {
            assert!(b.max_age > Duration::ZERO && b.max_bytes > 0, "{b:?}");
        }
        assert_eq!(l.replicas, 1);
    }

    #[test]
    fn reads_ages_sizes_and_replicas() {
        let l = read(&[
            ("JOBMATCH_BUS_JOBS_MAX_AGE", "12h"),
            ("JOBMATCH_BUS_VECTORS_MAX_BYTES", "500MiB"),
            ("JOBMATCH_BUS_NOTICES_MAX_AGE", "0"),
            ("JOBMATCH_BUS_MATCHES_MAX_BYTES", "-1"),
            ("JOBMATCH_BUS_REPLICAS", "3"),
        ])
        .unwrap();
        assert_eq!(l.jobs.max_age, Duration::from_secs(12 * 3600));
        assert_eq!(l.vectors.max_bytes, 500 * MIB);
        assert_eq!(l.notices.max_age, Duration::ZERO);
        assert_eq!(l.matches.max_bytes, -1);
        assert_eq!(l.replicas, 3);
        assert_eq!(l.dead_letters, BusLimits::default().dead_letters);
    }

    #[test]
    fn refuses_bad_values_naming_the_variable() {
        for (var, value, why) in [
            ("JOBMATCH_BUS_JOBS_MAX_AGE", "soon", "a duration"),
            ("JOBMATCH_BUS_JOBS_MAX_BYTES", "lots", "a size"),
            ("JOBMATCH_BUS_JOBS_MAX_BYTES", "10KB", "at least 1MiB"),
            ("JOBMATCH_BUS_REPLICAS", "0", "from 1 to 5"),
        ] {
            let e = read(&[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{var}=")), "{e}");
            assert!(e.contains(why), "{e}");
        }
    }
}
