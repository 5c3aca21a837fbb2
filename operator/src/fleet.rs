//! The worker fleet as data: which Deployments, ServiceAccounts, Services, disruption
//! budgets and scalers should exist, computed from the number of active `JobSource`s, the
//! operator's settings and the API versions the server offers. Pure: no client, no I/O;
//! `apply.rs` writes the result.
//!
//! - fetcher: replicas from the number of sources (`sourcesPerFetcher`, bounded);
//! - embedder: on GPU when asked (`nvidia.com/gpu`, node selector, tolerations), scaled
//!   on its JetStream consumer's lag by KEDA when KEDA is installed, else by an HPA on CPU;
//! - matcher: scaled like the embedder when the vector store is Qdrant; with the embedded
//!   store one replica on a PersistentVolumeClaim, replaced with `Recreate` so that two
//!   matchers never hold the store at once;
//! - notifier: a fixed replica count;
//! - api: the REST gateway, stateless, a fixed replica count, with the token Secret
//!   (which the embedders get too, for their own embedding endpoints).
//!
//! Every role gets a Service (`http`: `/metrics`; the REST API on the api, the
//! embedding API on the embedder) and a PodDisruptionBudget of one pod at a time.

use jobmatch_core::Role;
use jobmatch_core::messages::{self as m, ConsumerSpec};
use serde_json::{Value, json};

use crate::settings::{FleetSettings, SecretKey};

/// Which scaler object drives the embedder and matcher replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoscaler {
    /// A KEDA `ScaledObject` with a `nats-jetstream` trigger on consumer lag.
    Keda,
    /// A `HorizontalPodAutoscaler` on CPU, at this API version (`autoscaling/v2` or
    /// `autoscaling/v2beta2`, whichever the server offers).
    Hpa(&'static str),
}

/// What the API server offers that the fleet's shape depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerApis {
    pub autoscaler: Autoscaler,
    /// `policy/v1` (Kubernetes 1.21+) or `policy/v1beta1`.
    pub pdb: &'static str,
}

/// What the operator observed that the fleet depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The namespace the operator and its fleet run in (short Service names in the
    /// settings resolve there).
    pub namespace: String,
    /// `JobSource`s that are valid and not suspended.
    pub active_sources: usize,
    /// A digest of the SMTP Secret's `url` (`None`: missing). It goes on the notifier's
    /// pod template, so a created or changed Secret rolls the notifiers, which read it
    /// from their environment at start.
    pub smtp_secret: Option<String>,
}

/// Pod template annotation with the SMTP Secret's digest.
pub const SMTP_DIGEST_ANNOTATION: &str = "jobmatch.dev/smtp-secret-digest";

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

pub const MANAGED_BY: &str = "jobmatch-operator";
/// Annotation holding a digest of what the operator last applied, so an unchanged
/// object is never written again.
pub const DIGEST_ANNOTATION: &str = "jobmatch.dev/applied-digest";
/// The port every worker serves `/health`, `/ready` and `/metrics` on (and the
/// embedder its embedding API).
pub const HTTP_PORT: u16 = 9090;
/// The numeric user and group the workers run as (the images' `USER`).
pub const RUN_AS: i64 = 65532;
/// Where the matcher's embedded store lives in its pod.
const DATA_DIR: &str = "/var/lib/jobmatch";
/// Where mounted Secret keys appear in a pod.
const SECRETS_DIR: &str = "/etc/jobmatch";

pub fn name(role: Role) -> String {
    format!("jobmatch-{role}")
}

/// How long a pod of the role may take to stop after SIGTERM: every role finishes the
/// message it holds, then exits. The fetcher may be inside a board request (30 s timeout
/// plus backoff), the notifier inside an SMTP or Slack delivery with its retries.
pub fn termination_grace_seconds(role: Role) -> i64 {
    match role {
        Role::Fetcher => 60,
        Role::Embedder => 30,
        Role::Matcher => 30,
        Role::Notifier => 60,
        Role::Api => 30,
    }
}

/// The NATS monitoring endpoint KEDA reads lag from: the setting, else the host of the
/// workers' NATS URL (the first, when several are given) on port 8222. KEDA runs in its
/// own namespace, so a short Service name (`nats`) becomes `nats.NAMESPACE.svc`.
pub fn monitoring_endpoint(settings: &FleetSettings, namespace: &str) -> String {
    if let Some(endpoint) = settings.nats_monitoring_endpoint.as_deref()
        && !endpoint.trim().is_empty()
    {
        return endpoint.trim().to_owned();
    }
    let first = settings.nats_url.split(',').next().unwrap_or("").trim();
    let host = url::Url::parse(first)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "nats".to_owned());
    let is_ip = host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
    if is_ip || host.contains('.') {
        format!("{host}:8222")
    } else {
        format!("{host}.{namespace}.svc:8222")
    }
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

