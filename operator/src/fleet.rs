//! The worker fleet as data: which Deployments, ServiceAccounts and scalers should exist,
//! computed from the number of active `JobSource`s and the operator's settings. Pure:
//! no client, no I/O; `apply.rs` writes the result.
//!
//! - fetcher: replicas from the number of sources (`sourcesPerFetcher`, bounded);
//! - embedder: on GPU when asked (`nvidia.com/gpu`, node selector, tolerations), scaled
//!   on its JetStream consumer's lag by KEDA when KEDA is installed, else by an HPA on CPU;
//! - matcher: scaled like the embedder when the vector store is Qdrant; one replica with
//!   the embedded store, which serves one process;
//! - notifier: a fixed replica count.

use std::collections::BTreeMap;

use jobmatch_core::messages::{self as m, ConsumerSpec};
use serde_json::{Value, json};

use crate::settings::FleetSettings;

/// Which scaler object drives the embedder and matcher replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoscaler {
    /// A KEDA `ScaledObject` with a `nats-jetstream` trigger on consumer lag.
    Keda,
    /// A `HorizontalPodAutoscaler` on CPU, at this API version (`autoscaling/v2` or
    /// `autoscaling/v2beta2`, whichever the server offers).
    Hpa(&'static str),
}

/// An object the operator owns, as it should be: what server-side apply sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub object: Value,
}

/// An object that should not exist (a scaler of the kind not in use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absent {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub objects: Vec<Desired>,
    pub absent: Vec<Absent>,
}

/// The owner every fleet object points at, so that deleting it (the operator's
/// Deployment, on `helm uninstall`) lets the garbage collector remove the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

pub const ROLES: [&str; 4] = ["fetcher", "embedder", "matcher", "notifier"];
pub const MANAGED_BY: &str = "jobmatch-operator";
/// Annotation holding a digest of what the operator last applied, so an unchanged
/// object is never written again.
pub const DIGEST_ANNOTATION: &str = "jobmatch.dev/applied-digest";
const HTTP_PORT: u16 = 9090;

pub fn name(role: &str) -> String {
    format!("jobmatch-{role}")
}

/// Fetcher replicas for `sources` active sources.
pub fn fetcher_replicas(sources: usize, settings: &FleetSettings) -> i32 {
    if sources == 0 {
        return 0;
    }
    let per = settings.sources_per_fetcher.max(1);
    let wanted = sources.div_ceil(per);
    wanted.clamp(1, settings.max_fetchers.max(1) as usize) as i32
}

/// Everything the fleet should be.
pub fn build(
    active_sources: usize,
    settings: &FleetSettings,
    autoscaler: Autoscaler,
    owner: Option<&Owner>,
) -> Fleet {
    let mut objects = Vec::new();
    let mut absent = Vec::new();
    for role in ROLES {
        objects.push(service_account(role, owner));
        let scaled = match role {
            "embedder" => Some((m::EMBEDDER_CONSUMER, settings.max_embedders)),
            "matcher" if settings.qdrant_url.is_some() => {
                Some((m::MATCHER_CONSUMER, settings.max_matchers))
            }
            _ => None,
        };
        let replicas = match role {
            "fetcher" => Some(fetcher_replicas(active_sources, settings)),
            "notifier" => Some(settings.notifiers),
            "matcher" if scaled.is_none() => Some(1),
            _ => None,
        };
        objects.push(deployment(role, replicas, settings, owner));
        let (keda, hpa) = (
            Absent {
                api_version: "keda.sh/v1alpha1",
                kind: "ScaledObject",
                name: name(role),
            },
            Absent {
                api_version: "autoscaling/v2beta2",
                kind: "HorizontalPodAutoscaler",
                name: name(role),
            },
        );
        match (scaled, autoscaler) {
            (Some((consumer, max)), Autoscaler::Keda) => {
                objects.push(scaled_object(role, consumer, max, settings, owner));
                absent.push(hpa);
            }
            // Without KEDA installed there can be no ScaledObject to remove.
            (Some((_, max)), Autoscaler::Hpa(version)) => {
                objects.push(hpa_object(role, version, max, owner));
            }
            (None, Autoscaler::Keda) => {
                absent.push(keda);
                absent.push(hpa);
            }
            (None, Autoscaler::Hpa(_)) => absent.push(hpa),
        }
    }
    Fleet { objects, absent }
}

fn labels(role: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "jobmatch",
        "app.kubernetes.io/component": role,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    })
}

