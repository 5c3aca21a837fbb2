//! Fetching: poll job boards, normalize their postings, deduplicate, publish what changed.
//!
//! Contract: reads `source.*` entries of the config bucket; for each due source (claimed
//! through the schedule bucket, so replicas never double-poll) GETs the board politely
//! (conditional GET, a token bucket per host, backoff honouring `Retry-After`), and
//! classifies every posting against what all replicas remember in the postings bucket:
//! new and updated postings are published to `jobmatch.jobs.<source>` with
//! `Nats-Msg-Id` = `<posting id>:<content hash>`, a posting gone from its board is
//! published once more as closed, the same job already known from another board is not
//! published again, and a new id with a known description is published flagged as a
//! re-post. A malformed posting is counted and skipped; a failing board is reported and
//! retried at its next interval, never fatal.
//!
//! Layout: `boards/` holds one connector per board (pure parsers plus the requests they
//! need), `http` the polite client, `dedup` the three-tier index, `publish` the edge that
//! writes to NATS, `role` the poll loop.

pub mod boards;
pub mod dedup;
pub mod http;
pub mod normalize;
pub mod publish;
pub mod role;
pub mod schedule;
pub mod service;
pub mod text;

use jobmatch_core::messages::SourceConfig;
use jobmatch_core::{Board, Posting};
use serde::de::DeserializeOwned;

use self::http::{BoardClient, Fetched, HttpError, Validators};

/// Postings read from one board response.
#[derive(Debug, Default)]
pub struct Page {
    pub postings: Vec<Posting>,
    /// Elements that could not be read, each with where and why.
    pub errors: Vec<PostingError>,
}

/// A posting the board served that could not be normalized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct PostingError {
    /// Where in the response, e.g. `jobs[3].id` or `item 12`.
    pub location: String,
    pub message: String,
}

/// A board response that could not be read at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Says where, e.g. `expected value at line 1 column 27`.
    pub message: String,
}

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<serde_json::Error> for ParseError {
    fn from(e: serde_json::Error) -> Self {
        Self::new(e.to_string())
    }
}

impl<E: std::fmt::Display> From<serde_path_to_error::Error<E>> for ParseError {
    fn from(e: serde_path_to_error::Error<E>) -> Self {
        let path = e.path().to_string();
        Self::new(format!("{path}: {}", e.inner()))
    }
}

/// Reads a whole JSON document, naming the field where it went wrong.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Reads each element of a JSON array on its own, so one bad posting is reported (with
/// its path) and skipped while the rest are kept. `normalize` returns `Ok(None)` for an
/// element that is not a posting at all (a legal notice, an unlisted job).
pub fn read_items<T: DeserializeOwned>(
    path: &str,
    items: Vec<serde_json::Value>,
    page: &mut Page,
    mut normalize: impl FnMut(T) -> Result<Option<Posting>, String>,
) {
    for (index, value) in items.into_iter().enumerate() {
        let location = |inner: &str| {
            if inner.is_empty() || inner == "." {
                format!("{path}[{index}]")
            } else {
                format!("{path}[{index}].{inner}")
            }
        };
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(item) => match normalize(item) {
                Ok(Some(posting)) => page.postings.push(posting),
                Ok(None) => {}
                Err(message) => page.errors.push(PostingError {
                    location: location(""),
                    message,
                }),
            },
            Err(e) => page.errors.push(PostingError {
                location: location(&e.path().to_string()),
                message: e.into_inner().to_string(),
            }),
        }
    }
}

/// Runs CPU-bound work (parsing, HTML to text) without stalling the async runtime's
/// other tasks: on a multi-threaded runtime the worker thread hands its tasks over first.
pub fn cpu_bound<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Who postings are attributed to: the `JobSource` and the board identity.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub source: &'a str,
    pub kind: &'a str,
    pub identity: &'a str,
}

