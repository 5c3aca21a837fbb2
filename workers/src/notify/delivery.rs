//! Sending one notice, once: email through a pool of SMTP connections to the server
//! ([`super::smtp`], lettre's SMTP client), Slack through an incoming webhook. Retries
//! are the consumer's redeliveries (see `notify::role`), never a loop here, so a handler
//! holds its claim for one attempt.

use std::time::Duration;

use jobmatch_core::Channel;
use jobmatch_core::messages::MatchFound;
use lettre::Message;
use lettre::message::MultiPart;

use super::render;
use super::smtp::{SmtpPool, SmtpServer};

/// The longest one send may take by default: the notifier's claim outlives it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a send may be allowed: its claim (the timeout and a margin) must lapse
/// before the consumer's ack wait redelivers the match of a notifier that died.
pub const MAX_SEND_TIMEOUT: Duration =
    Duration::from_secs(jobmatch_core::messages::NOTIFIER_CONSUMER.ack_wait_secs - 20);

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
    pub fn retryable(&self) -> bool {
        match self {
            DeliveryError::Email { permanent, .. } => !permanent,
            DeliveryError::SlackTransport(_) => true,
            DeliveryError::NoSmtp => false,
            DeliveryError::SlackStatus { status, .. } => *status == 429 || *status >= 500,
        }
    }

    /// How long the far end asked us to wait (Slack's `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::SlackStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The notice's `Message-ID`: derived from its notice key, so a repeat after a crash
/// carries the same one and mail clients and providers collapse it.
pub fn message_id(notice_key: &str, from: &lettre::message::Mailbox) -> String {
    let domain = from.email.domain();
    format!("<{}@{domain}>", jobmatch_core::ids::kv_key(notice_key))
}

/// The header Slack notices carry with the same id.
pub const NOTICE_ID_HEADER: &str = "X-Jobmatch-Notice-Id";

pub struct Delivery {
    smtp: Option<SmtpPool>,
    from: lettre::message::Mailbox,
    http: reqwest::Client,
    timeout: Duration,
}

impl Delivery {
    /// `smtp_url` as lettre reads it (see [`SmtpServer::from_url`]): `smtp://host:port`
    /// (STARTTLS when offered is not attempted; add `?tls=required`),
    /// `smtps://user:pass@host` (implicit TLS); `smtp_ca` adds CA certificates (PEM) to
    /// the public roots. `connections` bounds the SMTP connections kept open (one per
    /// concurrent send); `timeout` bounds one send, connecting included (at most
    /// [`MAX_SEND_TIMEOUT`]).
    pub fn new(
        smtp_url: Option<&str>,
        smtp_ca: Option<&[u8]>,
        from: &str,
        connections: u32,
        timeout: Duration,
    ) -> Result<Self, DeliveryError> {
        let timeout = timeout.min(MAX_SEND_TIMEOUT);
        crate::tls::install_crypto_provider();
        let smtp = smtp_url
            .map(|url| SmtpPool::new(SmtpServer::from_url(url, smtp_ca)?, connections as usize))
            .transpose()
            .map_err(|e| DeliveryError::bad_email(e.to_string()))?;
        let from = from
            .parse()
            .map_err(|e| DeliveryError::bad_email(format!("sender {from:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(crate::fetch::http::USER_AGENT)
            .build()
            .map_err(|e| DeliveryError::SlackTransport(e.to_string()))?;
        Ok(Self {
            smtp,
            from,
            http,
            timeout,
        })
    }

    /// The longest one send takes.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One attempt at sending.
    pub async fn send(&self, channel: &Channel, found: &MatchFound) -> Result<(), DeliveryError> {
        match channel {
            Channel::Email { to } => self.email(to, found).await,
            Channel::Slack { webhook_url } => self.slack(webhook_url, found).await,
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
            .message_id(Some(message_id(&found.notice_key(), &self.from)))
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
        smtp.send(message.envelope(), &message.formatted(), self.timeout)
            .await
            .map_err(|e| DeliveryError::Email {
                permanent: e.is_permanent(),
                message: e.to_string(),
            })
    }

    /// Closes the SMTP connections politely (QUIT).
    pub async fn close(&self) {
        if let Some(smtp) = &self.smtp {
            smtp.close().await;
        }
    }

    async fn slack(&self, url: &str, found: &MatchFound) -> Result<(), DeliveryError> {
        let response = self
            .http
            .post(url)
            .header(
                NOTICE_ID_HEADER,
                jobmatch_core::ids::kv_key(&found.notice_key()),
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_follow_the_notice_key() {
        let from: lettre::message::Mailbox = "jobmatch <jm@example.org>".parse().unwrap();
        let a = message_id("ada.0123", &from);
        assert_eq!(a, message_id("ada.0123", &from));
        assert_ne!(a, message_id("ada.4567", &from));
        assert!(a.starts_with('<') && a.ends_with("@example.org>"), "{a}");
    }

    #[test]
    fn slack_rate_limits_are_retried_and_client_errors_are_not() {
        let status = |status, retry_after| DeliveryError::SlackStatus {
            status,
            retry_after,
        };
        assert!(status(429, Some(Duration::from_secs(3))).retryable());
        assert_eq!(
            status(429, Some(Duration::from_secs(3))).retry_after(),
            Some(Duration::from_secs(3))
        );
        assert!(status(503, None).retryable());
        assert!(!status(400, None).retryable());
        assert!(!DeliveryError::NoSmtp.retryable());
    }
}
