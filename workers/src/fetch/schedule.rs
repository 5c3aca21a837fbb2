//! Poll scheduling without a leader: each source's next-due time is an entry of the
//! schedule bucket, and a replica claims a due poll by moving that time forward with
//! compare-and-swap on the entry's revision. Exactly one replica wins each poll.

use std::time::Duration;

use async_nats::jetstream::kv;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
#[error("schedule bucket: {0}")]
pub struct ScheduleError(String);

/// Milliseconds since the epoch, as schedule entries store them.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The outcome of trying to claim a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller polls now; the next poll is due at `next_due_ms`.
    Won { next_due_ms: i64 },
    /// Not due before `until_ms` (epoch milliseconds): no need to ask again until then.
    NotDue { until_ms: i64 },
    /// Another replica claimed it first.
    Lost,
}

/// Claims the source's poll if it is due, moving its due time `interval` ahead.
pub async fn claim_due(
    store: &kv::Store,
    source: &str,
    interval: Duration,
) -> Result<Claim, ScheduleError> {
    let now = now_ms();
    let next_due_ms = now + interval.as_millis() as i64;
    let next = next_due_ms.to_string();
    let entry = store
        .entry(source)
        .await
        .map_err(|e| ScheduleError(e.to_string()))?;
    match entry {
        Some(entry) if entry.operation == kv::Operation::Put => {
            let due: i64 = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if due > now {
                return Ok(Claim::NotDue { until_ms: due });
            }
            match store.update(source, next.into(), entry.revision).await {
                Ok(_) => Ok(Claim::Won { next_due_ms }),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Claim::Lost),
                Err(e) => Err(ScheduleError(e.to_string())),
            }
        }
        _ => match store.create(source, next.into()).await {
            Ok(_) => Ok(Claim::Won { next_due_ms }),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Claim::Lost),
            Err(e) => Err(ScheduleError(e.to_string())),
        },
    }
}