fn metadata(role: &str, owner: Option<&Owner>) -> Value {
    let mut meta = json!({
        "name": name(role),
        "labels": labels(role),
    });
    if let Some(o) = owner {
        meta["ownerReferences"] = json!([{
            "apiVersion": o.api_version,
            "kind": o.kind,
            "name": o.name,
            "uid": o.uid,
        }]);
    }
    meta
}

fn desired(api_version: &str, kind: &str, role: &str, object: Value) -> Desired {
    Desired {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: name(role),
        object,
    }
}

fn service_account(role: &str, owner: Option<&Owner>) -> Desired {
    desired(
        "v1",
        "ServiceAccount",
        role,
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(role, owner),
            // Workers never talk to the Kubernetes API.
            "automountServiceAccountToken": false,
        }),
    )
}

fn env(role: &str, settings: &FleetSettings) -> Vec<Value> {
    let mut env = vec![
        json!({"name": "JOBMATCH_NATS_URL", "value": settings.nats_url}),
        json!({"name": "JOBMATCH_LISTEN", "value": format!("0.0.0.0:{HTTP_PORT}")}),
        json!({"name": "JOBMATCH_LOG_FORMAT", "value": "json"}),
        json!({"name": "JOBMATCH_DATA_DIR", "value": "/var/lib/jobmatch"}),
    ];
    if let Some(url) = &settings.qdrant_url
        && role == "matcher"
    {
        env.push(json!({"name": "JOBMATCH_QDRANT_URL", "value": url}));
    }
    if role == "embedder" {
        env.push(json!({"name": "JOBMATCH_MODEL_DIR", "value": settings.model_dir}));
    }
    if role == "notifier" {
        env.push(json!({
            "name": "JOBMATCH_SMTP_URL",
            "valueFrom": {"secretKeyRef": {
                "name": settings.smtp_secret, "key": "url", "optional": true
            }},
        }));
        env.push(json!({"name": "JOBMATCH_SMTP_FROM", "value": settings.smtp_from}));
    }
    env
}

fn resources(role: &str, settings: &FleetSettings) -> Value {
    let mut r = match role {
        "embedder" => json!({
            "requests": {"cpu": "1", "memory": "512Mi"},
            "limits": {"memory": "1Gi"},
        }),
        "matcher" => json!({
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        }),
        _ => json!({
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        }),
    };
    if role == "embedder" && settings.gpu {
        r["limits"]["nvidia.com/gpu"] = json!("1");
        r["requests"]["nvidia.com/gpu"] = json!("1");
    }
    r
}

fn deployment(
    role: &str,
    replicas: Option<i32>,
    settings: &FleetSettings,
    owner: Option<&Owner>,
) -> Desired {
    let image = if role == "embedder" && settings.gpu {
        &settings.gpu_image
    } else {
        &settings.image
    };
    let probe = |path: &str, period: u32| {
        json!({
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "failureThreshold": 3,
        })
    };
    let mut pod_spec = json!({
        "serviceAccountName": name(role),
        "automountServiceAccountToken": false,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": role,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "args": [role],
            "env": env(role, settings),
            "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
            "readinessProbe": probe("/ready", 5),
            "livenessProbe": probe("/health", 20),
            "startupProbe": {
                "httpGet": {"path": "/health", "port": "http"},
                "periodSeconds": 5,
                "failureThreshold": 60,
            },
            "resources": resources(role, settings),
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "data", "mountPath": "/var/lib/jobmatch"},
            ],
        }],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "data", "emptyDir": {}},
        ],
    });
    if role == "embedder" && settings.gpu {
        if !settings.gpu_node_selector.is_empty() {
            pod_spec["nodeSelector"] = json!(settings.gpu_node_selector);
        }
        let tolerations: Vec<Value> = settings
            .gpu_tolerations
            .iter()
            .map(|key| json!({"key": key, "operator": "Exists", "effect": "NoSchedule"}))
            .collect();
        pod_spec["tolerations"] = Value::Array(tolerations);
    }
    let mut spec = json!({
        "selector": {"matchLabels": {
            "app.kubernetes.io/name": "jobmatch",
            "app.kubernetes.io/component": role,
        }},
        "template": {
            "metadata": {"labels": labels(role)},
            "spec": pod_spec,
        },
    });
    // A scaled Deployment leaves `replicas` to its scaler: applying it would fight it.
    if let Some(n) = replicas {
        spec["replicas"] = json!(n);
    }
    desired(
        "apps/v1",
        "Deployment",
        role,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(role, owner),
            "spec": spec,
        }),
    )
}

