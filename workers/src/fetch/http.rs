//! The HTTP client boards are polled with: a `User-Agent` naming the project, timeouts,
//! and a ceiling on body size so one broken board cannot exhaust memory.

use std::time::Duration;

/// Identifies us to the boards, as their terms ask.
pub const USER_AGENT: &str = concat!(
    "jobmatch/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/jobmatch/jobmatch)"
);

/// Largest board response read; larger ones are refused, not truncated.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("GET {url}: timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
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
            HttpError::TooLarge { .. } => "too_large",
            HttpError::Transport { .. } => "transport",
        }
    }
}

#[derive(Clone)]
pub struct BoardClient {
    client: reqwest::Client,
    timeout: Duration,
}

impl BoardClient {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .build()?;
        Ok(Self { client, timeout })
    }

    /// GETs a URL and returns its body, failing on non-2xx, timeouts and huge bodies.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, HttpError> {
        tokio::time::timeout(self.timeout, self.get_inner(url))
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Timeout {
                    url: url.to_owned(),
                    after: self.timeout,
                })
            })
    }

    async fn get_inner(&self, url: &str) -> Result<Vec<u8>, HttpError> {
        let transport = |source| HttpError::Transport {
            url: url.to_owned(),
            source,
        };
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
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
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
