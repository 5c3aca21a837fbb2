//! What travels over NATS: stream and bucket names, subjects, and message bodies.
//!
//! ```text
//! fetcher ─► JOBS (jobmatch.jobs.<source>) ─► embedder ─► VECTORS (jobmatch.vectors.*)
//!        ─► matcher ─► MATCHES (jobmatch.matches.<subscription>) ─► notifier
//! ```
//! Configuration lives in the `jobmatch-config` KV bucket, written by the operator (or by
//! `jobmatch apply` / `jobmatch all -f` without a cluster) and read by the workers.

use serde::{Deserialize, Serialize};

use crate::{Channel, Criteria, JobSourceSpec, Posting, Schedule};

pub const JOBS_STREAM: &str = "JOBS";
pub const JOBS_SUBJECTS: &str = "jobmatch.jobs.>";
pub const VECTORS_STREAM: &str = "VECTORS";
pub const VECTORS_SUBJECTS: &str = "jobmatch.vectors.>";
pub const VECTORS_JOB_SUBJECT: &str = "jobmatch.vectors.job";
pub const VECTORS_SUBSCRIPTION_SUBJECT: &str = "jobmatch.vectors.subscription";
pub const MATCHES_STREAM: &str = "MATCHES";
pub const MATCHES_SUBJECTS: &str = "jobmatch.matches.>";
pub const DEAD_LETTER_STREAM: &str = "DEAD_LETTERS";
pub const DEAD_LETTER_SUBJECTS: &str = "jobmatch.dead.>";

/// Desired configuration: `source.<name>` and `subscription.<name>` entries.
pub const CONFIG_BUCKET: &str = "jobmatch-config";
/// What dedup remembers of every posting (fingerprint, duplicate or re-post of, closed),
/// keyed by `kv_key(posting id)`; every fetcher replica's index is fed from it.
pub const POSTINGS_BUCKET: &str = "jobmatch-postings";
/// Which open posting holds each normalized company + title + location (`<16 hex>` →
/// posting id), created with compare-and-swap so that two replicas reading the same job
/// from two boards at once publish it once.
pub const IDENTITIES_BUCKET: &str = "jobmatch-identities";
/// Next-due poll time of each source, claimed by compare-and-swap.
pub const SCHEDULE_BUCKET: &str = "jobmatch-schedule";
/// One key per (subscription, job) notice, created before sending.
pub const NOTICES_BUCKET: &str = "jobmatch-notices";
/// What the workers report per source (`source.<name>`) and subscription
/// (`subscription.<name>`): a [`Report`], which the operator copies into status.
pub const REPORTS_BUCKET: &str = "jobmatch-reports";

/// The streams, with the subjects each holds.
pub const STREAMS: [(&str, &str); 4] = [
    (JOBS_STREAM, JOBS_SUBJECTS),
    (VECTORS_STREAM, VECTORS_SUBJECTS),
    (MATCHES_STREAM, MATCHES_SUBJECTS),
    (DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECTS),
];

/// How many past values the config bucket keeps per key.
pub const CONFIG_HISTORY: i64 = 5;

/// A durable consumer that a role reads its input with, shared by all its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub stream: &'static str,
    pub name: &'static str,
    /// How long a delivered message may stay unacknowledged before redelivery.
    pub ack_wait_secs: u64,
}

/// The embedders' consumer: its lag is the work waiting for embedding.
pub const EMBEDDER_CONSUMER: ConsumerSpec = ConsumerSpec {
    stream: JOBS_STREAM,
    name: "embedder",
    ack_wait_secs: 120,
};
/// The matchers' consumer.
pub const MATCHER_CONSUMER: ConsumerSpec = ConsumerSpec {
    stream: VECTORS_STREAM,
    name: "matcher",
    ack_wait_secs: 60,
};
/// The notifiers' consumer.
pub const NOTIFIER_CONSUMER: ConsumerSpec = ConsumerSpec {
    stream: MATCHES_STREAM,
    name: "notifier",
    ack_wait_secs: 300,
};
/// How many messages one consumer may have delivered and unacknowledged.
pub const MAX_ACK_PENDING: i64 = 1024;

/// The subject a source's postings are published on.
pub fn jobs_subject(source: &str) -> String {
    format!("jobmatch.jobs.{source}")
}

/// The subject a subscription's matches are published on.
pub fn matches_subject(subscription: &str) -> String {
    format!("jobmatch.matches.{subscription}")
}

/// The subject a failed notice is dead-lettered on.
pub fn dead_letter_subject(subscription: &str) -> String {
    format!("jobmatch.dead.{subscription}")
}

