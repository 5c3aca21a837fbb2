//! The operator against a real kube-apiserver and kube-controller-manager (v1.20.2) and a
//! real nats-server, running with the Helm chart's RBAC. One cluster, steps in order.

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use jobmatch_e2e::k8s::{Cluster, OPERATOR_USER};
use jobmatch_e2e::process::{Nats, Proc};
use jobmatch_e2e::{free_port, repo_root, wait_for};
use tokio::process::Command;

fn operator_bin() -> std::path::PathBuf {
    std::env::var_os("JOBMATCH_OPERATOR_BIN")
        .map(Into::into)
        .unwrap_or_else(|| repo_root().join("target/debug/jobmatch-operator"))
}

fn start_operator(cluster: &Cluster, nats: &str) -> Proc {
    Proc::spawn(
        "jobmatch-operator",
        Command::new(operator_bin())
            .arg("run")
            .env("KUBECONFIG", &cluster.operator_kubeconfig)
            .env("JOBMATCH_NAMESPACE", "jobmatch")
            .env("JOBMATCH_NATS_URL", nats)
            .env("JOBMATCH_OWNER_DEPLOYMENT", "jobmatch-operator")
            .env(
                "JOBMATCH_OPERATOR_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("JOBMATCH_STATUS_INTERVAL", "5s")
            .env("JOBMATCH_LOG", "info")
            .env("HOSTNAME", "operator-test")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(cluster.dir.path().join("operator.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::inherit()),
            ),
    )
}

async fn jsonpath(cluster: &Cluster, args: &[&str], path: &str) -> Option<String> {
    let mut all: Vec<&str> = args.to_vec();
    let expr = format!("jsonpath={path}");
    all.extend(["-o", &expr]);
    let (ok, out, _) = cluster.kubectl(&all).await;
    (ok && !out.is_empty()).then_some(out)
}

async fn wait_jsonpath(cluster: &Cluster, what: &str, args: &[&str], path: &str, want: &str) {
    wait_for(what, Duration::from_secs(60), || async {
        (jsonpath(cluster, args, path).await.as_deref() == Some(want)).then_some(())
    })
    .await;
}

/// Writes by the operator since `mark`, leases aside (renewing the lease is the one
/// write a leader must keep making).
fn operator_writes(cluster: &Cluster, mark: usize) -> Vec<(String, String, String)> {
    cluster
        .writes_by(OPERATOR_USER, mark)
        .into_iter()
        .filter(|(_, resource, _)| resource != "leases")
        .collect()
}

const SOURCE: &str = r#"
apiVersion: jobmatch.dev/v1alpha1
kind: JobSource
metadata: {name: acme, namespace: jobmatch}
spec:
  board: {kind: greenhouse, token: acme}
  interval: 10m
"#;

const SUBSCRIPTIONS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: resumes, namespace: jobmatch}
data:
  grace: "Data engineer: Python, Spark, Airflow; remote"
---
apiVersion: v1
kind: Secret
metadata: {name: grace-slack, namespace: jobmatch}
stringData:
  url: https://hooks.slack.com/services/T000/B000/XXXX
---
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: ada, namespace: jobmatch}
spec:
  resume: {text: "Backend engineer, 6 years of Rust and Kubernetes"}
  criteria: {remote: allowed, minScore: 0.4}
  notify:
    email: {to: ada@example.com}
---
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: grace, namespace: jobmatch}
spec:
  resume: {configMapKeyRef: {name: resumes, key: grace}}
  notify:
    slack: {webhookSecretRef: {name: grace-slack, key: url}}
"#;

