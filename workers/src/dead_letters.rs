//! DEAD_LETTERS: what a stage gave up on, kept with its stage, reason, original subject
//! and payload, listed, sent back to its stage (redrive) or purged by
//! `jobmatch dead-letters`.

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage as Publish;
use futures::StreamExt;
use jobmatch_core::messages::{self as m, dead_letter as header};

use crate::bus::Bus;

/// One dead letter, as read back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    /// Its sequence in DEAD_LETTERS: what `redrive` and `purge` name.
    pub sequence: u64,
    pub stage: String,
    pub reason: String,
    /// Where it was first published, and where a redrive sends it.
    pub subject: String,
    pub deliveries: u64,
    pub at: String,
    #[serde(skip)]
    pub payload: bytes::Bytes,
}

/// Header values are one line of printable ASCII; reasons are errors in words.
fn header_value(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .collect();
    line.chars().take(1000).collect()
}

/// Dead-letters `payload` (first published on `subject`) for `stage`.
pub async fn publish(
    bus: &Bus,
    stage: &str,
    subject: &str,
    payload: bytes::Bytes,
    reason: &str,
    deliveries: u64,
) -> Result<(), async_nats::Error> {
    let mut headers = HeaderMap::new();
    headers.insert(header::STAGE, stage);
    headers.insert(header::REASON, header_value(reason).as_str());
    headers.insert(header::SUBJECT, subject);
    headers.insert(header::DELIVERIES, deliveries.to_string().as_str());
    headers.insert(header::AT, jobmatch_core::rfc3339_now().as_str());
    bus.js
        .send_publish(
            m::dead_letter_subject(stage, subject),
            Publish::build().headers(headers).payload(payload),
        )
        .await?
        .await?;
    Ok(())
}

/// Every dead letter (of `stage`, when given), oldest first.
pub async fn list(bus: &Bus, stage: Option<&str>) -> Result<Vec<DeadLetter>, async_nats::Error> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    let mut stream = bus.js.get_stream(m::DEAD_LETTER_STREAM).await?;
    let total = stream.info().await?.state.messages;
    let mut out = Vec::new();
    if total == 0 {
        return Ok(out);
    }
    let filter = match stage {
        Some(stage) => format!("jobmatch.dead.{stage}.>"),
        None => m::DEAD_LETTER_SUBJECTS.to_owned(),
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Ok(Some(message)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), messages.next()).await
    {
        let message = message?;
        let info = message.info()?;
        let (sequence, pending) = (info.stream_sequence, info.pending);
        let get = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        out.push(DeadLetter {
            sequence,
            stage: get(header::STAGE),
            reason: get(header::REASON),
            subject: get(header::SUBJECT),
            deliveries: get(header::DELIVERIES).parse().unwrap_or(0),
            at: get(header::AT),
            payload: message.payload.clone(),
        });
        if pending == 0 {
            break;
        }
    }
    Ok(out)
}

/// Sends each dead letter back to the subject it came from (its stage consumes it again)
/// and removes it. Those without an original subject are left in place.
pub async fn redrive(bus: &Bus, letters: &[DeadLetter]) -> Result<usize, async_nats::Error> {
    let stream = bus.js.get_stream(m::DEAD_LETTER_STREAM).await?;
    let mut sent = 0;
    for letter in letters {
        if letter.subject.is_empty() {
            tracing::warn!(
                sequence = letter.sequence,
                "dead letter without its original subject; left in place"
            );
            continue;
        }
        bus.js
            .send_publish(
                letter.subject.clone(),
                Publish::build()
                    .message_id(m::message_id::redrive(letter.sequence))
                    .payload(letter.payload.clone()),
            )
            .await?
            .await?;
        stream.delete_message(letter.sequence).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Removes dead letters for good.
pub async fn purge(bus: &Bus, letters: &[DeadLetter]) -> Result<usize, async_nats::Error> {
    let stream = bus.js.get_stream(m::DEAD_LETTER_STREAM).await?;
    for letter in letters {
        stream.delete_message(letter.sequence).await?;
    }
    Ok(letters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_become_one_header_line() {
        assert_eq!(
            header_value("email: 550 no such user\r\nsecond line"),
            "email: 550 no such user  second line"
        );
        assert_eq!(header_value(&"x".repeat(5000)).len(), 1000);
    }
}