pub fn source_key(name: &str) -> String {
    format!("source.{name}")
}

pub fn subscription_key(name: &str) -> String {
    format!("subscription.{name}")
}

/// A `JobSource` as the workers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceConfig {
    pub name: String,
    pub spec: JobSourceSpec,
}

/// A `MatchSubscription` as the workers see it: resume text inline and secrets resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionConfig {
    pub name: String,
    pub resume: String,
    pub criteria: Criteria,
    pub channel: Channel,
    pub schedule: Schedule,
}

/// What the matcher needs of a subscription: no resume text, no channel secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionProfile {
    pub name: String,
    pub criteria: Criteria,
}

/// Progress of one source or subscription, as the workers report it. Every field is
/// optional: the fetchers fill the source fields, matchers and notifiers the
/// subscription ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Report {
    /// Postings the board listed (after `titleIncludes`) at the last successful poll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postings_seen: Option<u64>,
    /// RFC 3339 times of the last poll and of the last one that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
    /// Matches published for the subscription (a match republished within the stream's
    /// duplicate window is counted once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<u64>,
    /// Notices delivered (exact: each is guarded by its notice key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notices_sent: Option<u64>,
    /// Notices dead-lettered after their last attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notices_failed: Option<u64>,
    /// The latest error, cleared by the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The HTTP status of the board's last answer (304 when it had not changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_http_status: Option<u16>,
    /// What the last successful poll found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_counts: Option<PollCounts>,
    /// Malformed postings skipped, over all polls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed_total: Option<u64>,
}

/// What one poll of a source found, posting by posting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PollCounts {
    /// Never seen before: published.
    pub new: u64,
    /// Seen before with other content: re-published, to be embedded again.
    pub updated: u64,
    pub unchanged: u64,
    /// Gone from the board since the last poll: published as closed.
    pub closed: u64,
    /// The same job already known from another board: not published again.
    pub duplicates: u64,
    /// New ids whose description nearly equals a known posting's: published, flagged.
    pub reposts: u64,
    /// Postings the board served that could not be read: counted and skipped.
    pub malformed: u64,
    /// Postings dropped by `titleIncludes`.
    pub filtered: u64,
}

impl std::ops::AddAssign for PollCounts {
    fn add_assign(&mut self, other: PollCounts) {
        self.new += other.new;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.closed += other.closed;
        self.duplicates += other.duplicates;
        self.reposts += other.reposts;
        self.malformed += other.malformed;
        self.filtered += other.filtered;
    }
}

/// A message on the VECTORS stream.
// One message at a time is decoded and dropped: boxing the posting would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Embedded {
    /// A posting and its embedding.
    Job { posting: Posting, vector: Vec<f32> },
    /// A subscription's resume embedding (new or changed subscription).
    Subscription {
        profile: SubscriptionProfile,
        vector: Vec<f32>,
    },
    /// The subscription was deleted: forget its resume vector.
    SubscriptionDeleted { name: String },
    /// The posting closed on its board: forget its vector, match it no more.
    JobClosed { id: String },
}

/// Why a posting matched a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// Cosine similarity of resume and posting.
    pub score: f32,
    pub min_score: f32,
    /// `mustHave` and `preferred` terms found in the posting.
    pub matched_terms: Vec<String>,
    /// `preferred` terms not found.
    pub missing_terms: Vec<String>,
    /// Each hard filter, as it passed (e.g. `remote: allowed (posting is remote)`).
    pub filters: Vec<String>,
}

/// A message on the MATCHES stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchFound {
    pub subscription: String,
    pub posting: Posting,
    pub explanation: Explanation,
}

impl MatchFound {
    /// The idempotency key of this notice: one per (subscription, job), ever. A re-post
    /// is the job it repeats, so nobody hears of the same job twice.
    pub fn notice_key(&self) -> String {
        let job = self
            .posting
            .repost_of
            .as_deref()
            .unwrap_or(&self.posting.id);
        format!("{}.{}", self.subscription, crate::ids::kv_key(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_counts_add_field_by_field() {
        let mut total = PollCounts {
            new: 1,
            closed: 2,
            ..PollCounts::default()
        };
        total += PollCounts {
            new: 3,
            duplicates: 4,
            filtered: 5,
            ..PollCounts::default()
        };
        assert_eq!(
            total,
            PollCounts {
                new: 4,
                closed: 2,
                duplicates: 4,
                filtered: 5,
                ..PollCounts::default()
            }
        );
    }
}
