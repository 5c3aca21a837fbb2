//! Progress reports per source and subscription, kept in the `jobmatch-reports` bucket
//! for the operator to copy into each resource's status.
//!
//! Roles record events in memory (no I/O on their hot path); a flusher merges them into
//! the bucket every few seconds with compare-and-swap, so replicas and roles that write
//! the same key add up instead of overwriting each other, and the write rate stays
//! bounded however busy the pipeline is. A change that cannot be written is kept for the
//! next flush.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use jobmatch_core::messages::{PollCounts, Report};
use tokio_util::sync::CancellationToken;

/// Changes not yet written for one key.
#[derive(Debug, Default, Clone, PartialEq)]
struct Change {
    postings_seen: Option<u64>,
    last_poll: Option<String>,
    last_success: Option<String>,
    /// `Some(None)` clears the error.
    last_error: Option<Option<String>>,
    matches: u64,
    notices_sent: u64,
    notices_failed: u64,
    last_http_status: Option<u16>,
    last_counts: Option<PollCounts>,
    malformed: u64,
}

impl Change {
    /// `later` happened after `self`.
    fn then(mut self, later: Change) -> Change {
        self.postings_seen = later.postings_seen.or(self.postings_seen);
        self.last_poll = later.last_poll.or(self.last_poll);
        self.last_success = later.last_success.or(self.last_success);
        self.last_error = later.last_error.or(self.last_error);
        self.matches += later.matches;
        self.notices_sent += later.notices_sent;
        self.notices_failed += later.notices_failed;
        self.last_http_status = later.last_http_status.or(self.last_http_status);
        self.last_counts = later.last_counts.or(self.last_counts);
        self.malformed += later.malformed;
        self
    }

    fn apply(&self, report: &mut Report) {
        let add = |n: &mut Option<u64>, by: u64| {
            if by > 0 {
                *n = Some(n.unwrap_or(0) + by);
            }
        };
        if self.postings_seen.is_some() {
            report.postings_seen = self.postings_seen;
        }
        if self.last_poll.is_some() {
            report.last_poll.clone_from(&self.last_poll);
        }
        if self.last_success.is_some() {
            report.last_success.clone_from(&self.last_success);
        }
        if let Some(e) = &self.last_error {
            report.last_error.clone_from(e);
        }
        add(&mut report.matches, self.matches);
        add(&mut report.notices_sent, self.notices_sent);
        add(&mut report.notices_failed, self.notices_failed);
        add(&mut report.malformed_total, self.malformed);
        if self.last_http_status.is_some() {
            report.last_http_status = self.last_http_status;
        }
        if self.last_counts.is_some() {
            report.last_counts = self.last_counts;
        }
    }
}

/// The report recorder every role of a process shares.
#[derive(Clone, Default)]
pub struct Reports {
    pending: Arc<Mutex<HashMap<String, Change>>>,
}

