//! `jobmatch-operator uninstall`: what `helm uninstall` runs before it deletes anything
//! (the chart's pre-delete hook Job), so that no object of jobmatch is left behind and
//! deleting the custom resources afterwards does not hang on a finalizer that no
//! operator will ever remove:
//!
//! 1. scale the operator's Deployment to zero and wait until its pods are gone, so that
//!    no reconcile adds a finalizer back;
//! 2. take jobmatch's finalizer off every `MatchSubscription` (the resources stay: they
//!    are the user's, and so is their data in NATS, so a reinstall sends nothing twice);
//! 3. delete the leader Lease, the one object the operator creates without an owner.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::controller::SUBSCRIPTION_FINALIZER;
use crate::crd::MatchSubscription;
use crate::leader::LEASE_NAME;

/// The operator's pods, as the chart labels them.
const OPERATOR_PODS: &str = "app.kubernetes.io/name=jobmatch,app.kubernetes.io/component=operator";

#[derive(Debug, thiserror::Error)]
pub enum UninstallError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the operator's pods were still running after {0:?}")]
    PodsRemain(Duration),
}

/// The finalizers with jobmatch's taken out.
pub fn without_ours(finalizers: &[String]) -> Vec<String> {
    finalizers
        .iter()
        .filter(|f| *f != SUBSCRIPTION_FINALIZER)
        .cloned()
        .collect()
}

pub async fn run(
    client: Client,
    namespace: &str,
    deployment: &str,
    wait: Duration,
) -> Result<(), UninstallError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    if deployments.get_opt(deployment).await?.is_some() {
        deployments
            .patch(
                deployment,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
            )
            .await?;
        tracing::info!(%deployment, "scaled the operator to zero");
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let started = std::time::Instant::now();
    loop {
        let left = pods
            .list(&ListParams::default().labels(OPERATOR_PODS))
            .await?;
        if left.items.is_empty() {
            break;
        }
        if started.elapsed() > wait {
            return Err(UninstallError::PodsRemain(wait));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let subscriptions: Api<MatchSubscription> = Api::namespaced(client.clone(), namespace);
    let mut released = 0;
    for sub in subscriptions.list(&ListParams::default()).await? {
        let finalizers = sub.finalizers();
        let kept = without_ours(finalizers);
        if kept.len() == finalizers.len() {
            continue;
        }
        // A merge patch replaces the list; the resourceVersion makes it fail rather than
        // drop a finalizer someone else added meanwhile.
        let patch = serde_json::json!({"metadata": {
            "finalizers": kept,
            "resourceVersion": sub.resource_version(),
        }});
        subscriptions
            .patch(
                &sub.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
        released += 1;
    }
    let leases: Api<Lease> = Api::namespaced(client, namespace);
    let lease_deleted = match leases.delete(LEASE_NAME, &DeleteParams::default()).await {
        Ok(_) => true,
        Err(kube::Error::Api(e)) if e.code == 404 => false,
        Err(e) => return Err(e.into()),
    };
    tracing::info!(
        finalizers_removed = released,
        lease_deleted,
        "ready for helm to delete the rest"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jobmatchs_finalizer_is_taken_off() {
        let finalizers = vec![
            "example.com/backup".to_owned(),
            SUBSCRIPTION_FINALIZER.to_owned(),
        ];
        assert_eq!(
            without_ours(&finalizers),
            vec!["example.com/backup".to_owned()]
        );
        assert!(without_ours(&[SUBSCRIPTION_FINALIZER.to_owned()]).is_empty());
    }
}
