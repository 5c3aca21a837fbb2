//! The operator's edge to the Kubernetes API for the fleet: server-side apply of the
//! desired objects, skipped when the object already carries the same digest, so a
//! restart or a quiet cluster costs reads only.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};

use crate::fleet::{self, Absent, Autoscaler, Desired, Fleet, Owner, ServerApis};
use crate::metrics::Metrics;
use crate::settings::AutoscalerChoice;

pub const FIELD_MANAGER: &str = "jobmatch-operator";

fn api_for(client: &Client, namespace: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Whether the server offers `resource` in `group_version` (e.g. `autoscaling/v2`).
async fn serves(client: &Client, group_version: &str, resource: &str) -> bool {
    client
        .list_api_group_resources(group_version)
        .await
        .map(|list| list.resources.iter().any(|r| r.name == resource))
        .unwrap_or(false)
}

/// What the server offers: the scaler (see `choose_autoscaler`) and the newest
/// PodDisruptionBudget version.
pub async fn discover(
    client: &Client,
    choice: AutoscalerChoice,
) -> Result<ServerApis, kube::Error> {
    let autoscaler = choose_autoscaler(client, choice).await?;
    let pdb = if serves(client, "policy/v1", "poddisruptionbudgets").await {
        "policy/v1"
    } else {
        "policy/v1beta1"
    };
    Ok(ServerApis { autoscaler, pdb })
}

/// Which scaler to use: KEDA if asked or (on `auto`) if its CRD is installed; else an
/// HPA at the newest version the server offers.
async fn choose_autoscaler(
    client: &Client,
    choice: AutoscalerChoice,
) -> Result<Autoscaler, kube::Error> {
    let keda_installed = || async {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.get_opt("scaledobjects.keda.sh")
            .await
            .map(|c| c.is_some())
    };
    match choice {
        AutoscalerChoice::Keda => return Ok(Autoscaler::Keda),
        AutoscalerChoice::Auto if keda_installed().await? => return Ok(Autoscaler::Keda),
        _ => {}
    }
    let v2 = serves(client, "autoscaling/v2", "horizontalpodautoscalers").await;
    Ok(Autoscaler::Hpa(if v2 {
        "autoscaling/v2"
    } else {
        "autoscaling/v2beta2"
    }))
}

/// The fleet's owner: the operator's own Deployment, when it runs in the cluster.
pub async fn owner(
    client: &Client,
    namespace: &str,
    deployment: Option<&str>,
) -> Result<Option<Owner>, kube::Error> {
    let Some(name) = deployment else {
        return Ok(None);
    };
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let d = api.get(name).await?;
    Ok(d.uid().map(|uid| Owner {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: name.to_owned(),
        uid,
    }))
}

/// What one pass over the fleet did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub written: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

pub async fn apply_fleet(
    client: &Client,
    namespace: &str,
    fleet: &Fleet,
    metrics: &Metrics,
) -> Result<Applied, kube::Error> {
    let mut applied = Applied::default();
    for d in &fleet.objects {
        if apply_one(client, namespace, d, metrics).await? {
            applied.written += 1;
        } else {
            applied.unchanged += 1;
        }
    }
    for a in &fleet.absent {
        if delete_if_ours(client, namespace, a, metrics).await? {
            applied.deleted += 1;
        }
    }
    Ok(applied)
}

async fn apply_one(
    client: &Client,
    namespace: &str,
    d: &Desired,
    metrics: &Metrics,
) -> Result<bool, kube::Error> {
    let api = api_for(client, namespace, &d.api_version, &d.kind);
    let (object, digest) = fleet::with_digest(d.object.clone());
    if let Some(current) = api.get_opt(&d.name).await?
        && current.annotations().get(fleet::DIGEST_ANNOTATION) == Some(&digest)
    {
        return Ok(false);
    }
    api.patch(
        &d.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await?;
    metrics.wrote(resource_name(&d.kind));
    tracing::info!(kind = %d.kind, name = %d.name, "applied");
    Ok(true)
}

async fn delete_if_ours(
    client: &Client,
    namespace: &str,
    a: &Absent,
    metrics: &Metrics,
) -> Result<bool, kube::Error> {
    let api = api_for(client, namespace, a.api_version, a.kind);
    let current = match api.get_opt(&a.name).await {
        Ok(c) => c,
        // The kind itself is not served (no KEDA): nothing to delete.
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(e) => return Err(e),
    };
    let Some(current) = current else {
        return Ok(false);
    };
    if current
        .labels()
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        != Some(fleet::MANAGED_BY)
    {
        return Ok(false);
    }
    api.delete(&a.name, &DeleteParams::default()).await?;
    metrics.wrote(resource_name(a.kind));
    tracing::info!(kind = %a.kind, name = %a.name, "deleted");
    Ok(true)
}

fn resource_name(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployments",
        "ServiceAccount" => "serviceaccounts",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "ScaledObject" => "scaledobjects",
        "Service" => "services",
        "PodDisruptionBudget" => "poddisruptionbudgets",
        _ => "other",
    }
}