/// Prints the operator's and the API server's logs when the test fails.
struct LogsOnFailure(std::path::PathBuf);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in ["operator.log", "apiserver.log"] {
                let text = std::fs::read_to_string(self.0.join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                eprintln!("---- {name} (last 60 lines)");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reconciles_on_a_real_api_server() {
    let cluster = Cluster::start().await;
    let _logs = LogsOnFailure(cluster.dir.path().to_owned());
    let nats = Nats::start().await;

    // CRDs install with kubectl.
    let crds = repo_root().join("crds");
    cluster
        .kubectl_ok(&["apply", "-f", crds.to_str().unwrap()])
        .await;
    cluster
        .kubectl_ok(&[
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            "crd/jobsources.jobmatch.dev",
            "crd/matchsubscriptions.jobmatch.dev",
        ])
        .await;

    // Invalid resources are refused by the API server, naming the field.
    for (yaml, field) in [
        (
            SOURCE.replace("kind: greenhouse", "kind: monster"),
            "spec.board.kind",
        ),
        (
            SOURCE.replace("interval: 10m", "interval: soon"),
            "spec.interval",
        ),
        (SOURCE.replace("token: acme", "site: acme"), "spec.board"),
        (
            SUBSCRIPTIONS
                .split("---")
                .nth(2)
                .unwrap()
                .replace("minScore: 0.4", "minScore: 1.5"),
            "spec.criteria.minScore",
        ),
        (
            SUBSCRIPTIONS
                .split("---")
                .nth(2)
                .unwrap()
                .replace("minScore: 0.4", "minScore: 0.4, languages: [en, klingon]"),
            "spec.criteria.languages",
        ),
        (
            SUBSCRIPTIONS
                .split("---")
                .nth(2)
                .unwrap()
                .replace("minScore: 0.4", "minScore: 0.4, seniority: [wizard]"),
            "spec.criteria.seniority",
        ),
        (
            SUBSCRIPTIONS
                .split("---")
                .nth(2)
                .unwrap()
                .replace("ada@example.com", "not-an-address"),
            "spec.notify.email.to",
        ),
    ] {
        let (ok, _, err) = cluster.apply_yaml(&yaml).await;
        assert!(!ok, "{field}: accepted:\n{yaml}");
        assert!(err.contains(field), "{field} not named in: {err}");
    }

    // The chart installs onto the cluster (CRDs already there).
    let chart = repo_root().join("charts/jobmatch");
    let (ok, _, err) = cluster
        .helm(&[
            "install",
            "jobmatch",
            chart.to_str().unwrap(),
            "--namespace",
            "jobmatch",
            "--skip-crds",
            "--wait=false",
        ])
        .await;
    assert!(ok, "helm install: {err}");

    let operator = start_operator(&cluster, &nats.url);

    cluster.apply_yaml(SOURCE).await;
    let (ok, _, err) = cluster.apply_yaml(SUBSCRIPTIONS).await;
    assert!(ok, "{err}");

    // The fleet appears, owned by the operator's Deployment.
    for role in ["fetcher", "embedder", "matcher", "notifier", "api"] {
        wait_jsonpath(
            &cluster,
            &format!("{role} deployment"),
            &["get", "deploy", &format!("jobmatch-{role}")],
            "{.metadata.ownerReferences[0].name}",
            "jobmatch-operator",
        )
        .await;
    }
    wait_jsonpath(
        &cluster,
        "one fetcher",
        &["get", "deploy", "jobmatch-fetcher"],
        "{.spec.replicas}",
        "1",
    )
    .await;
    wait_jsonpath(
        &cluster,
        "embedder HPA (autoscaling/v2beta2 on 1.20)",
        &["get", "hpa.v2beta2.autoscaling", "jobmatch-embedder"],
        "{.spec.scaleTargetRef.name}",
        "jobmatch-embedder",
    )
    .await;
    // The controller-manager made ReplicaSets from them: they are real Deployments.
    wait_for("replica sets", Duration::from_secs(60), || async {
        let out = cluster.kubectl_ok(&["get", "rs", "-o", "name"]).await;
        (out.lines().count() >= 4).then_some(())
    })
    .await;

    // Status and printer columns.
    wait_jsonpath(
        &cluster,
        "acme ready",
        &["get", "jobsource", "acme"],
        "{.status.conditions[0].status}",
        "True",
    )
    .await;
    wait_jsonpath(
        &cluster,
        "grace ready",
        &["get", "matchsubscription", "grace"],
        "{.status.conditions[0].reason}",
        "Configured",
    )
    .await;
    // An email subscription needs the notifiers' SMTP Secret: refused until it exists,
    // naming it, then configured.
    wait_jsonpath(
        &cluster,
        "ada refused without the SMTP Secret",
        &["get", "matchsubscription", "ada"],
        "{.status.conditions[0].reason}",
        "MissingReference",
    )
    .await;
    let message = jsonpath(
        &cluster,
        &["get", "matchsubscription", "ada"],
        "{.status.conditions[0].message}",
    )
    .await
    .unwrap_or_default();
    assert!(
        message.contains("spec.notify.email") && message.contains("\"jobmatch-smtp\""),
        "{message}"
    );
    cluster
        .kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "jobmatch-smtp",
            "--from-literal=url=smtp://127.0.0.1:2525",
        ])
        .await;
    wait_jsonpath(
        &cluster,
        "ada configured once the SMTP Secret exists",
        &["get", "matchsubscription", "ada"],
        "{.status.conditions[0].reason}",
        "Configured",
    )
    .await;
    let table = cluster.kubectl_ok(&["get", "jobsources"]).await;
    assert!(
        table.contains("BOARD") && table.contains("greenhouse") && table.contains("True"),
        "{table}"
    );
    let table = cluster.kubectl_ok(&["get", "matchsubscriptions"]).await;
    assert!(
        table.contains("MIN SCORE") && table.contains("0.4"),
        "{table}"
    );
    let finalizers = jsonpath(
        &cluster,
        &["get", "matchsubscription", "ada"],
        "{.metadata.finalizers}",
    )
    .await;
    assert!(
        finalizers
            .unwrap_or_default()
            .contains("jobmatch.dev/erase-subscription-data")
    );