impl Origin<'_> {
    /// `board:identity:native-id`.
    pub fn id(&self, native: impl std::fmt::Display) -> String {
        format!("{}:{}:{native}", self.kind, self.identity)
    }

    /// A posting attributed to this origin with the fields every board has.
    pub fn posting(
        &self,
        native: impl std::fmt::Display,
        title: &str,
        company: &str,
        url: &str,
    ) -> Posting {
        Posting {
            id: self.id(native),
            source: self.source.to_owned(),
            title: normalize::clean_line(title),
            company: normalize::clean_line(company),
            url: url.trim().to_owned(),
            ..Posting::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url}: malformed response: {source}")]
    Parse { url: String, source: ParseError },
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

    /// The HTTP status the board answered with, when that is what failed.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            PollError::Http(e) => e.status(),
            _ => None,
        }
    }
}

/// Most pages (or detail requests) read from one board in one poll.
pub const MAX_PAGES: usize = 500;

/// The requests of one poll: the first may be conditional, the rest are plain.
pub struct Requests<'a> {
    client: &'a BoardClient,
    validators: Option<&'a Validators>,
    /// Validators of the first response, kept only when the poll made one request.
    first: Option<Validators>,
    pub count: usize,
    pub last_status: Option<u16>,
}

impl<'a> Requests<'a> {
    pub fn new(client: &'a BoardClient, validators: Option<&'a Validators>) -> Self {
        Self {
            client,
            validators,
            first: None,
            count: 0,
            last_status: None,
        }
    }

    /// GETs the poll's first URL, conditionally when the last poll left validators for
    /// it; `None` means the board answered 304 Not Modified.
    pub async fn first(&mut self, url: &str, accept: &str) -> Result<Option<Vec<u8>>, PollError> {
        let conditional = self.validators.filter(|v| v.url == url);
        self.send(url, accept, conditional).await
    }

    /// A board read in one request: a conditional GET, then `parse` off the runtime.
    /// `None` means 304 Not Modified.
    pub async fn single(
        &mut self,
        url: String,
        accept: &str,
        parse: impl FnOnce(&[u8]) -> Result<Page, ParseError>,
    ) -> Result<Option<Page>, PollError> {
        let Some(body) = self.first(&url, accept).await? else {
            return Ok(None);
        };
        cpu_bound(|| parse(&body))
            .map(Some)
            .map_err(|source| PollError::Parse { url, source })
    }

    /// One page of a paged board: the first conditional (`None` on 304), the rest not.
    pub async fn page(
        &mut self,
        first: bool,
        url: &str,
        accept: &str,
    ) -> Result<Option<Vec<u8>>, PollError> {
        if first {
            self.first(url, accept).await
        } else {
            self.next(url, accept).await.map(Some)
        }
    }

    /// GETs a further page or detail of the same poll.
    pub async fn next(&mut self, url: &str, accept: &str) -> Result<Vec<u8>, PollError> {
        self.send(url, accept, None).await?.ok_or_else(|| {
            PollError::Http(HttpError::Status {
                url: url.to_owned(),
                status: 304,
            })
        })
    }

    async fn send(
        &mut self,
        url: &str,
        accept: &str,
        conditional: Option<&Validators>,
    ) -> Result<Option<Vec<u8>>, PollError> {
        if self.count >= MAX_PAGES {
            return Err(PollError::TooManyPages {
                url: url.to_owned(),
            });
        }
        self.count += 1;
        let fetched = self.client.get(url, accept, conditional).await;
        if let Err(e) = &fetched {
            self.last_status = e.status();
        }
        match fetched? {
            Fetched::NotModified => {
                self.last_status = Some(304);
                Ok(None)
            }
            Fetched::Body {
                body,
                validators,
                status,
            } => {
                self.last_status = Some(status);
                if self.count == 1 {
                    self.first = validators;
                }
                Ok(Some(body))
            }
        }
    }

    /// The validators worth keeping for the next poll: only a one-request poll can be
    /// skipped whole on a 304.
    pub fn validators(&self) -> Option<Validators> {
        if self.count == 1 {
            self.first.clone()
        } else {
            None
        }
    }
}

/// What one poll of a source produced.
#[derive(Debug, Default)]
pub struct Poll {
    pub postings: Vec<Posting>,
    pub skipped: Vec<PostingError>,
    /// Postings dropped by the source's `titleIncludes`.
    pub filtered: usize,
    /// The board answered 304: nothing changed since the last poll.
    pub not_modified: bool,
    /// To send with the next poll's first request.
    pub validators: Option<Validators>,
    pub http_status: Option<u16>,
    pub requests: usize,
}

