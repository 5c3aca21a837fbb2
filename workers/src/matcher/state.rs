//! What the matchers remember between messages, in the matcher-state bucket (shared by
//! every matcher replica): the newest version of each posting applied, so that an update
//! and a close embedded by two embedders and arriving out of order cannot bring a closed
//! job back; and the digest of each subscription last backfilled, so a restarted embedder
//! republishing an unchanged resume starts no second backfill.

use async_nats::jetstream::kv;
use jobmatch_core::ids::kv_key;

use super::role::MatchError;

/// Attempts at a compare-and-swap before giving up (another matcher kept winning).
const CAS_ATTEMPTS: usize = 8;

pub struct MatcherState(pub kv::Store);

fn job_key(id: &str) -> String {
    format!("job.{}", kv_key(id))
}

fn subscription_key(name: &str) -> String {
    format!("subscription.{name}")
}

fn state_error(e: impl std::fmt::Display) -> MatchError {
    MatchError::State(e.to_string())
}

/// Whether a posting message of `version` should be applied, given the newest applied.
pub fn is_current(applied: Option<u64>, version: u64) -> bool {
    applied.is_none_or(|applied| version >= applied)
}

impl MatcherState {
    /// Records `version` of posting `id` as applied, unless a newer version is recorded;
    /// true when the caller should apply it. A redelivery of the newest version is
    /// applied again (its effects are idempotent); version 0 (unknown) always applies.
    pub async fn apply(&self, id: &str, version: u64, closed: bool) -> Result<bool, MatchError> {
        if version == 0 {
            return Ok(true);
        }
        let key = job_key(id);
        let value: bytes::Bytes = serde_json::json!({"version": version, "closed": closed})
            .to_string()
            .into();
        for _ in 0..CAS_ATTEMPTS {
            let entry = self.0.entry(key.clone()).await.map_err(state_error)?;
            let live = entry.filter(|e| e.operation == kv::Operation::Put);
            let applied = live.as_ref().and_then(|e| {
                serde_json::from_slice::<serde_json::Value>(&e.value)
                    .ok()?
                    .get("version")?
                    .as_u64()
            });
            if !is_current(applied, version) {
                return Ok(false);
            }
            if applied == Some(version) {
                return Ok(true);
            }
            let written = match &live {
                Some(e) => self
                    .0
                    .update(&key, value.clone(), e.revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    }),
                None => self
                    .0
                    .create(&key, value.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.kind() == kv::CreateErrorKind::AlreadyExists,
                            e.to_string(),
                        )
                    }),
            };
            match written {
                Ok(()) => return Ok(true),
                // Another matcher wrote in between: read again.
                Err((true, _)) => continue,
                Err((false, e)) => return Err(state_error(e)),
            }
        }
        Err(state_error(format!(
            "version of {id}: still contended after {CAS_ATTEMPTS} attempts"
        )))
    }

    /// Whether the subscription's resume or criteria differ from its last backfill.
    pub async fn subscription_changed(&self, name: &str, digest: &str) -> Result<bool, MatchError> {
        if digest.is_empty() {
            return Ok(true);
        }
        let stored = self
            .0
            .get(subscription_key(name))
            .await
            .map_err(state_error)?;
        Ok(stored.as_deref() != Some(digest.as_bytes()))
    }

    pub async fn subscription_backfilled(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<(), MatchError> {
        if digest.is_empty() {
            return Ok(());
        }
        self.0
            .put(subscription_key(name), digest.to_owned().into())
            .await
            .map_err(state_error)?;
        Ok(())
    }

    pub async fn forget_subscription(&self, name: &str) -> Result<(), MatchError> {
        self.0
            .delete(subscription_key(name))
            .await
            .map_err(state_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_versions_never_overwrite_newer_ones() {
        assert!(is_current(None, 5));
        assert!(is_current(Some(5), 5), "a redelivery applies again");
        assert!(is_current(Some(5), 9));
        assert!(
            !is_current(Some(9), 5),
            "an update arriving after a later close"
        );
    }
}