fn scaled_object(
    role: &str,
    consumer: ConsumerSpec,
    max: i32,
    settings: &FleetSettings,
    owner: Option<&Owner>,
) -> Desired {
    desired(
        "keda.sh/v1alpha1",
        "ScaledObject",
        role,
        json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": metadata(role, owner),
            "spec": {
                "scaleTargetRef": {"name": name(role)},
                "minReplicaCount": 1,
                "maxReplicaCount": max,
                "triggers": [{
                    "type": "nats-jetstream",
                    "metadata": {
                        "natsServerMonitoringEndpoint": settings.nats_monitoring_endpoint,
                        "account": "$G",
                        "stream": consumer.stream,
                        "consumer": consumer.name,
                        "lagThreshold": settings.lag_per_replica.to_string(),
                    },
                }],
            },
        }),
    )
}

fn hpa_object(role: &str, api_version: &str, max: i32, owner: Option<&Owner>) -> Desired {
    desired(
        api_version,
        "HorizontalPodAutoscaler",
        role,
        json!({
            "apiVersion": api_version,
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(role, owner),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name(role)},
                "minReplicas": 1,
                "maxReplicas": max,
                "metrics": [{
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }],
            },
        }),
    )
}

/// Labels to select every object of the fleet.
pub fn selector() -> String {
    format!("app.kubernetes.io/name=jobmatch,app.kubernetes.io/managed-by={MANAGED_BY}")
}

/// A stable digest of an object as applied (the digest annotation itself excluded).
pub fn digest(object: &Value) -> String {
    // serde_json's maps are ordered (BTreeMap): the text is canonical.
    jobmatch_core::ids::digest_hex(&[object.to_string().as_bytes()])[..16].to_owned()
}

/// The object with its digest annotation set.
pub fn with_digest(mut object: Value) -> (Value, String) {
    let d = digest(&object);
    let annotations = object["metadata"]
        .as_object_mut()
        .map(|meta| meta.entry("annotations").or_insert_with(|| json!({})));
    if let Some(Value::Object(a)) = annotations {
        a.insert(DIGEST_ANNOTATION.to_owned(), Value::String(d.clone()));
    }
    (object, d)
}

