//! Request–reply over NATS: what the stateless `api` role asks of the roles that hold
//! the model, the vectors and the dedup index. Each subject is served by a queue group
//! of one role, so any replica answers and adding replicas adds capacity.
//!
//! ```text
//! api ─ jobmatch.rpc.embed ────► embedders  (the batching queue)
//!     ─ jobmatch.rpc.search ───► matchers   (the vector store: jobs and resumes)
//!     ─ jobmatch.rpc.resumes ──► matchers   (the candidate pool: put, delete)
//!     ─ jobmatch.rpc.postings ─► fetchers   (dedup, then JOBS like any board's posting)
//!     ─ jobmatch.rpc.fetch ────► fetchers   (poll a JobSource now)
//! ```
//! Every answer is a [`Reply`]: the value, or an [`RpcError`] whose kind the api turns
//! into an HTTP status. Nothing here is kept by NATS (core request–reply, no stream), so
//! a resume's text lives only in the store that holds it.

use serde::{Deserialize, Serialize};

use crate::messages::{Explanation, PollCounts};
use crate::{Criteria, Posting, Role};

pub const EMBED_SUBJECT: &str = "jobmatch.rpc.embed";
pub const SEARCH_SUBJECT: &str = "jobmatch.rpc.search";
pub const RESUMES_SUBJECT: &str = "jobmatch.rpc.resumes";
pub const POSTINGS_SUBJECT: &str = "jobmatch.rpc.postings";
pub const FETCH_SUBJECT: &str = "jobmatch.rpc.fetch";

/// Which role serves a subject (its queue group is the role's name).
pub fn server_of(subject: &str) -> Option<Role> {
    match subject {
        EMBED_SUBJECT => Some(Role::Embedder),
        SEARCH_SUBJECT | RESUMES_SUBJECT => Some(Role::Matcher),
        POSTINGS_SUBJECT | FETCH_SUBJECT => Some(Role::Fetcher),
        _ => None,
    }
}

/// Most texts in one embed request: 32 vectors of 384 floats stay far below NATS's
/// 1 MiB payload limit; the api splits larger requests and sends the pieces at once.
pub const EMBED_TEXTS_PER_REQUEST: usize = 32;

/// The source name of postings that came through the API (`JobSource`s may not take it).
pub const API_SOURCE: &str = "api";

/// The posting id of a job submitted through the API: `api:<id>` (an id already
/// starting with `api:` is kept), so dedup tells API jobs from board jobs.
pub fn api_posting_id(id: &str) -> String {
    let id = id.trim();
    if id.starts_with("api:") {
        id.to_owned()
    } else {
        format!("api:{id}")
    }
}

/// An answer: the value or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply<T> {
    Ok(T),
    Error(RpcError),
}

impl<T> Reply<T> {
    pub fn into_result(self) -> Result<T, RpcError> {
        match self {
            Reply::Ok(value) => Ok(value),
            Reply::Error(e) => Err(e),
        }
    }
}

impl<T> From<Result<T, RpcError>> for Reply<T> {
    fn from(result: Result<T, RpcError>) -> Self {
        match result {
            Ok(value) => Reply::Ok(value),
            Err(e) => Reply::Error(e),
        }
    }
}

/// What went wrong, in terms the api maps to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// The request is wrong (422).
    Invalid,
    /// What it names does not exist (404).
    NotFound,
    /// It exists already (409).
    Conflict,
    /// The answer would be too large (413).
    TooLarge,
    /// Busy: retry shortly (429).
    Overloaded,
    /// A job board failed or answered nonsense (502).
    Upstream,
    /// Not ready, or a dependency is down (503).
    Unavailable,
    /// The serving role did not answer in time (504).
    TimedOut,
    /// A failure on the serving side (500).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RpcError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// `jobmatch.rpc.embed`: texts to vectors through an embedder's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedRequest {
    pub texts: Vec<String>,
    /// The index of the first text in the caller's whole request (errors name texts by it).
    #[serde(default)]
    pub first_index: usize,
    /// Refuse texts over the model's limit instead of cutting them.
    #[serde(default)]
    pub refuse_overlong: bool,
    /// Embed texts over the model's limit whole, in pieces combined into one vector
    /// (resumes), instead of cutting them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chunk_overlong: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedReply {
    pub vectors: Vec<Vec<f32>>,
    pub dimension: usize,
    pub tokens: usize,
    pub truncated: usize,
}

