//! Fetching: poll job boards, normalize their postings, publish new and changed ones.
//!
//! Contract: reads `source.*` entries of the config bucket; for each due source (claimed
//! through the schedule bucket, so replicas never double-poll) GETs the board, publishes
//! every new or changed posting to `jobmatch.jobs.<source>` with `Nats-Msg-Id` =
//! `<posting id>:<content hash>`, and records the hash in the postings bucket, so a
//! re-poll publishes nothing that has not changed. A malformed posting is counted and
//! skipped; a failing board is logged and retried at its next interval, never fatal.

pub mod greenhouse;
pub mod http;
pub mod lever;
pub mod role;
pub mod schedule;
pub mod text;

use jobmatch_core::messages::SourceConfig;
use jobmatch_core::{Board, Posting, Workplace};

use self::http::{BoardClient, HttpError};

/// One board response, normalized.
#[derive(Debug, Default)]
pub struct BoardPage {
    pub postings: Vec<Posting>,
    /// Elements that could not be read, by position.
    pub errors: Vec<PostingError>,
    /// False when the board may have more pages.
    pub complete: bool,
}

/// A posting the board served that could not be normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct PostingError {
    pub index: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url}: malformed response: {source}")]
    Parse {
        url: String,
        source: serde_json::Error,
    },
    #[error("{url}: more than {MAX_PAGES} pages; stopping")]
    TooManyPages { url: String },
}

impl PollError {
    pub fn category(&self) -> &'static str {
        match self {
            PollError::Http(e) => e.category(),
            PollError::Parse { .. } => "parse",
            PollError::TooManyPages { .. } => "too_many_pages",
        }
    }
}

/// Most pages read from one board in one poll.
const MAX_PAGES: usize = 100;

/// What one poll of a source produced.
#[derive(Debug, Default)]
pub struct Poll {
    pub postings: Vec<Posting>,
    pub skipped: Vec<PostingError>,
    /// Postings dropped by the source's `titleIncludes`.
    pub filtered: usize,
}

/// Polls a source once: every page, normalized and filtered.
pub async fn poll(client: &BoardClient, source: &SourceConfig) -> Result<Poll, PollError> {
    let spec = &source.spec;
    let base = spec.base_url();
    let mut poll = Poll::default();
    let mut skip = 0;
    for _ in 0..MAX_PAGES {
        let url = match &spec.board {
            Board::Greenhouse { token } => greenhouse::url(base, token),
            Board::Lever { site, .. } => lever::url(base, site, skip),
        };
        let body = client.get(&url).await?;
        let parsed = match &spec.board {
            Board::Greenhouse { token } => greenhouse::parse(&source.name, token, &body),
            Board::Lever { site, .. } => lever::parse(&source.name, site, &body),
        };
        let page = parsed.map_err(|source| PollError::Parse {
            url: url.clone(),
            source,
        })?;
        skip += page.postings.len() + page.errors.len();
        poll.skipped.extend(page.errors);
        for posting in page.postings {
            if spec.keeps_title(&posting.title) {
                poll.postings.push(posting);
            } else {
                poll.filtered += 1;
            }
        }
        if page.complete {
            return Ok(poll);
        }
    }
    Err(PollError::TooManyPages {
        url: format!("{base} ({})", spec.board.kind()),
    })
}

/// Reads "Remote", "Hybrid" or "On-site" out of a free-text location.
pub fn workplace_from_location(location: &str) -> Option<Workplace> {
    let lower = location.to_lowercase();
    if lower.contains("hybrid") {
        Some(Workplace::Hybrid)
    } else if lower.contains("remote") || lower.contains("anywhere") {
        Some(Workplace::Remote)
    } else if lower.contains("on-site") || lower.contains("onsite") || lower.contains("in office") {
        Some(Workplace::Onsite)
    } else {
        None
    }
}
