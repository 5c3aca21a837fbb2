//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles, so
//! two operator replicas never write at the same time. Losing the lease ends the process
//! (Kubernetes restarts it as a follower). A clean stop releases the lease, and a
//! follower watches it, so the follower takes over at once (not when the lease would
//! have expired, by which time the leader's replacement pod may be up and win instead).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const LEASE_NAME: &str = "jobmatch-operator";
/// Seconds a holder's lease is valid without renewal: the longest a follower waits
/// after a leader vanished without releasing it.
pub const LEASE_SECONDS: u64 = 15;

/// The lease, held.
pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

/// A Lease nobody holds (released, or never taken).
pub fn is_free(lease: &Lease) -> bool {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .is_none_or(str::is_empty)
}

/// Waits until this process holds the lease.
pub async fn acquire(
    client: Client,
    namespace: &str,
    identity: String,
) -> Result<Leadership, LeaseManagerError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={LEASE_NAME}"));
    let mut freed = watcher(leases, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|lease| futures::future::ready(lease.ok().filter(is_free)))
        .boxed();
    loop {
        let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity.clone())
            .with_duration(LEASE_SECONDS)
            .with_grace(5)
            .build()
            .await?;
        let (mut rx, task) = manager.watch().await;
        loop {
            if *rx.borrow_and_update() {
                return Ok(Leadership { rx, task });
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break },
                // The manager sleeps until the holder's lease would expire; a released
                // lease is worth trying now: a fresh manager reads it and takes it.
                Some(_) = freed.next() => {
                    task.abort();
                    break;
                }
            }
        }
    }
}

impl Leadership {
    /// Resolves when the lease is lost.
    pub async fn lost(&mut self) {
        while *self.rx.borrow_and_update() {
            if self.rx.changed().await.is_err() {
                break;
            }
        }
    }

    /// Gives the lease up (the manager releases it once its channel closes).
    pub async fn release(self) {
        let Leadership { rx, task } = self;
        drop(rx);
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the lease failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the lease task failed"),
            Err(_) => tracing::warn!("releasing the lease timed out; it expires on its own"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;

    #[test]
    fn a_lease_without_a_holder_is_free() {
        let lease = |holder: Option<&str>| Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(is_free(&lease(None)));
        assert!(is_free(&lease(Some(""))));
        assert!(is_free(&Lease::default()));
        assert!(!is_free(&lease(Some("jobmatch-operator-abc"))));
    }
}
