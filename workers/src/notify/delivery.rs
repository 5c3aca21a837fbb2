//! Sending one notice: email through lettre, Slack through an incoming webhook, retried
//! with exponential backoff (honouring `Retry-After`) on transient failures.

use std::time::Duration;

use jobmatch_core::Channel;
use jobmatch_core::messages::MatchFound;
use lettre::message::MultiPart;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::render;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("email: {message}")]
    Email { message: String, permanent: bool },
    #[error("no SMTP server configured (set --smtp-url or JOBMATCH_SMTP_URL)")]
    NoSmtp,
    #[error("slack webhook: HTTP {status}")]
    SlackStatus {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("slack webhook: {0}")]
    SlackTransport(String),
}

impl DeliveryError {
    /// An email that can never be sent as it is (bad address, bad configuration).
    fn bad_email(message: String) -> Self {
        DeliveryError::Email {
            message,
            permanent: true,
        }
    }

    pub fn channel(&self) -> &'static str {
        match self {
            DeliveryError::Email { .. } | DeliveryError::NoSmtp => "email",
            DeliveryError::SlackStatus { .. } | DeliveryError::SlackTransport(_) => "slack",
        }
    }

    /// Whether trying again may succeed.
    fn retryable(&self) -> bool {
        match self {
            DeliveryError::Email { permanent, .. } => !permanent,
            DeliveryError::SlackTransport(_) => true,
            DeliveryError::NoSmtp => false,
            DeliveryError::SlackStatus { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// How hard to try before giving a notice up to the dead-letter stream.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

pub struct Delivery {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: lettre::message::Mailbox,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl Delivery {
    /// `smtp_url` as lettre reads it: `smtp://host:port` (STARTTLS when offered is not
    /// attempted; add `?tls=required`), `smtps://user:pass@host` (implicit TLS).
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        retry: RetryPolicy,
    ) -> Result<Self, DeliveryError> {
        crate::tls::install_crypto_provider();
        let smtp = smtp_url
            .map(|url| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map(|b| b.timeout(Some(Duration::from_secs(30))).build())
            })
            .transpose()
            .map_err(|e| DeliveryError::bad_email(format!("SMTP URL: {e}")))?;
        let from = from
            .parse()
            .map_err(|e| DeliveryError::bad_email(format!("sender {from:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(crate::fetch::http::USER_AGENT)
            .build()
            .map_err(|e| DeliveryError::SlackTransport(e.to_string()))?;
        Ok(Self {
            smtp,
            from,
            http,
            retry,
        })
    }

    /// Sends, retrying transient failures; returns the last error once attempts run out.
    pub async fn send(&self, channel: &Channel, found: &MatchFound) -> Result<(), DeliveryError> {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        loop {
            let result = match channel {
                Channel::Email { to } => self.email(to, found).await,
                Channel::Slack { webhook_url } => self.slack(webhook_url, found).await,
            };
            let error = match result {
                Ok(()) => return Ok(()),
                Err(e) if !e.retryable() || attempt >= self.retry.attempts => return Err(e),
                Err(e) => e,
            };
            let wait = match &error {
                DeliveryError::SlackStatus {
                    retry_after: Some(after),
                    ..
                } => (*after).max(backoff),
                _ => backoff,
            };
            tracing::warn!(subscription = %found.subscription, attempt, error = %error, wait_ms = wait.as_millis() as u64, "notice failed; retrying");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
            attempt += 1;
        }
    }

    async fn email(&self, to: &str, found: &MatchFound) -> Result<(), DeliveryError> {
        let smtp = self.smtp.as_ref().ok_or(DeliveryError::NoSmtp)?;
        let to = to
            .parse()
            .map_err(|e| DeliveryError::bad_email(format!("recipient {to:?}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(render::subject(found))
            .raw_header(
                lettre::message::header::HeaderValue::dangerous_new_pre_encoded(
                    lettre::message::header::HeaderName::new_from_ascii_str("X-Jobmatch-Notice"),
                    found.notice_key(),
                    found.notice_key(),
                ),
            )
            .multipart(MultiPart::alternative_plain_html(
                render::text(found),
                render::html(found),
            ))
            .map_err(|e| DeliveryError::bad_email(e.to_string()))?;
        smtp.send(message).await.map_err(|e| DeliveryError::Email {
            permanent: e.is_permanent(),
            message: e.to_string(),
        })?;
        Ok(())
    }

    async fn slack(&self, url: &str, found: &MatchFound) -> Result<(), DeliveryError> {
        let response = self
            .http
            .post(url)
            .json(&render::slack(found))
            .send()
            .await
            .map_err(|e| DeliveryError::SlackTransport(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(DeliveryError::SlackStatus {
            status: status.as_u16(),
            retry_after,
        })
    }
}