impl Reports {
    /// The pending changes; a panic elsewhere while holding them leaves them usable.
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Change>> {
        match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn record(&self, key: String, change: Change) {
        let mut pending = self.pending();
        let merged = pending.remove(&key).unwrap_or_default().then(change);
        pending.insert(key, merged);
    }

    /// A poll that read the board: what it found, and the board's HTTP status.
    pub fn poll_succeeded(
        &self,
        source: &str,
        postings: usize,
        counts: PollCounts,
        status: Option<u16>,
    ) {
        let now = jobmatch_core::rfc3339_now();
        self.record(
            jobmatch_core::messages::source_key(source),
            Change {
                postings_seen: Some(postings as u64),
                last_poll: Some(now.clone()),
                last_success: Some(now),
                last_error: Some(None),
                last_http_status: status,
                last_counts: Some(counts),
                malformed: counts.malformed,
                ..Change::default()
            },
        );
    }

    /// The board answered 304: a success that changed nothing.
    pub fn poll_not_modified(&self, source: &str) {
        let now = jobmatch_core::rfc3339_now();
        self.record(
            jobmatch_core::messages::source_key(source),
            Change {
                last_poll: Some(now.clone()),
                last_success: Some(now),
                last_error: Some(None),
                last_http_status: Some(304),
                ..Change::default()
            },
        );
    }

    pub fn poll_failed(&self, source: &str, error: &str, status: Option<u16>) {
        self.record(
            jobmatch_core::messages::source_key(source),
            Change {
                last_poll: Some(jobmatch_core::rfc3339_now()),
                last_error: Some(Some(error.to_owned())),
                last_http_status: status,
                ..Change::default()
            },
        );
    }

    pub fn matched(&self, subscription: &str) {
        self.record(
            jobmatch_core::messages::subscription_key(subscription),
            Change {
                matches: 1,
                ..Change::default()
            },
        );
    }

    pub fn notice_sent(&self, subscription: &str) {
        self.record(
            jobmatch_core::messages::subscription_key(subscription),
            Change {
                notices_sent: 1,
                last_error: Some(None),
                ..Change::default()
            },
        );
    }

    pub fn notice_failed(&self, subscription: &str, error: &str) {
        self.record(
            jobmatch_core::messages::subscription_key(subscription),
            Change {
                notices_failed: 1,
                last_error: Some(Some(error.to_owned())),
                ..Change::default()
            },
        );
    }

    /// Writes what is pending every `every`, and once more when cancelled.
    pub async fn run_flusher(self, store: kv::Store, every: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => self.flush(&store).await,
            }
        }
        self.flush(&store).await;
    }

    /// Merges every pending change into the bucket.
    pub async fn flush(&self, store: &kv::Store) {
        let pending = {
            let mut p = self.pending();
            std::mem::take(&mut *p)
        };
        for (key, change) in pending {
            if let Err(e) = merge_into(store, &key, &change).await {
                tracing::warn!(key, error = %e, "report not written; kept for the next flush");
                // Put it back before anything recorded since.
                let mut p = self.pending();
                let merged = change.then(p.remove(&key).unwrap_or_default());
                p.insert(key, merged);
            }
        }
    }
}

/// Read, apply, write back only if nobody wrote in between; retried on a conflict.
async fn merge_into(
    store: &kv::Store,
    key: &str,
    change: &Change,
) -> Result<(), async_nats::Error> {
    const ATTEMPTS: usize = 8;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let entry = store.entry(key).await?;
        let (mut report, revision) = match &entry {
            Some(e) if e.operation == kv::Operation::Put => (
                serde_json::from_slice::<Report>(&e.value).unwrap_or_default(),
                Some(e.revision),
            ),
            Some(e) => (Report::default(), Some(e.revision)),
            None => (Report::default(), None),
        };
        change.apply(&mut report);
        let value = serde_json::to_vec(&report)?;
        let written = match revision {
            Some(revision) => store
                .update(key, value.into(), revision)
                .await
                .map(|_| ())
                .map_err(async_nats::Error::from),
            None => store
                .create(key, value.into())
                .await
                .map(|_| ())
                .map_err(async_nats::Error::from),
        };
        match written {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| "compare-and-swap kept conflicting".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_changes_win_and_counts_add() {
        let a = Change {
            postings_seen: Some(3),
            last_error: Some(Some("HTTP 500".into())),
            notices_sent: 2,
            ..Change::default()
        };
        let b = Change {
            last_error: Some(None),
            notices_sent: 1,
            ..Change::default()
        };
        let merged = a.then(b);
        assert_eq!(merged.postings_seen, Some(3));
        assert_eq!(merged.last_error, Some(None));
        assert_eq!(merged.notices_sent, 3);
        let mut report = Report {
            notices_sent: Some(10),
            last_error: Some("old".into()),
            ..Report::default()
        };
        merged.apply(&mut report);
        assert_eq!(report.notices_sent, Some(13));
        assert_eq!(report.last_error, None);
        assert_eq!(report.matches, None, "an untouched count stays absent");
    }
}