/// `jobmatch.rpc.search`: ranked jobs for a resume, or ranked resumes for a job.
// One request at a time is decoded and answered: boxing the criteria would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "direction", rename_all = "camelCase")]
pub enum SearchRequest {
    /// Open jobs near `vector` that pass `criteria`.
    Jobs {
        vector: Vec<f32>,
        criteria: Criteria,
        limit: usize,
        offset: usize,
    },
    /// Resumes of the pool near `vector` (the posting's) scoring at least `min_score`,
    /// each checked against its own criteria; the remote and location rules only when
    /// `place_known` (the posting was given as fields, not as bare text).
    Resumes {
        vector: Vec<f32>,
        posting: Box<Posting>,
        place_known: bool,
        min_score: f32,
        limit: usize,
        offset: usize,
    },
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobHit {
    pub score: f32,
    pub posting: Posting,
    pub explanation: Explanation,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeHit {
    pub score: f32,
    pub resume: Resume,
    pub explanation: Explanation,
}

/// One page of hits, best first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub hits: Vec<T>,
    /// The `offset` of the next page, when there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
}

/// A resume of the candidate pool.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    pub id: String,
    pub text: String,
    /// What the candidate wants of a job; a posting that fails it is not offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<Criteria>,
    /// RFC 3339, when it was added or last updated.
    #[serde(default)]
    pub updated_at: String,
}

/// `jobmatch.rpc.resumes`: writes to the candidate pool.
// One command at a time is decoded and applied: boxing the resume would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum ResumeCommand {
    /// Stores a resume with its vector: `create` refuses an existing id, else it must exist.
    Put {
        resume: Resume,
        vector: Vec<f32>,
        create: bool,
    },
    /// Erases a resume: its text and vector.
    Delete { id: String },
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeWritten {
    pub id: String,
}

/// `jobmatch.rpc.postings`: a job from the API into the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum PostingCommand {
    /// Publishes a posting (source `api`), through dedup: `create` refuses a known id,
    /// else the id must be known and open.
    Submit { posting: Box<Posting>, create: bool },
    /// Closes an open posting.
    Close { id: String },
}

/// What dedup made of a submitted posting.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PostingOutcome {
    /// Published: subscribers will hear of it.
    New,
    /// Published again with its new content.
    Updated,
    /// The same content as before: nothing published.
    Unchanged,
    /// The same job is open from a board: remembered, not published.
    Duplicate,
    /// A known description under a new id: published, flagged.
    Repost,
    /// Published as closed.
    Closed,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostingAccepted {
    pub id: String,
    pub outcome: PostingOutcome,
    /// For a duplicate: the posting it duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

/// `jobmatch.rpc.fetch`: poll a configured JobSource now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchRequest {
    pub source: String,
}

/// What a poll found, as `jobmatch fetch` prints it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchReport {
    pub source: String,
    /// Postings the board listed (after `titleIncludes`).
    pub seen: usize,
    pub counts: PollCounts,
    /// The board answered 304: nothing changed.
    pub not_modified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub requests: usize,
    /// Each malformed posting skipped: where and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_with_their_kind() {
        let reply: Reply<ResumeWritten> =
            Reply::Error(RpcError::new(ErrorKind::NotFound, "no resume \"x\""));
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"kind":"notFound","message":"no resume \"x\""}}"#
        );
        let back: Reply<ResumeWritten> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, reply);
    }

    #[test]
    fn api_ids_carry_the_api_board_once() {
        assert_eq!(api_posting_id("acme-1"), "api:acme-1");
        assert_eq!(api_posting_id("api:acme-1"), "api:acme-1");
    }

    #[test]
    fn every_subject_has_one_server() {
        for subject in [
            EMBED_SUBJECT,
            SEARCH_SUBJECT,
            RESUMES_SUBJECT,
            POSTINGS_SUBJECT,
            FETCH_SUBJECT,
        ] {
            assert!(server_of(subject).is_some(), "{subject}");
        }
    }
}