    // The workers' configuration is in NATS, references resolved.
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let config = js.get_key_value("jobmatch-config").await.unwrap();
    let entry = |key: &'static str| {
        let config = config.clone();
        async move {
            config
                .get(key)
                .await
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
        }
    };
    let acme = wait_for("source.acme entry", Duration::from_secs(30), || {
        entry("source.acme")
    })
    .await;
    assert_eq!(acme["spec"]["board"]["token"], "acme");
    let grace = wait_for("subscription.grace entry", Duration::from_secs(30), || {
        entry("subscription.grace")
    })
    .await;
    assert!(
        grace["resume"].as_str().unwrap().contains("Airflow"),
        "{grace}"
    );
    assert_eq!(
        grace["channel"]["webhookUrl"],
        "https://hooks.slack.com/services/T000/B000/XXXX"
    );

    // Worker reports (as the fetchers and notifiers write them) reach status and the
    // printer columns.
    let reports = js
        .get_key_value(jobmatch_core::messages::REPORTS_BUCKET)
        .await
        .unwrap();
    reports
        .put("source.acme", r#"{"postingsSeen":15,"lastPoll":"2026-11-25T10:00:00Z","lastSuccess":"2026-11-25T10:00:00Z"}"#.into())
        .await
        .unwrap();
    reports
        .put(
            "subscription.ada",
            r#"{"matches":4,"noticesSent":3,"noticesFailed":1,"lastError":"slack: HTTP 400"}"#
                .into(),
        )
        .await
        .unwrap();
    wait_jsonpath(
        &cluster,
        "acme postings in status",
        &["get", "jobsource", "acme"],
        "{.status.postingsSeen}",
        "15",
    )
    .await;
    wait_jsonpath(
        &cluster,
        "ada notices in status",
        &["get", "matchsubscription", "ada"],
        "{.status.noticesSent}",
        "3",
    )
    .await;
    let ada = jsonpath(
        &cluster,
        &["get", "matchsubscription", "ada"],
        "{.status.matches} {.status.noticesFailed} {.status.lastError}",
    )
    .await;
    assert_eq!(ada.as_deref(), Some("4 1 slack: HTTP 400"));
    let table = cluster.kubectl_ok(&["get", "jobsources", "acme"]).await;
    assert!(table.contains("15"), "{table}");

    // An invalid spec the schema cannot catch: Ready=False naming the field, an Event.
    cluster
        .apply_yaml(
            &SOURCE
                .replace("name: acme", "name: too-fast")
                .replace("10m", "0s"),
        )
        .await;
    wait_jsonpath(
        &cluster,
        "too-fast refused",
        &["get", "jobsource", "too-fast"],
        "{.status.conditions[0].reason}",
        "InvalidSpec",
    )
    .await;
    let message = jsonpath(
        &cluster,
        &["get", "jobsource", "too-fast"],
        "{.status.conditions[0].message}",
    )
    .await
    .unwrap_or_default();
    assert!(message.contains("spec.interval"), "{message}");
    wait_for("InvalidSpec event", Duration::from_secs(30), || async {
        let out = cluster
            .kubectl_ok(&["get", "events.events.k8s.io", "-o", "json"])
            .await;
        out.contains("InvalidSpec").then_some(())
    })
    .await;
    cluster
        .kubectl_ok(&["delete", "jobsource", "too-fast"])
        .await;

    // More sources scale the fetchers (25 per fetcher by default).
    let many: String = (0..30)
        .map(|i| {
            SOURCE
                .replace("name: acme", &format!("name: board-{i}"))
                .replace("token: acme", &format!("token: company{i}"))
        })
        .collect::<Vec<_>>()
        .join("\n---\n");
    let (ok, _, err) = cluster.apply_yaml(&many).await;
    assert!(ok, "{err}");
    wait_jsonpath(
        &cluster,
        "two fetchers for 31 sources",
        &["get", "deploy", "jobmatch-fetcher"],
        "{.spec.replicas}",
        "2",
    )
    .await;
    wait_for("31 source entries", Duration::from_secs(60), || async {
        let keys = config
            .keys()
            .await
            .ok()?
            .filter_map(|k| async { k.ok() })
            .collect::<Vec<_>>()
            .await;
        (keys.iter().filter(|k| k.starts_with("source.")).count() == 31).then_some(())
    })
    .await;

    // Settle, then: a restart writes nothing, and neither does a quiet minute.
    tokio::time::sleep(Duration::from_secs(8)).await;
    operator.stop().await;
    let mark = cluster.audit_lines();
    let operator = start_operator(&cluster, &nats.url);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let writes = operator_writes(&cluster, mark);
    assert!(writes.is_empty(), "a restart wrote: {writes:?}");
    let mark = cluster.audit_lines();
    let lease_mark = mark;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let writes = operator_writes(&cluster, mark);
    assert!(writes.is_empty(), "a quiet minute wrote: {writes:?}");
    let lease_writes = cluster.writes_by(OPERATOR_USER, lease_mark).len();
    eprintln!("quiet minute: 0 writes besides {lease_writes} lease renewals");

    // Deleting a subscription runs the finalizer: config, pending and past notices erased.
    let notices = js.get_key_value("jobmatch-notices").await.unwrap();
    notices.put("ada.abc123", "sent".into()).await.unwrap();
    js.publish("jobmatch.matches.ada", "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    cluster
        .kubectl_ok(&["delete", "matchsubscription", "ada", "--timeout=60s"])
        .await;
    assert!(
        entry("subscription.ada").await.is_none(),
        "config entry left behind"
    );
    assert!(
        notices.get("ada.abc123").await.unwrap().is_none(),
        "notice key left behind"
    );
    let mut matches = js.get_stream("MATCHES").await.unwrap();
    assert_eq!(
        matches.info().await.unwrap().state.messages,
        0,
        "pending notice left behind"
    );
    assert!(
        entry("subscription.grace").await.is_some(),
        "another subscription was erased"
    );

    // With KEDA's CRD installed, the embedder is scaled by a ScaledObject on consumer lag.
    cluster
        .apply_yaml(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: scaledobjects.keda.sh}\nspec:\n  group: keda.sh\n  scope: Namespaced\n  names: {plural: scaledobjects, singular: scaledobject, kind: ScaledObject}\n  versions:\n  - name: v1alpha1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
        )
        .await;
    cluster
        .kubectl_ok(&[
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            "crd/scaledobjects.keda.sh",
        ])
        .await;
    operator.stop().await;
    let operator = start_operator(&cluster, &nats.url);
    wait_jsonpath(
        &cluster,
        "embedder ScaledObject",
        &["get", "scaledobjects.keda.sh", "jobmatch-embedder"],
        "{.spec.triggers[0].metadata.consumer}",
        "embedder",
    )
    .await;
    wait_for("embedder HPA removed", Duration::from_secs(60), || async {
        let (ok, _, _) = cluster.kubectl(&["get", "hpa", "jobmatch-embedder"]).await;
        (!ok).then_some(())
    })
    .await;

    // Deleting everything: the garbage collector removes what the operator created.
    // (The operator runs while subscriptions go: their finalizer needs it.)
    cluster
        .kubectl_ok(&[
            "delete",
            "jobsources,matchsubscriptions",
            "--all",
            "--timeout=60s",
        ])
        .await;
    operator.stop().await;
    // No node here to run the uninstall hook's pod (tests/tests/cluster.rs runs it).
    let (ok, _, err) = cluster
        .helm(&[
            "uninstall",
            "jobmatch",
            "--namespace",
            "jobmatch",
            "--no-hooks",
        ])
        .await;
    assert!(ok, "helm uninstall: {err}");
    wait_for(
        "fleet garbage-collected",
        Duration::from_secs(120),
        || async {
            let out = cluster
                .kubectl_ok(&[
                    "get",
                    "deploy,sa,scaledobjects.keda.sh",
                    "-l",
                    "app.kubernetes.io/managed-by=jobmatch-operator",
                    "-o",
                    "name",
                ])
                .await;
            out.trim().is_empty().then_some(())
        },
    )
    .await;
}