/// Node selector `key=value,key=value` from the command line.
pub fn parse_node_selector(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("{pair:?} is not key=value"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ServiceAccount;

    fn settings() -> FleetSettings {
        FleetSettings::for_tests()
    }

    fn find<'a>(fleet: &'a Fleet, kind: &str, role: &str) -> Option<&'a Desired> {
        fleet
            .objects
            .iter()
            .find(|d| d.kind == kind && d.name == name(role))
    }

    fn typed_deployment(fleet: &Fleet, role: &str) -> Deployment {
        let d = find(fleet, "Deployment", role).expect("deployment");
        serde_json::from_value(d.object.clone()).expect("a valid apps/v1 Deployment")
    }

    #[test]
    fn fetchers_follow_the_number_of_sources_within_bounds() {
        let s = settings(); // 25 per fetcher, at most 4
        assert_eq!(fetcher_replicas(0, &s), 0);
        assert_eq!(fetcher_replicas(1, &s), 1);
        assert_eq!(fetcher_replicas(25, &s), 1);
        assert_eq!(fetcher_replicas(26, &s), 2);
        assert_eq!(fetcher_replicas(10_000, &s), 4);
        let fleet = build(60, &s, Autoscaler::Hpa("autoscaling/v2beta2"), None);
        assert_eq!(
            typed_deployment(&fleet, "fetcher").spec.unwrap().replicas,
            Some(3)
        );
    }

    #[test]
    fn every_role_gets_a_hardened_deployment_and_its_own_service_account() {
        let fleet = build(3, &settings(), Autoscaler::Hpa("autoscaling/v2beta2"), None);
        for role in ROLES {
            let d = typed_deployment(&fleet, role);
            let pod = d.spec.unwrap().template.spec.unwrap();
            assert_eq!(
                pod.service_account_name.as_deref(),
                Some(name(role).as_str())
            );
            let psc = pod.security_context.unwrap();
            assert_eq!(psc.run_as_non_root, Some(true));
            let c = &pod.containers[0];
            assert_eq!(c.args.as_deref(), Some(&[role.to_owned()][..]));
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
            assert!(c.resources.as_ref().unwrap().requests.is_some());
            let sa: ServiceAccount = serde_json::from_value(
                find(&fleet, "ServiceAccount", role).unwrap().object.clone(),
            )
            .unwrap();
            assert_eq!(sa.automount_service_account_token, Some(false));
        }
    }

    #[test]
    fn gpu_embedder_requests_a_gpu_and_lands_on_gpu_nodes() {
        let mut s = settings();
        let cpu = typed_deployment(&build(1, &s, Autoscaler::Keda, None), "embedder");
        let cpu_pod = cpu.spec.unwrap().template.spec.unwrap();
        assert!(cpu_pod.node_selector.is_none());
        assert!(
            !cpu_pod.containers[0]
                .resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()
                .contains_key("nvidia.com/gpu")
        );
        s.gpu = true;
        let gpu = typed_deployment(&build(1, &s, Autoscaler::Keda, None), "embedder");
        let pod = gpu.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some(s.gpu_image.as_str()));
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["nvidia.com/gpu"].0, "1");
        assert_eq!(pod.node_selector.unwrap()["nvidia.com/gpu.present"], "true");
        assert_eq!(
            pod.tolerations.unwrap()[0].key.as_deref(),
            Some("nvidia.com/gpu")
        );
    }

    #[test]
    fn keda_scales_embedder_on_consumer_lag_and_removes_hpas() {
        let fleet = build(1, &settings(), Autoscaler::Keda, None);
        let so = &find(&fleet, "ScaledObject", "embedder").unwrap().object;
        let trigger = &so["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "nats-jetstream");
        assert_eq!(trigger["metadata"]["stream"], m::JOBS_STREAM);
        assert_eq!(trigger["metadata"]["consumer"], m::EMBEDDER_CONSUMER.name);
        assert!(
            fleet
                .absent
                .iter()
                .any(|a| a.kind == "HorizontalPodAutoscaler")
        );
        // Scaled Deployments leave replicas to the scaler.
        assert_eq!(
            typed_deployment(&fleet, "embedder").spec.unwrap().replicas,
            None
        );
    }

    #[test]
    fn without_keda_an_hpa_of_the_offered_version_scales_the_embedder() {
        let fleet = build(1, &settings(), Autoscaler::Hpa("autoscaling/v2beta2"), None);
        let hpa = find(&fleet, "HorizontalPodAutoscaler", "embedder").unwrap();
        assert_eq!(hpa.api_version, "autoscaling/v2beta2");
        assert_eq!(hpa.object["spec"]["maxReplicas"], 3);
        assert!(find(&fleet, "ScaledObject", "embedder").is_none());
    }

    #[test]
    fn matcher_scales_only_with_qdrant() {
        let mut s = settings();
        let embedded = build(1, &s, Autoscaler::Keda, None);
        assert!(find(&embedded, "ScaledObject", "matcher").is_none());
        assert_eq!(
            typed_deployment(&embedded, "matcher")
                .spec
                .unwrap()
                .replicas,
            Some(1)
        );
        s.qdrant_url = Some("http://qdrant:6334".into());
        let qdrant = build(1, &s, Autoscaler::Keda, None);
        assert!(find(&qdrant, "ScaledObject", "matcher").is_some());
        let env = &find(&qdrant, "Deployment", "matcher").unwrap().object["spec"]["template"]["spec"]
            ["containers"][0]["env"];
        assert!(env.to_string().contains("JOBMATCH_QDRANT_URL"));
    }

    #[test]
    fn owner_reference_is_set_on_every_object() {
        let owner = Owner {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "jobmatch-operator".into(),
            uid: "1234".into(),
        };
        let fleet = build(1, &settings(), Autoscaler::Keda, Some(&owner));
        for d in &fleet.objects {
            assert_eq!(
                d.object["metadata"]["ownerReferences"][0]["uid"], "1234",
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn digest_changes_with_content_only() {
        let a = build(1, &settings(), Autoscaler::Keda, None);
        let b = build(1, &settings(), Autoscaler::Keda, None);
        let c = build(30, &settings(), Autoscaler::Keda, None);
        let fetcher = |f: &Fleet| digest(&find(f, "Deployment", "fetcher").unwrap().object);
        assert_eq!(fetcher(&a), fetcher(&b));
        assert_ne!(fetcher(&a), fetcher(&c));
        let (annotated, d) = with_digest(find(&a, "Deployment", "fetcher").unwrap().object.clone());
        assert_eq!(annotated["metadata"]["annotations"][DIGEST_ANNOTATION], d);
    }

    #[test]
    fn node_selector_parses_pairs() {
        assert_eq!(
            parse_node_selector("a=b, c=d").unwrap(),
            BTreeMap::from([("a".into(), "b".into()), ("c".into(), "d".into())])
        );
        assert!(parse_node_selector("nope").is_err());
    }
}
