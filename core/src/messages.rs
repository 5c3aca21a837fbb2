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
/// Resume vectors by digest of model and resume text, so a restarted or added embedder
/// embeds no resume that has not changed.
pub const RESUME_VECTORS_BUCKET: &str = "jobmatch-resume-vectors";
/// What the matchers remember between messages: `job.<kv_key(id)>` holds the newest
/// version of each posting they applied (a late, older version is ignored), and
/// `subscription.<name>` the digest of the resume and criteria last backfilled.
pub const MATCHER_STATE_BUCKET: &str = "jobmatch-matcher-state";
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

/// A durable consumer that a role reads its input with, shared by all its replicas. Its
/// name is also the stage a dead letter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub stream: &'static str,
    pub name: &'static str,
    /// How long a delivered message may stay unacknowledged before redelivery.
    pub ack_wait_secs: u64,
    /// Deliveries of a message that keeps failing before it is dead-lettered. The server
    /// stops at [`ConsumerSpec::server_max_deliver`], a little later, so a message that
    /// crashes its handler every time cannot loop forever either.
    pub attempts: u32,
    /// Redelivery delay after the first failure, doubling with each delivery up to
    /// `retry_max_secs`.
    pub retry_first_ms: u64,
    pub retry_max_secs: u64,
}

impl ConsumerSpec {
    /// The consumer's `max_deliver`: the handler's attempts plus two deliveries that a
    /// crash (no Nak, no ack) may use up.
    pub const fn server_max_deliver(&self) -> i64 {
        self.attempts as i64 + 2
    }
}

/// The embedders' consumer: its lag is the work waiting for embedding.
pub const EMBEDDER_CONSUMER: ConsumerSpec = ConsumerSpec {
    stream: JOBS_STREAM,
    name: "embedder",
    ack_wait_secs: 60,
    attempts: 5,
    retry_first_ms: 2_000,
    retry_max_secs: 60,
};
/// The matchers' consumer.
pub const MATCHER_CONSUMER: ConsumerSpec = ConsumerSpec {
    stream: VECTORS_STREAM,
    name: "matcher",
    ack_wait_secs: 60,
    attempts: 5,
    retry_first_ms: 1_000,
    retry_max_secs: 30,
};
/// The notifiers' consumer. A delivery is one send attempt; eight of them, 2 s apart
/// at first and doubling, span about eight minutes of a mail server's outage.
pub const NOTIFIER_CONSUMER: ConsumerSpec = ConsumerSpec {
    stream: MATCHES_STREAM,
    name: "notifier",
    ack_wait_secs: 60,
    attempts: 8,
    retry_first_ms: 2_000,
    retry_max_secs: 300,
};
/// Every durable consumer, each reading one stream.
pub const CONSUMERS: [ConsumerSpec; 3] = [EMBEDDER_CONSUMER, MATCHER_CONSUMER, NOTIFIER_CONSUMER];
/// How many messages one consumer may have delivered and unacknowledged.
pub const MAX_ACK_PENDING: i64 = 1024;

/// The subject a source's postings are published on.
pub fn jobs_subject(source: &str) -> String {
    format!("jobmatch.jobs.{source}")
}

/// What every subject of MATCHES starts with; the subscription's name follows.
pub const MATCHES_SUBJECT_PREFIX: &str = "jobmatch.matches.";

/// The subject a subscription's matches are published on.
pub fn matches_subject(subscription: &str) -> String {
    format!("{MATCHES_SUBJECT_PREFIX}{subscription}")
}

/// The subject a message that `stage` (a consumer's name) gave up on is dead-lettered
/// on: `jobmatch.dead.<stage>.<the original subject's last token>`, so a notice's dead
/// letter is `jobmatch.dead.notifier.<subscription>`.
pub fn dead_letter_subject(stage: &str, original_subject: &str) -> String {
    let tail = original_subject
        .rsplit('.')
        .next()
        .unwrap_or(original_subject);
    format!("jobmatch.dead.{stage}.{tail}")
}