/// How a role's replicas are decided.
enum Scale {
    Fixed(i32),
    /// By a scaler on this consumer's lag, up to this many.
    Lag(ConsumerSpec, i32),
}

fn scale(role: Role, active_sources: usize, settings: &FleetSettings) -> Scale {
    match role {
        Role::Fetcher => Scale::Fixed(fetcher_replicas(active_sources, settings)),
        Role::Embedder => Scale::Lag(m::EMBEDDER_CONSUMER, settings.max_embedders),
        Role::Matcher if settings.qdrant_url.is_some() => {
            Scale::Lag(m::MATCHER_CONSUMER, settings.max_matchers)
        }
        Role::Matcher => Scale::Fixed(1),
        Role::Notifier => Scale::Fixed(settings.notifiers),
        Role::Api => Scale::Fixed(settings.api_replicas),
    }
}

/// Everything the fleet should be.
pub fn build(
    observed: &Observed,
    settings: &FleetSettings,
    apis: ServerApis,
    owner: Option<&Owner>,
) -> Fleet {
    let mut objects = Vec::new();
    let mut absent = Vec::new();
    for role in Role::ALL {
        objects.push(service_account(role, owner));
        let scale = scale(role, observed.active_sources, settings);
        let replicas = match scale {
            Scale::Fixed(n) => Some(n),
            Scale::Lag(..) => None,
        };
        objects.push(deployment(role, replicas, observed, settings, owner));
        objects.push(service(role, owner));
        objects.push(disruption_budget(role, apis.pdb, owner));
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
        match (scale, apis.autoscaler) {
            (Scale::Lag(consumer, max), Autoscaler::Keda) => {
                objects.push(scaled_object(
                    role,
                    consumer,
                    max,
                    &monitoring_endpoint(settings, &observed.namespace),
                    settings,
                    owner,
                ));
                absent.push(hpa);
            }
            // Without KEDA installed there can be no ScaledObject to remove.
            (Scale::Lag(_, max), Autoscaler::Hpa(version)) => {
                objects.push(hpa_object(role, version, max, owner));
            }
            (Scale::Fixed(_), Autoscaler::Keda) => {
                absent.push(keda);
                absent.push(hpa);
            }
            (Scale::Fixed(_), Autoscaler::Hpa(_)) => absent.push(hpa),
        }
    }
    Fleet { objects, absent }
}

/// The labels that select a role's pods.
fn selector_labels(role: Role) -> Value {
    json!({
        "app.kubernetes.io/name": "jobmatch",
        "app.kubernetes.io/component": role.name(),
    })
}

fn labels(role: Role) -> Value {
    let mut l = selector_labels(role);
    l["app.kubernetes.io/managed-by"] = json!(MANAGED_BY);
    l
}