/// Polls a source once: every page, normalized and filtered. `validators` from the
/// previous poll make the first request conditional.
pub async fn poll(
    client: &BoardClient,
    source: &SourceConfig,
    validators: Option<&Validators>,
) -> Result<Poll, PollError> {
    let spec = &source.spec;
    let identity = spec.board.identity();
    let origin = Origin {
        source: &source.name,
        kind: spec.board.kind(),
        identity: &identity,
    };
    let mut requests = Requests::new(client, validators);
    let base = spec.base_url();
    let page = match &spec.board {
        Board::Greenhouse { token } => {
            boards::greenhouse::poll(&mut requests, origin, base, token).await
        }
        Board::Lever { site, .. } => boards::lever::poll(&mut requests, origin, base, site).await,
        Board::Ashby { name } => boards::ashby::poll(&mut requests, origin, base, name).await,
        Board::SmartRecruiters { company } => {
            boards::smartrecruiters::poll(&mut requests, origin, base, company).await
        }
        Board::Workable { account } => {
            boards::workable::poll(&mut requests, origin, base, account).await
        }
        Board::RemoteOk {} => boards::remoteok::poll(&mut requests, origin, base).await,
        Board::Remotive { category } => {
            boards::remotive::poll(&mut requests, origin, base, category.as_deref()).await
        }
        Board::Arbeitnow {} => boards::arbeitnow::poll(&mut requests, origin, base).await,
        Board::HackerNews {} => boards::hackernews::poll(&mut requests, origin, base).await,
        Board::Feed { url, company } => {
            boards::feed::poll(&mut requests, origin, url, company.as_deref()).await
        }
        Board::CareerPage { url, company } => {
            boards::careerpage::poll(&mut requests, origin, url, company.as_deref()).await
        }
    }?;
    let mut poll = Poll {
        validators: requests.validators(),
        http_status: requests.last_status,
        requests: requests.count,
        ..Poll::default()
    };
    let Some(page) = page else {
        poll.not_modified = true;
        return Ok(poll);
    };
    poll.skipped = page.errors;
    for mut posting in page.postings {
        normalize::unique_tags(&mut posting.tags);
        if spec.keeps_title(&posting.title) {
            poll.postings.push(posting);
        } else {
            poll.filtered += 1;
        }
    }
    Ok(poll)
}

/// Parses one response of a board's main listing with no network: what the fuzz targets,
/// the corpus replay and the benchmark drive. `kind` is a board kind (`greenhouse`, ...).
pub fn parse_listing(kind: &str, body: &[u8]) -> Result<Page, ParseError> {
    let origin = Origin {
        source: "fuzz",
        kind,
        identity: "fuzz",
    };
    match kind {
        "greenhouse" => boards::greenhouse::parse(origin, body),
        "lever" => boards::lever::parse(origin, body).map(|(page, _)| page),
        "ashby" => boards::ashby::parse(origin, body),
        "smartrecruiters" => boards::smartrecruiters::parse_list(origin, body).map(|l| l.page),
        "smartrecruiters-detail" => {
            boards::smartrecruiters::parse_detail(body).map(|_| Page::default())
        }
        "workable" => boards::workable::parse(origin, body),
        "remoteok" => boards::remoteok::parse(origin, body),
        "remotive" => boards::remotive::parse(origin, body),
        "arbeitnow" => boards::arbeitnow::parse(origin, body).map(|(page, _)| page),
        "hackernews" => boards::hackernews::parse_thread(origin, body),
        "hackernews-search" => boards::hackernews::parse_search(body).map(|_| Page::default()),
        "feed" => boards::feed::parse(origin, body, None),
        "careerpage" => {
            boards::careerpage::parse(origin, body, "https://example.com/careers", None)
        }
        other => Err(ParseError::new(format!("unknown board kind {other:?}"))),
    }
}

/// Every name [`parse_listing`] accepts.
pub const PARSERS: &[&str] = &[
    "greenhouse",
    "lever",
    "ashby",
    "smartrecruiters",
    "smartrecruiters-detail",
    "workable",
    "remoteok",
    "remotive",
    "arbeitnow",
    "hackernews",
    "hackernews-search",
    "feed",
    "careerpage",
];