/// The dead letters of one subscription's notices.
pub fn notice_dead_letter_subject(subscription: &str) -> String {
    dead_letter_subject(NOTIFIER_CONSUMER.name, &matches_subject(subscription))
}

/// Headers a dead letter carries beside the original payload.
pub mod dead_letter {
    /// The consumer (stage) that gave up.
    pub const STAGE: &str = "Jobmatch-Stage";
    /// Why, in words.
    pub const REASON: &str = "Jobmatch-Reason";
    /// The subject the message was first published on (where a redrive sends it).
    pub const SUBJECT: &str = "Jobmatch-Subject";
    /// How many times it was delivered.
    pub const DELIVERIES: &str = "Jobmatch-Deliveries";
    /// When it was given up, RFC 3339.
    pub const AT: &str = "Jobmatch-Dead-At";
}

/// `Nats-Msg-Id`s: the same effect published twice within the duplicate window is stored
/// once. Each names what it publishes and the version of its content.
pub mod message_id {
    /// A posting on JOBS (`content` is dedup's content fingerprint).
    pub fn posting(id: &str, closed: bool, content: u64) -> String {
        if closed {
            format!("{id}:closed:{content:016x}")
        } else {
            format!("{id}:{content:016x}")
        }
    }
    /// A posting's vector on VECTORS.
    pub fn job_vector(id: &str, content_hash: &str) -> String {
        format!("job|{id}|{content_hash}")
    }
    /// A posting's closing on VECTORS.
    pub fn job_closed(id: &str, content_hash: &str) -> String {
        format!("job-closed|{id}|{content_hash}")
    }
    /// A resume's vector on VECTORS (`digest` of resume and criteria).
    pub fn subscription_vector(name: &str, digest: &str) -> String {
        format!("subscription|{name}|{digest}")
    }
    /// A match on MATCHES.
    pub fn match_found(subscription: &str, posting: &str, content_hash: &str) -> String {
        format!("{subscription}|{posting}|{content_hash}")
    }
    /// A dead letter sent back to its stage: unique per dead letter, so the duplicate
    /// window of the first publication does not swallow it.
    pub fn redrive(dead_letter_sequence: u64) -> String {
        format!("redrive|{dead_letter_sequence}")
    }
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    Job {
        posting: Posting,
        vector: Vec<f32>,
        /// The posting message's sequence in JOBS: a later version has a larger one, so a
        /// matcher can tell an older version arriving late (0: unknown).
        #[serde(default)]
        version: u64,
    },
    /// A subscription's resume embedding (new or changed subscription).
    Subscription {
        profile: SubscriptionProfile,
        vector: Vec<f32>,
        /// Digest of resume and criteria: the matcher backfills only when it changed.
        #[serde(default)]
        digest: String,
    },
    /// The subscription was deleted: forget its resume vector.
    SubscriptionDeleted { name: String },
    /// The posting closed on its board: forget its vector, match it no more.
    JobClosed {
        id: String,
        #[serde(default)]
        version: u64,
    },
}

/// Why a posting matched a subscription.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A [`MatchFound`] as it is written, borrowing its parts, the posting serialized
/// already: a job's hundreds of matches share one posting's JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchFoundJson<'a> {
    pub subscription: &'a str,
    pub posting: &'a serde_json::value::RawValue,
    pub explanation: &'a Explanation,
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

/// What a notice key holds: a claim while the notice is being sent, then `sent`.
///
/// A claim names its owner (one notifier process) and a deadline; a claim past its
/// deadline was left by a notifier that died mid-send, and the next delivery of the match
/// takes it over and sends. So a crash can at worst repeat a notice (when it fell after
/// the server accepted it and before `sent` was written), never lose one.
///
/// A sent notice keeps a summary of its match: once notified, a match leaves the MATCHES
/// stream, and this record is what `jobmatch report` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum NoticeState {
    #[serde(rename_all = "camelCase")]
    Sending {
        owner: String,
        /// Milliseconds since the epoch.
        until_ms: i64,
    },
    #[serde(rename_all = "camelCase")]
    Sent {
        at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<NoticeSummary>,
    },
}