fn metadata(role: Role, owner: Option<&Owner>) -> Value {
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

fn desired(api_version: &str, kind: &str, role: Role, object: Value) -> Desired {
    Desired {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: name(role),
        object,
    }
}

fn service_account(role: Role, owner: Option<&Owner>) -> Desired {
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

/// A Secret key mounted as a file: (volume, mount, the file's path in the pod).
fn secret_file(volume: &str, secret: &SecretKey) -> (Value, Value, String) {
    let dir = format!("{SECRETS_DIR}/{volume}");
    let path = format!("{dir}/{}", secret.key);
    (
        json!({
            "name": volume,
            "secret": {
                "secretName": secret.name,
                "items": [{"key": secret.key, "path": secret.key}],
                "defaultMode": 0o440,
            },
        }),
        json!({"name": volume, "mountPath": dir, "readOnly": true}),
        path,
    )
}

/// What a role's container is given: environment, volumes and their mounts.
#[derive(Default)]
struct PodInputs {
    env: Vec<Value>,
    volumes: Vec<Value>,
    mounts: Vec<Value>,
}

impl PodInputs {
    fn env(&mut self, name: &str, value: impl Into<Value>) {
        self.env.push(json!({"name": name, "value": value.into()}));
    }

    fn secret_env(&mut self, name: &str, secret: &SecretKey, optional: bool) {
        self.env.push(json!({
            "name": name,
            "valueFrom": {"secretKeyRef": {
                "name": secret.name, "key": secret.key, "optional": optional,
            }},
        }));
    }

    /// Mounts a Secret key and points `env` at the file.
    fn secret_file(&mut self, env: &str, volume: &str, secret: &SecretKey) {
        let (volume, mount, path) = secret_file(volume, secret);
        self.volumes.push(volume);
        self.mounts.push(mount);
        self.env(env, path);
    }

    /// [`PodInputs::secret_file`] for a Secret that may not exist yet: the pod starts
    /// without the file, and the kubelet adds it once the Secret is created.
    fn optional_secret_file(&mut self, env: &str, volume: &str, secret: &SecretKey) {
        let (mut volume, mount, path) = secret_file(volume, secret);
        volume["secret"]["optional"] = json!(true);
        self.volumes.push(volume);
        self.mounts.push(mount);
        self.env(env, path);
    }
}

fn pod_inputs(role: Role, settings: &FleetSettings) -> PodInputs {
    let mut p = PodInputs::default();
    p.env("JOBMATCH_NATS_URL", settings.nats_url.as_str());
    p.env("JOBMATCH_LISTEN", format!("0.0.0.0:{HTTP_PORT}"));
    p.env("JOBMATCH_LOG_FORMAT", "json");
    for (name, value) in &settings.bus_env {
        p.env(name, value.as_str());
    }
    if let Some(secret) = &settings.nats_credentials_secret {
        p.secret_file("JOBMATCH_NATS_CREDS", "nats-credentials", secret);
    }
    if let Some(secret) = &settings.nats_ca_secret {
        p.secret_file("JOBMATCH_NATS_CA", "nats-ca", secret);
    }
    p.volumes.push(json!({"name": "tmp", "emptyDir": {}}));
    p.mounts.push(json!({"name": "tmp", "mountPath": "/tmp"}));
    if matches!(role, Role::Api | Role::Embedder) {
        if let Some(secret) = &settings.api_tokens_secret {
            // Without the Secret the API refuses every request; the pipeline runs.
            p.optional_secret_file("JOBMATCH_API_TOKENS", "api-tokens", secret);
        }
        if settings.api_public_reads {
            p.env("JOBMATCH_API_PUBLIC_READS", "true");
        }
    }
    match role {
        Role::Embedder => p.env("JOBMATCH_MODEL_DIR", settings.model_dir.as_str()),
        Role::Matcher => match &settings.qdrant_url {
            Some(url) => {
                p.env("JOBMATCH_QDRANT_URL", url.as_str());
                if let Some(secret) = &settings.qdrant_api_key_secret {
                    p.secret_env("JOBMATCH_QDRANT_API_KEY", secret, false);
                }
                if let Some(secret) = &settings.qdrant_ca_secret {
                    // rustls-native-certs, which the Qdrant client's TLS uses, reads it.
                    p.secret_file("SSL_CERT_FILE", "qdrant-ca", secret);
                }
            }
            None => {
                p.env("JOBMATCH_DATA_DIR", DATA_DIR);
                p.volumes.push(match &settings.matcher_claim {
                    Some(claim) => {
                        json!({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
                    }
                    None => json!({"name": "data", "emptyDir": {}}),
                });
                p.mounts
                    .push(json!({"name": "data", "mountPath": DATA_DIR}));
            }
        },
        Role::Notifier => {
            let smtp = SecretKey {
                name: settings.smtp_secret.clone(),
                key: "url".into(),
            };
            // Optional: Slack-only installations need no SMTP server. A subscription
            // that wants email while the Secret is missing is refused by its reconcile.
            p.secret_env("JOBMATCH_SMTP_URL", &smtp, true);
            p.env("JOBMATCH_SMTP_FROM", settings.smtp_from.as_str());
            if let Some(secret) = &settings.smtp_ca_secret {
                p.secret_file("JOBMATCH_SMTP_CA", "smtp-ca", secret);
            }
        }
        Role::Fetcher | Role::Api => {}
    }
    p
}

fn resources(role: Role, settings: &FleetSettings) -> Value {
    let mut r = settings
        .resources
        .0
        .get(&role)
        .cloned()
        .unwrap_or_else(|| match role {
            Role::Embedder => json!({
                "requests": {"cpu": "1", "memory": "512Mi"},
                "limits": {"memory": "1Gi"},
            }),
            Role::Matcher => json!({
                "requests": {"cpu": "250m", "memory": "256Mi"},
                "limits": {"memory": "1Gi"},
            }),
            Role::Fetcher | Role::Notifier | Role::Api => json!({
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"memory": "256Mi"},
            }),
        });
    if role == Role::Embedder && settings.gpu {
        let count = json!(settings.gpu_count.max(1).to_string());
        r["limits"]["nvidia.com/gpu"] = count.clone();
        r["requests"]["nvidia.com/gpu"] = count;
    }
    r
}

fn deployment(
    role: Role,
    replicas: Option<i32>,
    observed: &Observed,
    settings: &FleetSettings,
    owner: Option<&Owner>,
) -> Desired {
    let gpu = role == Role::Embedder && settings.gpu;
    let image = if gpu {
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
    let inputs = pod_inputs(role, settings);
    let mut pod_spec = json!({
        "serviceAccountName": name(role),
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": termination_grace_seconds(role),
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": role.name(),
            "image": image,
            "imagePullPolicy": settings.image_pull_policy,
            "args": [role.name()],
            "env": inputs.env,
            "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
            "readinessProbe": probe("/ready", 5),
            "livenessProbe": probe("/health", 20),
            // The embedder loads its model before it answers (seconds on CPU; a cold
            // GPU or a large model takes longer): up to five minutes.
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
            "volumeMounts": inputs.mounts,
        }],
        "volumes": inputs.volumes,
    });
    if gpu {
        if !settings.gpu_node_selector.is_empty() {
            pod_spec["nodeSelector"] = json!(settings.gpu_node_selector);
        }
        let tolerations: Vec<Value> = settings
            .gpu_tolerations
            .iter()
            .filter(|key| !key.trim().is_empty())
            .map(|key| json!({"key": key.trim(), "operator": "Exists", "effect": "NoSchedule"}))
            .collect();
        pod_spec["tolerations"] = Value::Array(tolerations);
    }
    let mut template_meta = json!({"labels": labels(role)});
    if role == Role::Notifier {
        let digest = observed.smtp_secret.as_deref().unwrap_or("absent");
        template_meta["annotations"] = json!({ SMTP_DIGEST_ANNOTATION: digest });
    }
    let mut spec = json!({
        "selector": {"matchLabels": selector_labels(role)},
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": template_meta,
            "spec": pod_spec,
        },
    });
    // The embedded store is one process's: the old matcher stops before the new one
    // opens the store (a rolling update would run both, on one volume or on two).
    if role == Role::Matcher && settings.qdrant_url.is_none() {
        spec["strategy"] = json!({"type": "Recreate"});
    }
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

/// The role's HTTP port as a Service: `/metrics` for scrapers; on the api the REST
/// API, on the embedder the embedding API.
fn service(role: Role, owner: Option<&Owner>) -> Desired {
    let mut meta = metadata(role, owner);
    meta["annotations"] = json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": HTTP_PORT.to_string(),
        "prometheus.io/path": "/metrics",
    });
    desired(
        "v1",
        "Service",
        role,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": selector_labels(role),
                "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
    )
}