/// `crds/`, the chart's copy and `manifests/` are generated: fail when stale. Helm lints
/// and renders the chart.
#[tokio::test]
async fn generated_artifacts_are_current_and_the_chart_renders() {
    let root = repo_root();
    let out = Command::new(operator_bin())
        .arg("crds")
        .output()
        .await
        .expect("run operator");
    let generated = String::from_utf8(out.stdout).unwrap();
    for path in [
        "crds/jobmatch.dev.yaml",
        "charts/jobmatch/crds/jobmatch.dev.yaml",
    ] {
        let committed = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is stale: run `jobmatch-operator crds > {path}` (scripts/render-manifests.sh)"
        );
    }
    let helm = jobmatch_e2e::env_path("JOBMATCH_K8S_BIN").join("helm");
    let chart = root.join("charts/jobmatch");
    let lint = Command::new(&helm)
        .arg("lint")
        .arg(&chart)
        .output()
        .await
        .unwrap();
    assert!(
        lint.status.success(),
        "helm lint: {}",
        String::from_utf8_lossy(&lint.stdout)
    );
    let rendered = Command::new(&helm)
        .args(["template", "jobmatch"])
        .arg(&chart)
        .args(["--namespace", "jobmatch", "--include-crds", "--no-hooks"])
        .output()
        .await
        .unwrap();
    assert!(rendered.status.success());
    let rendered = String::from_utf8(rendered.stdout).unwrap();
    let manifests =
        std::fs::read_to_string(root.join("manifests/jobmatch.yaml")).unwrap_or_default();
    assert!(
        manifests.ends_with(&rendered),
        "manifests/jobmatch.yaml is stale: run scripts/render-manifests.sh"
    );
    // GPU values reach the operator.
    let gpu = Command::new(&helm)
        .args(["template", "jobmatch"])
        .arg(&chart)
        .args([
            "--set",
            "gpu.enabled=true",
            "--set",
            "scaling.autoscaler=keda",
        ])
        .output()
        .await
        .unwrap();
    let gpu = String::from_utf8(gpu.stdout).unwrap();
    assert!(gpu.contains("name: JOBMATCH_GPU, value: \"true\""), "{gpu}");
    assert!(gpu.contains("name: JOBMATCH_AUTOSCALER, value: \"keda\""));
}
