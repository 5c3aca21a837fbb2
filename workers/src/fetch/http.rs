//! The HTTP client boards are polled with, built to be polite: a `User-Agent` naming
//! the project, conditional GET (`If-None-Match` / `If-Modified-Since`), a token bucket
//! per host with jitter, retries with exponential backoff on 429 and 5xx that honour
//! `Retry-After` (for every request to that host, not just the one that got it),
//! timeouts, and a ceiling on body size so one broken board cannot exhaust memory.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultKeyedRateLimiter, Jitter, Quota, RateLimiter};
use reqwest::header::{self, HeaderMap};
use serde::{Deserialize, Serialize};

/// Identifies us to the boards, as their terms ask.
pub const USER_AGENT: &str = concat!(
    "jobmatch/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/jobmatch/jobmatch)"
);

/// Largest board response read; larger ones are refused, not truncated.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Longest `Retry-After` waited out within one poll; a longer one fails the poll, and
/// the host stays closed to us until it has passed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("GET {url}: timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: HTTP {status}, retry after {retry_after:?}")]
    Throttled {
        url: String,
        status: u16,
        retry_after: Duration,
    },
    #[error("GET {url}: response larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("GET {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
}

impl HttpError {
    pub fn category(&self) -> &'static str {
        match self {
            HttpError::Timeout { .. } => "timeout",
            HttpError::Status { .. } => "http_status",
            HttpError::Throttled { .. } => "throttled",
            HttpError::TooLarge { .. } => "too_large",
            HttpError::Transport { .. } => "transport",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } | HttpError::Throttled { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth another try within this poll: throttling, server errors, timeouts and
    /// broken connections; never a 4xx other than 429.
    fn is_transient(&self) -> bool {
        match self {
            HttpError::Throttled { retry_after, .. } => *retry_after <= MAX_RETRY_AFTER,
            HttpError::Status { status, .. } => *status >= 500,
            HttpError::Timeout { .. } | HttpError::Transport { .. } => true,
            HttpError::TooLarge { .. } => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// What makes the next GET of a URL conditional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    fn from_headers(url: &str, headers: &HeaderMap) -> Option<Self> {
        let get = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (etag, last_modified) = (get(header::ETAG), get(header::LAST_MODIFIED));
        (etag.is_some() || last_modified.is_some()).then(|| Self {
            url: url.to_owned(),
            etag,
            last_modified,
        })
    }
}

/// A board's answer.
#[derive(Debug)]
pub enum Fetched {
    /// 304: unchanged since the validators were issued.
    NotModified,
    Body {
        body: Vec<u8>,
        validators: Option<Validators>,
        status: u16,
    },
}

/// How hard to knock on one host.
#[derive(Debug, Clone, Copy)]
pub struct Politeness {
    /// Sustained requests per second to one host, from one process.
    pub per_host_per_second: NonZeroU32,
    /// Requests that may go at once after a quiet spell.
    pub burst: NonZeroU32,
    /// Random extra wait before each request, up to this long.
    pub jitter: Duration,
    /// Attempts per request on 429, 5xx, timeouts and transport errors.
    pub attempts: usize,
    /// First backoff, doubled per attempt (a `Retry-After` replaces it).
    pub backoff: Duration,
}

impl Default for Politeness {
    fn default() -> Self {
        Self {
            per_host_per_second: NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
            jitter: Duration::from_millis(250),
            attempts: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

#[derive(Clone)]
pub struct BoardClient {
    client: reqwest::Client,
    timeout: Duration,
    politeness: Politeness,
    buckets: Arc<DefaultKeyedRateLimiter<String>>,
    /// Hosts that asked us to wait (`Retry-After`), and until when.
    closed_until: Arc<Mutex<HashMap<String, Instant>>>,
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_default()
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

impl BoardClient {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Self::with_politeness(timeout, Politeness::default())
    }

    pub fn with_politeness(
        timeout: Duration,
        politeness: Politeness,
    ) -> Result<Self, reqwest::Error> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .build()?;
        let quota = Quota::per_second(politeness.per_host_per_second).allow_burst(politeness.burst);
        Ok(Self {
            client,
            timeout,
            politeness,
            buckets: Arc::new(RateLimiter::keyed(quota)),
            closed_until: Arc::default(),
        })
    }

    /// GETs a URL: waits its turn for the host, retries transient failures (honouring
    /// `Retry-After`), and fails on other non-2xx answers, timeouts and huge bodies.
    pub async fn get(
        &self,
        url: &str,
        accept: &str,
        validators: Option<&Validators>,
    ) -> Result<Fetched, HttpError> {
        let host = host_of(url);
        let p = self.politeness;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(p.backoff)
            .with_max_delay(MAX_RETRY_AFTER)
            .with_max_times(p.attempts.saturating_sub(1))
            .with_jitter();
        (|| self.attempt(&host, url, accept, validators))
            .retry(backoff)
            .when(HttpError::is_transient)
            .notify(|e, after| tracing::info!(error = %e, retry_in = ?after, "board request will be retried"))
            .adjust(|e, planned| e.retry_after().or(planned))
            .await
    }

    /// How long the host asked us to stay away, if it did.
    fn closed_for(&self, host: &str) -> Option<Duration> {
        let until = self.closed_until.lock().ok()?.get(host).copied()?;
        until.checked_duration_since(Instant::now())
    }

    /// Waits until the host may be asked again: its `Retry-After`, then its bucket.
    async fn wait_turn(&self, host: &str) {
        let until = self
            .closed_until
            .lock()
            .ok()
            .and_then(|m| m.get(host).copied());
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
        self.buckets
            .until_key_ready_with_jitter(&host.to_owned(), Jitter::up_to(self.politeness.jitter))
            .await;
    }

    async fn attempt(
        &self,
        host: &str,
        url: &str,
        accept: &str,
        validators: Option<&Validators>,
    ) -> Result<Fetched, HttpError> {
        if let Some(remaining) = self.closed_for(host)
            && remaining > MAX_RETRY_AFTER
        {
            // Not worth holding a poll for: fail now, the schedule brings us back.
            return Err(HttpError::Throttled {
                url: url.to_owned(),
                status: 429,
                retry_after: remaining,
            });
        }
        self.wait_turn(host).await;
        let result = tokio::time::timeout(self.timeout, self.send(url, accept, validators))
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Timeout {
                    url: url.to_owned(),
                    after: self.timeout,
                })
            });
        if let Err(HttpError::Throttled { retry_after, .. }) = &result
            && let Ok(mut closed) = self.closed_until.lock()
        {
            closed.insert(host.to_owned(), Instant::now() + *retry_after);
        }
        result
    }

    async fn send(
        &self,
        url: &str,
        accept: &str,
        validators: Option<&Validators>,
    ) -> Result<Fetched, HttpError> {
        let transport = |source| HttpError::Transport {
            url: url.to_owned(),
            source,
        };
        let mut request = self.client.get(url).header(header::ACCEPT, accept);
        if let Some(v) = validators {
            if let Some(etag) = &v.etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &v.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, modified);
            }
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || (status.is_server_error() && response.headers().contains_key(header::RETRY_AFTER))
        {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after)
                .unwrap_or(self.politeness.backoff);
            return Err(HttpError::Throttled {
                url: url.to_owned(),
                status: status.as_u16(),
                retry_after,
            });
        }
        if !status.is_success() {
            return Err(HttpError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let too_large = || HttpError::TooLarge {
            url: url.to_owned(),
            limit: MAX_BODY_BYTES,
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let validators = Validators::from_headers(url, response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body {
            body,
            validators,
            status: status.as_u16(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        let later = SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn hosts_include_their_port() {
        assert_eq!(host_of("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(host_of("https://api.lever.co/v0"), "api.lever.co:443");
    }
}