/// What a sent notice told its subscriber, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoticeSummary {
    pub subscription: String,
    pub title: String,
    pub company: String,
    pub locations: Vec<String>,
    pub url: String,
    pub score: f32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matched_terms: Vec<String>,
}

impl NoticeSummary {
    pub fn of(found: &MatchFound) -> Self {
        Self {
            subscription: found.subscription.clone(),
            title: found.posting.title.clone(),
            company: found.posting.company.clone(),
            locations: found.posting.locations.clone(),
            url: found.posting.url.clone(),
            score: found.explanation.score,
            matched_terms: found.explanation.matched_terms.clone(),
        }
    }
}

impl NoticeState {
    /// Reads a key's value; the bare `sending` and `sent` of earlier versions are a claim
    /// long expired and a sent notice.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        match raw {
            b"sent" => Some(NoticeState::Sent {
                at: String::new(),
                summary: None,
            }),
            b"sending" => Some(NoticeState::Sending {
                owner: String::new(),
                until_ms: 0,
            }),
            _ => serde_json::from_slice(raw).ok(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // A derived Serialize of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn is_sent(&self) -> bool {
        matches!(self, NoticeState::Sent { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_written_with_its_posting_preserialized_reads_back_whole() {
        let found = MatchFound {
            subscription: "ada".into(),
            posting: crate::Posting {
                id: "greenhouse:acme:1".into(),
                title: "Backend \"Rust\" Engineer".into(),
                description: "Tokio, NATS\nand Kubernetes.".into(),
                ..Default::default()
            },
            explanation: Explanation {
                score: 0.61,
                min_score: 0.3,
                matched_terms: vec!["rust".into()],
                missing_terms: vec![],
                filters: vec!["remote: allowed (posting is remote)".into()],
            },
        };
        let posting = serde_json::value::to_raw_value(&found.posting).expect("json");
        let written = serde_json::to_vec(&MatchFoundJson {
            subscription: &found.subscription,
            posting: &posting,
            explanation: &found.explanation,
        })
        .expect("json");
        assert_eq!(
            serde_json::from_slice::<MatchFound>(&written).expect("reads"),
            found
        );
        assert_eq!(written, serde_json::to_vec(&found).expect("json"));
    }

    #[test]
    fn dead_letters_name_stage_and_origin() {
        assert_eq!(
            notice_dead_letter_subject("ada"),
            "jobmatch.dead.notifier.ada"
        );
        assert_eq!(
            dead_letter_subject("embedder", &jobs_subject("acme")),
            "jobmatch.dead.embedder.acme"
        );
        assert!(message_id::redrive(7) != message_id::redrive(8));
    }

    #[test]
    fn notice_states_round_trip_and_read_old_values() {
        let claim = NoticeState::Sending {
            owner: "notifier-1".into(),
            until_ms: 42,
        };
        assert_eq!(NoticeState::decode(&claim.encode()), Some(claim));
        let sent = NoticeState::Sent {
            at: "2026-12-02T10:00:00Z".into(),
            summary: Some(NoticeSummary {
                subscription: "ada".into(),
                title: "Backend Engineer".into(),
                company: "Acme".into(),
                locations: vec!["Berlin".into()],
                url: "https://example.org/1".into(),
                score: 0.61,
                matched_terms: vec!["rust".into()],
            }),
        };
        assert_eq!(NoticeState::decode(&sent.encode()).as_ref(), Some(&sent));
        assert!(NoticeState::decode(b"sent").unwrap().is_sent());
        assert_eq!(
            NoticeState::decode(b"sending"),
            Some(NoticeState::Sending {
                owner: String::new(),
                until_ms: 0
            })
        );
        assert_eq!(NoticeState::decode(b"{garbage"), None);
    }

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
