//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles, so
//! two operator replicas never write at the same time. Losing the lease ends the process
//! (Kubernetes restarts it as a follower).

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

pub const LEASE_NAME: &str = "jobmatch-operator";

/// Waits until this process holds the lease; the receiver then says whether it still does.
pub async fn acquire(
    client: Client,
    namespace: &str,
    identity: String,
) -> Result<watch::Receiver<bool>, kube_lease_manager::LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut rx, _task) = manager.watch().await;
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            break;
        }
    }
    Ok(rx)
}