/// Voluntary disruptions (node drains) take one pod of a role at a time.
fn disruption_budget(role: Role, api_version: &str, owner: Option<&Owner>) -> Desired {
    desired(
        api_version,
        "PodDisruptionBudget",
        role,
        json!({
            "apiVersion": api_version,
            "kind": "PodDisruptionBudget",
            "metadata": metadata(role, owner),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector_labels(role)},
            },
        }),
    )
}

fn scaled_object(
    role: Role,
    consumer: ConsumerSpec,
    max: i32,
    monitoring_endpoint: &str,
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
                        "natsServerMonitoringEndpoint": monitoring_endpoint,
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

fn hpa_object(role: Role, api_version: &str, max: i32, owner: Option<&Owner>) -> Desired {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;

    const HPA: ServerApis = ServerApis {
        autoscaler: Autoscaler::Hpa("autoscaling/v2beta2"),
        pdb: "policy/v1beta1",
    };
    const KEDA: ServerApis = ServerApis {
        autoscaler: Autoscaler::Keda,
        pdb: "policy/v1",
    };

    fn settings() -> FleetSettings {
        FleetSettings::for_tests()
    }

    fn sources(active_sources: usize) -> Observed {
        Observed {
            namespace: "jobmatch".into(),
            active_sources,
            smtp_secret: None,
        }
    }

    #[test]
    fn a_new_or_changed_smtp_secret_rolls_the_notifiers_only() {
        let s = settings();
        let absent = build(&sources(1), &s, HPA, None);
        let present = build(
            &Observed {
                smtp_secret: Some("0123456789abcdef".into()),
                ..sources(1)
            },
            &s,
            HPA,
            None,
        );
        let template = |f: &Fleet, role| {
            find(f, "Deployment", role).unwrap().object["spec"]["template"].clone()
        };
        assert_eq!(
            template(&absent, Role::Notifier)["metadata"]["annotations"][SMTP_DIGEST_ANNOTATION],
            "absent"
        );
        assert_ne!(
            template(&absent, Role::Notifier),
            template(&present, Role::Notifier)
        );
        for role in [Role::Fetcher, Role::Embedder, Role::Matcher] {
            assert_eq!(template(&absent, role), template(&present, role), "{role}");
        }
    }

    fn find<'a>(fleet: &'a Fleet, kind: &str, role: Role) -> Option<&'a Desired> {
        fleet
            .objects
            .iter()
            .find(|d| d.kind == kind && d.name == name(role))
    }

    fn typed<T: serde::de::DeserializeOwned>(fleet: &Fleet, kind: &str, role: Role) -> T {
        let d = find(fleet, kind, role).unwrap_or_else(|| panic!("{kind} of {role}"));
        serde_json::from_value(d.object.clone())
            .unwrap_or_else(|e| panic!("{kind} of {role} is not a valid object: {e}"))
    }

    fn pod(fleet: &Fleet, role: Role) -> k8s_openapi::api::core::v1::PodSpec {
        let d: Deployment = typed(fleet, "Deployment", role);
        d.spec.unwrap().template.spec.unwrap()
    }

    fn env_of(pod: &k8s_openapi::api::core::v1::PodSpec, var: &str) -> Option<String> {
        let env = pod.containers[0].env.as_ref()?;
        let e = env.iter().find(|e| e.name == var)?;
        Some(match &e.value {
            Some(v) => v.clone(),
            None => serde_json::to_string(&e.value_from).unwrap(),
        })
    }

    #[test]
    fn fetchers_follow_the_number_of_sources_within_bounds() {
        let s = settings(); // 25 per fetcher, at most 4
        assert_eq!(fetcher_replicas(0, &s), 0);
        assert_eq!(fetcher_replicas(1, &s), 1);
        assert_eq!(fetcher_replicas(25, &s), 1);
        assert_eq!(fetcher_replicas(26, &s), 2);
        assert_eq!(fetcher_replicas(10_000, &s), 4);
        let fleet = build(&sources(60), &s, HPA, None);
        let d: Deployment = typed(&fleet, "Deployment", Role::Fetcher);
        assert_eq!(d.spec.unwrap().replicas, Some(3));
    }

    #[test]
    fn every_worker_gets_the_operators_stream_limits() {
        let mut s = settings();
        s.bus_env = vec![
            ("JOBMATCH_BUS_JOBS_MAX_AGE".into(), "12h".into()),
            ("JOBMATCH_BUS_REPLICAS".into(), "3".into()),
        ];
        let fleet = build(&sources(1), &s, HPA, None);
        for role in Role::ALL {
            let pod = pod(&fleet, role);
            assert_eq!(
                env_of(&pod, "JOBMATCH_BUS_JOBS_MAX_AGE").as_deref(),
                Some("12h")
            );
            assert_eq!(env_of(&pod, "JOBMATCH_BUS_REPLICAS").as_deref(), Some("3"));
        }
        let plain = build(&sources(1), &settings(), HPA, None);
        assert_eq!(
            env_of(&pod(&plain, Role::Matcher), "JOBMATCH_BUS_REPLICAS"),
            None
        );
    }

    #[test]
    fn every_role_gets_a_hardened_deployment_and_its_own_service_account() {
        let fleet = build(&sources(3), &settings(), HPA, None);
        for role in Role::ALL {
            let pod = pod(&fleet, role);
            assert_eq!(
                pod.service_account_name.as_deref(),
                Some(name(role).as_str())
            );
            let psc = pod.security_context.as_ref().unwrap();
            assert_eq!(psc.run_as_non_root, Some(true));
            assert_eq!(psc.run_as_user, Some(RUN_AS));
            assert_eq!(
                pod.termination_grace_period_seconds,
                Some(termination_grace_seconds(role))
            );
            let c = &pod.containers[0];
            assert_eq!(c.args.as_deref(), Some(&[role.name().to_owned()][..]));
            assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
            assert!(c.resources.as_ref().unwrap().requests.is_some());
            let sa: ServiceAccount = typed(&fleet, "ServiceAccount", role);
            assert_eq!(sa.automount_service_account_token, Some(false));
        }
    }

    #[test]
    fn every_role_has_a_service_and_a_one_at_a_time_disruption_budget() {
        for apis in [HPA, KEDA] {
            let fleet = build(&sources(1), &settings(), apis, None);
            for role in Role::ALL {
                let svc: Service = typed(&fleet, "Service", role);
                let spec = svc.spec.unwrap();
                assert_eq!(spec.ports.unwrap()[0].port, i32::from(HTTP_PORT));
                assert_eq!(
                    spec.selector.unwrap()["app.kubernetes.io/component"],
                    role.name()
                );
                let pdb = find(&fleet, "PodDisruptionBudget", role).unwrap();
                assert_eq!(pdb.api_version, apis.pdb);
                // The v1beta1 spec has the same fields; read both as v1.
                let mut object = pdb.object.clone();
                object["apiVersion"] = serde_json::json!("policy/v1");
                let typed_pdb: PodDisruptionBudget = serde_json::from_value(object).unwrap();
                let spec = typed_pdb.spec.unwrap();
                assert_eq!(
                    spec.max_unavailable,
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
                );
                assert_eq!(
                    spec.selector.unwrap().match_labels.unwrap()["app.kubernetes.io/component"],
                    role.name()
                );
            }
        }
    }

    #[test]
    fn the_embedded_store_lives_on_the_claim_and_is_never_opened_twice() {
        let mut s = settings();
        s.matcher_claim = Some("jobmatch-matcher-data".into());
        let fleet = build(&sources(1), &s, HPA, None);
        let d: Deployment = typed(&fleet, "Deployment", Role::Matcher);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
        let matcher = spec.template.spec.unwrap();
        let data = matcher
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "data")
            .unwrap();
        assert_eq!(
            data.persistent_volume_claim.unwrap().claim_name,
            "jobmatch-matcher-data"
        );
        assert_eq!(
            env_of(&pod(&fleet, Role::Matcher), "JOBMATCH_DATA_DIR").as_deref(),
            Some(DATA_DIR)
        );
        // Without a claim it is an emptyDir; other roles have no data volume at all.
        let fleet = build(&sources(1), &settings(), HPA, None);
        let vols = pod(&fleet, Role::Matcher).volumes.unwrap();
        assert!(
            vols.iter()
                .any(|v| v.name == "data" && v.empty_dir.is_some())
        );
        for role in [Role::Fetcher, Role::Embedder, Role::Notifier] {
            let vols = pod(&fleet, role).volumes.unwrap();
            assert!(vols.iter().all(|v| v.name != "data"), "{role}");
            let d: Deployment = typed(&fleet, "Deployment", role);
            assert!(d.spec.unwrap().strategy.is_none(), "{role} rolls");
        }
    }

    #[test]
    fn nats_and_qdrant_secrets_are_mounted_where_the_workers_read_them() {
        let mut s = settings();
        s.nats_credentials_secret = Some(SecretKey {
            name: "nats".into(),
            key: "user.creds".into(),
        });
        s.nats_ca_secret = Some(SecretKey {
            name: "nats-tls".into(),
            key: "ca.crt".into(),
        });
        s.qdrant_url = Some("https://qdrant:6334".into());
        s.qdrant_api_key_secret = Some(SecretKey {
            name: "qdrant".into(),
            key: "api-key".into(),
        });
        let fleet = build(&sources(1), &s, KEDA, None);
        for role in Role::ALL {
            let pod = pod(&fleet, role);
            let creds = env_of(&pod, "JOBMATCH_NATS_CREDS").unwrap();
            assert_eq!(creds, "/etc/jobmatch/nats-credentials/user.creds");
            assert_eq!(
                env_of(&pod, "JOBMATCH_NATS_CA").as_deref(),
                Some("/etc/jobmatch/nats-ca/ca.crt")
            );
            let c = &pod.containers[0];
            let mounts = c.volume_mounts.as_ref().unwrap();
            assert!(
                mounts
                    .iter()
                    .any(|m| m.mount_path == "/etc/jobmatch/nats-credentials")
            );
            let vols = pod.volumes.as_ref().unwrap();
            let v = vols.iter().find(|v| v.name == "nats-credentials").unwrap();
            assert_eq!(
                v.secret.as_ref().unwrap().secret_name.as_deref(),
                Some("nats")
            );
        }
        let matcher = pod(&fleet, Role::Matcher);
        assert_eq!(
            env_of(&matcher, "JOBMATCH_QDRANT_URL").as_deref(),
            Some("https://qdrant:6334")
        );
        let key = env_of(&matcher, "JOBMATCH_QDRANT_API_KEY").unwrap();
        assert!(
            key.contains("\"qdrant\"") && key.contains("api-key"),
            "{key}"
        );
        assert!(env_of(&matcher, "JOBMATCH_DATA_DIR").is_none());
        assert!(env_of(&pod(&fleet, Role::Embedder), "JOBMATCH_QDRANT_URL").is_none());
    }

    #[test]
    fn the_notifier_reads_smtp_from_an_optional_secret() {
        let fleet = build(&sources(1), &settings(), HPA, None);
        let smtp = env_of(&pod(&fleet, Role::Notifier), "JOBMATCH_SMTP_URL").unwrap();
        assert!(
            smtp.contains("jobmatch-smtp") && smtp.contains("\"optional\":true"),
            "{smtp}"
        );
        assert!(env_of(&pod(&fleet, Role::Notifier), "JOBMATCH_SMTP_CA").is_none());
        // A relay with a private CA: its certificates mounted, on the notifier only.
        let mut s = settings();
        s.smtp_ca_secret = Some(SecretKey {
            name: "relay-ca".into(),
            key: "ca.crt".into(),
        });
        let fleet = build(&sources(1), &s, HPA, None);
        let notifier = pod(&fleet, Role::Notifier);
        let path = env_of(&notifier, "JOBMATCH_SMTP_CA").expect("CA file");
        assert!(path.ends_with("/smtp-ca/ca.crt"), "{path}");
        let volumes = serde_json::to_string(&notifier.volumes).unwrap_or_default();
        assert!(volumes.contains("\"secretName\":\"relay-ca\""), "{volumes}");
        assert!(env_of(&pod(&fleet, Role::Fetcher), "JOBMATCH_SMTP_CA").is_none());
    }

    #[test]
    fn the_api_runs_stateless_with_its_tokens_and_the_embedders_share_them() {
        let mut s = settings();
        s.api_replicas = 3;
        s.api_tokens_secret = Some(SecretKey {
            name: "jobmatch-api-tokens".into(),
            key: "tokens".into(),
        });
        let fleet = build(&sources(1), &s, HPA, None);
        let deployment = fleet
            .objects
            .iter()
            .find(|o| o.kind == "Deployment" && o.name == "jobmatch-api")
            .expect("an api Deployment");
        assert_eq!(deployment.object["spec"]["replicas"], 3);
        assert!(
            fleet
                .objects
                .iter()
                .any(|o| o.kind == "Service" && o.name == "jobmatch-api")
        );
        let api = pod(&fleet, Role::Api);
        assert_eq!(
            api.containers[0].args.as_deref(),
            Some(&["api".to_owned()][..])
        );
        for role in [Role::Api, Role::Embedder] {
            let pod = pod(&fleet, role);
            let path = env_of(&pod, "JOBMATCH_API_TOKENS").expect("tokens file");
            assert!(path.ends_with("/api-tokens/tokens"), "{path}");
            let volumes = serde_json::to_string(&pod.volumes).unwrap_or_default();
            // The pods start before the Secret exists; the kubelet adds it later.
            assert!(volumes.contains("\"optional\":true"), "{volumes}");
        }
        for role in [Role::Fetcher, Role::Matcher, Role::Notifier] {
            assert!(
                env_of(&pod(&fleet, role), "JOBMATCH_API_TOKENS").is_none(),
                "{role}"
            );
        }
    }

    #[test]
    fn resources_and_pull_policy_follow_the_settings() {
        let mut s = settings();
        s.image_pull_policy = "Never".into();
        s.resources = crate::settings::parse_resources(
            r#"{"embedder": {"requests": {"cpu": "100m"}, "limits": {"memory": "2Gi"}}}"#,
        )
        .unwrap();
        let fleet = build(&sources(1), &s, HPA, None);
        let embedder = pod(&fleet, Role::Embedder);
        let r = embedder.containers[0].resources.as_ref().unwrap();
        assert_eq!(r.requests.as_ref().unwrap()["cpu"].0, "100m");
        assert_eq!(r.limits.as_ref().unwrap()["memory"].0, "2Gi");
        assert_eq!(
            embedder.containers[0].image_pull_policy.as_deref(),
            Some("Never")
        );
        // Roles not named keep their defaults.
        let matcher = pod(&fleet, Role::Matcher);
        let r = matcher.containers[0].resources.as_ref().unwrap();
        assert_eq!(r.requests.as_ref().unwrap()["cpu"].0, "250m");
    }

    #[test]
    fn gpu_embedder_requests_a_gpu_and_lands_on_gpu_nodes() {
        let mut s = settings();
        let cpu_pod = pod(&build(&sources(1), &s, KEDA, None), Role::Embedder);
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
        s.gpu_count = 2;
        let pod = pod(&build(&sources(1), &s, KEDA, None), Role::Embedder);
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some(s.gpu_image.as_str()));
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["nvidia.com/gpu"].0, "2");
        assert_eq!(pod.node_selector.unwrap()["nvidia.com/gpu.present"], "true");
        assert_eq!(
            pod.tolerations.unwrap()[0].key.as_deref(),
            Some("nvidia.com/gpu")
        );
    }

    #[test]
    fn keda_scales_embedder_on_consumer_lag_and_removes_hpas() {
        let fleet = build(&sources(1), &settings(), KEDA, None);
        let so = &find(&fleet, "ScaledObject", Role::Embedder).unwrap().object;
        let trigger = &so["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "nats-jetstream");
        assert_eq!(trigger["metadata"]["stream"], m::JOBS_STREAM);
        assert_eq!(trigger["metadata"]["consumer"], m::EMBEDDER_CONSUMER.name);
        assert_eq!(
            trigger["metadata"]["natsServerMonitoringEndpoint"],
            "nats.jobmatch.svc:8222"
        );
        assert!(
            fleet
                .absent
                .iter()
                .any(|a| a.kind == "HorizontalPodAutoscaler")
        );
        // Scaled Deployments leave replicas to the scaler.
        let d: Deployment = typed(&fleet, "Deployment", Role::Embedder);
        assert_eq!(d.spec.unwrap().replicas, None);
    }

    #[test]
    fn the_monitoring_endpoint_is_derived_from_the_nats_url() {
        let mut s = settings();
        s.nats_url = "nats://user:pw@nats.messaging.svc:4222,nats://other:4222".into();
        assert_eq!(
            monitoring_endpoint(&s, "jobmatch"),
            "nats.messaging.svc:8222"
        );
        s.nats_url = "tls://10.0.0.7:4222".into();
        assert_eq!(monitoring_endpoint(&s, "jobmatch"), "10.0.0.7:8222");
        s.nats_url = "nats://nats:4222".into();
        assert_eq!(
            monitoring_endpoint(&s, "jobmatch"),
            "nats.jobmatch.svc:8222"
        );
        s.nats_monitoring_endpoint = Some("monitor:8888".into());
        assert_eq!(monitoring_endpoint(&s, "jobmatch"), "monitor:8888");
    }

    #[test]
    fn without_keda_an_hpa_of_the_offered_version_scales_the_embedder() {
        let fleet = build(&sources(1), &settings(), HPA, None);
        let hpa = find(&fleet, "HorizontalPodAutoscaler", Role::Embedder).unwrap();
        assert_eq!(hpa.api_version, "autoscaling/v2beta2");
        assert_eq!(hpa.object["spec"]["maxReplicas"], 3);
        assert!(find(&fleet, "ScaledObject", Role::Embedder).is_none());
    }

    #[test]
    fn matcher_scales_only_with_qdrant() {
        let mut s = settings();
        let embedded = build(&sources(1), &s, KEDA, None);
        assert!(find(&embedded, "ScaledObject", Role::Matcher).is_none());
        let d: Deployment = typed(&embedded, "Deployment", Role::Matcher);
        assert_eq!(d.spec.unwrap().replicas, Some(1));
        s.qdrant_url = Some("http://qdrant:6334".into());
        let qdrant = build(&sources(1), &s, KEDA, None);
        assert!(find(&qdrant, "ScaledObject", Role::Matcher).is_some());
        let d: Deployment = typed(&qdrant, "Deployment", Role::Matcher);
        // Several matchers share Qdrant: they roll like the others.
        assert!(d.spec.unwrap().strategy.is_none());
    }

    #[test]
    fn owner_reference_is_set_on_every_object() {
        let owner = Owner {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "jobmatch-operator".into(),
            uid: "1234".into(),
        };
        let fleet = build(&sources(1), &settings(), KEDA, Some(&owner));
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
        let a = build(&sources(1), &settings(), KEDA, None);
        let b = build(&sources(1), &settings(), KEDA, None);
        let c = build(&sources(30), &settings(), KEDA, None);
        let fetcher = |f: &Fleet| digest(&find(f, "Deployment", Role::Fetcher).unwrap().object);
        assert_eq!(fetcher(&a), fetcher(&b));
        assert_ne!(fetcher(&a), fetcher(&c));
        let (annotated, d) = with_digest(
            find(&a, "Deployment", Role::Fetcher)
                .unwrap()
                .object
                .clone(),
        );
        assert_eq!(annotated["metadata"]["annotations"][DIGEST_ANNOTATION], d);
    }
}
