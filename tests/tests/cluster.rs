//! jobmatch as a user installs it, on a real node: the images `scripts/images.sh` built
//! (imported into the node's containerd), `kubectl apply -f crds/`, `helm install` of the
//! chart, the scenario's JobSources and MatchSubscriptions applied with kubectl, and the
//! whole pipeline in pods: the boards, the SMTP server, the Slack receiver and NATS run on
//! the host, at the pod network's host address.
//!
//! Then, in order: every worker pod deleted once while a wave of postings is on its way
//! (nothing lost, nothing sent twice); the operator's leader deleted (the other replica
//! takes over, and reconciles a new subscription, which the replaced matcher answers from
//! the jobs it stored before); `helm upgrade` to a new image tag (every rolling update
//! completes); `helm uninstall` and deleting the resources (nothing of jobmatch left).
//! Prints how long each step took.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jobmatch_e2e::k8s::Cluster;
use jobmatch_e2e::k8s_node::HOST_IP;
use jobmatch_e2e::mail::read_maildir;
use jobmatch_e2e::scenario::{EXPECTED, MIN_SCORES, Scenario, expected};
use jobmatch_e2e::{repo_root, wait_for, wait_while_progressing};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const UPGRADE_TAG: &str = "upgrade-test";
/// Postings in the wave that is on its way while the worker pods are deleted.
const WAVE: usize = 800;
const ROLES: [&str; 5] = ["fetcher", "embedder", "matcher", "notifier", "api"];
/// The API's write token, from the Secret the chart's api mounts.
const API_TOKEN: &str = "cluster-test-3f0a9c";

fn image(name: &str, tag: &str) -> String {
    format!("docker.io/jobmatch/{name}:{tag}")
}

fn images_dir() -> PathBuf {
    std::env::var_os("JOBMATCH_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/images"))
}

/// What the test measured, printed at the end (and on failure, so far).
#[derive(Default)]
struct Timings(Vec<(String, Duration)>);

impl Timings {
    fn record(&mut self, what: impl Into<String>, took: Duration) {
        let what = what.into();
        eprintln!("cluster: {what}: {:.1} s", took.as_secs_f64());
        self.0.push((what, took));
    }
}

impl Drop for Timings {
    fn drop(&mut self) {
        eprintln!("---- cluster timings");
        for (what, took) in &self.0 {
            eprintln!("{what:<58} {:>7.1} s", took.as_secs_f64());
        }
    }
}

async fn jsonpath(cluster: &Cluster, args: &[&str], path: &str) -> String {
    let expr = format!("jsonpath={path}");
    let mut all = args.to_vec();
    all.extend(["-o", &expr]);
    let (_, out, _) = cluster.kubectl(&all).await;
    out
}

/// Names of the Running, Ready pods of a component.
async fn ready_pods(cluster: &Cluster, component: &str) -> Vec<String> {
    let out = jsonpath(
        cluster,
        &["get", "pods", "-l", &format!("app.kubernetes.io/component={component}")],
        r#"{range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    )
    .await;
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // name phase ready (no deletion timestamp: three fields)
            (f.len() == 3 && f[1] == "Running" && f[2] == "True").then(|| f[0].to_owned())
        })
        .collect()
}

/// The api pod, at its pod address (no kube-proxy here), with the token from the
/// mounted Secret: a search finds the boards' jobs, ranked; no token is refused.
async fn api_answers_in_the_cluster(cluster: &Cluster) {
    let ip = jsonpath(
        cluster,
        &["get", "pods", "-l", "app.kubernetes.io/component=api"],
        "{.items[0].status.podIP}",
    )
    .await;
    assert!(!ip.is_empty(), "the api pod has no address");
    jobmatch_workers::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let url = format!("http://{ip}:9090/job/search");
    let body = serde_json::json!({
        "text": "Backend engineer with 6 years of Rust, Tokio and Kubernetes",
        "criteria": {"minScore": 0.2},
        "limit": 5,
    });
    let refused = client.post(&url).json(&body).send().await.expect("api pod");
    assert_eq!(refused.status(), 401, "no token");
    let answer: serde_json::Value =
        wait_for("the api pod to search", Duration::from_secs(60), || {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move {
                let r = client
                    .post(&url)
                    .bearer_auth(API_TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                if r.status() != 200 {
                    return None;
                }
                r.json().await.ok()
            }
        })
        .await;
    let hits = answer["hits"].as_array().cloned().unwrap_or_default();
    assert_eq!(hits.len(), 5, "{answer}");
    let first = hits[0]["posting"]["title"].as_str().unwrap_or_default();
    assert!(
        first.contains("Rust") || first.contains("Backend"),
        "{answer}"
    );
}

/// Deletes a component's pod and waits for its replacement to be Ready: how long.
async fn replace_pod(cluster: &Cluster, component: &str) -> Duration {
    let before = ready_pods(cluster, component).await;
    assert_eq!(
        before.len(),
        1,
        "{component}: one ready pod expected: {before:?}"
    );
    let started = Instant::now();
    cluster
        .kubectl_ok(&["delete", "pod", &before[0], "--wait=false"])
        .await;
    wait_for(
        &format!("a new {component} pod to be Ready"),
        Duration::from_secs(180),
        || async {
            let now = ready_pods(cluster, component).await;
            (now.len() == 1 && now[0] != before[0]).then_some(())
        },
    )
    .await;
    started.elapsed()
}

/// Greenhouse-shaped postings for the wave: on-site pastry jobs in Tokyo, each text
/// different enough that dedup sees distinct jobs (not re-posts of one another), and
/// far from every scenario resume and criterion.
fn wave_board(n: usize) -> String {
    const WORDS: [&str; 24] = [
        "laminated",
        "dough",
        "butter",
        "sourdough",
        "ovens",
        "glaze",
        "pastry",
        "tarts",
        "custard",
        "almond",
        "matcha",
        "yuzu",
        "brioche",
        "proofing",
        "ganache",
        "sesame",
        "meringue",
        "choux",
        "caramel",
        "hazelnut",
        "mochi",
        "chestnut",
        "praline",
        "sugar",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let jobs: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let words: Vec<&str> = (0..40)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect();
            serde_json::json!({
                "id": 9_100_000 + i,
                "title": format!("Croissant Baker {i}"),
                "absolute_url": format!("https://boards.greenhouse.io/wave/jobs/{i}"),
                "location": {"name": "Tokyo, Japan"},
                "updated_at": "2026-11-20T09:00:00-05:00",
                "first_published": "2026-11-20T08:00:00-05:00",
                "company_name": "Wave Bakery",
                "content": format!("&lt;p&gt;Croissant station {i}: {}.&lt;/p&gt;", words.join(" ")),
                "departments": [],
                "offices": [],
                "metadata": null,
            })
        })
        .collect();
    serde_json::json!({"jobs": jobs, "meta": {"total": n}}).to_string()
}

fn wave_resources(board: &str) -> String {
    format!(
        r#"
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {{name: wave}}
spec:
  resume: {{text: "Pastry chef: laminated dough, croissants, viennoiserie, on-site."}}
  criteria: {{remote: allowed, locations: [Tokyo], mustHave: [croissant], minScore: 0, topK: 500}}
  notify:
    email: {{to: wave@example.com}}
---
apiVersion: jobmatch.dev/v1alpha1
kind: JobSource
metadata: {{name: wave}}
spec:
  board: {{kind: greenhouse, token: wave}}
  baseUrl: {board}
  interval: 2s
"#
    )
}

/// ada's resume and criteria under another name, created after the matcher pod was
/// replaced: it gets ada's jobs from the matcher's stored ones.
const LATE: &str = r#"
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: late}
spec:
  resume:
    text: >-
      Backend engineer with 6 years of Rust and Kubernetes. I build event-driven
      services with Tokio, PostgreSQL and NATS, design APIs, and run what I build in
      production with Prometheus and on-call.
  criteria: {remote: allowed, locations: [Berlin], minScore: 0.465, mustNotHave: [php]}
  notify:
    email: {to: late@example.com}
"#;

/// Mails to the wave subscription: notice key → how many.
fn wave_mails(s: &Scenario) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for mail in read_maildir(&s.smtp.maildir) {
        let key = mail.header("x-jobmatch-notice").unwrap_or_default();
        if key.starts_with("wave.") {
            *out.entry(key.to_owned()).or_default() += 1;
        }
    }
    out
}

/// The scenario's deliveries without the wave's: (subscription, posting) → count.
fn scenario_deliveries(s: &Scenario) -> BTreeMap<(String, String), usize> {
    s.deliveries()
        .into_iter()
        .filter(|((sub, _), _)| sub != "wave")
        .collect()
}

/// Every expected notice (plus `late`'s, when `with_late`), each exactly once.
fn assert_exactly_once(s: &Scenario, with_late: bool) {
    let got = scenario_deliveries(s);
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "notices sent more than once: {twice:?}");
    let mut want = expected();
    if with_late {
        for (sub, posting) in EXPECTED {
            if sub == "ada" {
                want.insert(("late".to_owned(), posting.to_owned()));
            }
        }
    }
    let got: std::collections::BTreeSet<_> = got.into_keys().collect();
    assert_eq!(
        got,
        want,
        "unexpected: {:?}\nmissing: {:?}",
        got.difference(&want).collect::<Vec<_>>(),
        want.difference(&got).collect::<Vec<_>>()
    );
    let wave = wave_mails(s);
    let twice: Vec<_> = wave.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "wave notices sent twice: {twice:?}");
}

/// On failure: the pods, and the logs of jobmatch's containers.
struct Diagnostics<'a>(&'a Cluster);

impl Drop for Diagnostics<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let kubectl = self.0.bin.join("kubectl");
        let run = |args: &[&str]| {
            std::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&self.0.kubeconfig)
                .args(args)
                .output()
                .map(|o| {
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_default()
        };
        eprintln!("---- pods\n{}", run(&["get", "pods", "-o", "wide"]));
        eprintln!(
            "---- events\n{}",
            run(&["get", "events", "--sort-by=.lastTimestamp"])
        );
        for component in ["operator", "fetcher", "embedder", "matcher", "notifier"] {
            let logs = run(&[
                "logs",
                "-l",
                &format!("app.kubernetes.io/component={component}"),
                "--tail=40",
                "--all-containers",
            ]);
            eprintln!("---- {component} logs\n{logs}");
        }
        if let Some(node) = self.0.node() {
            let kubelet = node.log("kubelet");
            let tail: Vec<&str> = kubelet.lines().rev().take(30).collect();
            eprintln!("---- kubelet (last 30 lines)");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_in_a_real_cluster() {
    let mut timings = Timings::default();
    let cluster = Cluster::start_with_node().await;
    let _diagnostics = Diagnostics(&cluster);
    let node = cluster.node().expect("a node");
    timings.record(
        "cluster start to node Ready",
        node.ready_after.unwrap_or_default(),
    );

    // The images, as scripts/images.sh wrote them.
    let started = Instant::now();
    for name in ["operator", "worker"] {
        let archive = images_dir().join(format!("{name}.tar"));
        assert!(
            archive.exists(),
            "{} is missing: run scripts/images.sh first (scripts/test.sh does)",
            archive.display()
        );
        node.import(&archive);
        let want = image(name, VERSION);
        assert!(node.images().contains(&want), "{want} not on the node");
        // The tag `helm upgrade` moves to later.
        node.tag(&want, &image(name, UPGRADE_TAG));
    }
    timings.record("importing the images", started.elapsed());

    let s = Scenario::start_on(HOST_IP, &MIN_SCORES).await;
    // The matcher's volume: a host directory the pods' user owns.
    let volume = s.dir.path().join("matcher-volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::os::unix::fs::chown(&volume, Some(65532), Some(65532)).unwrap();
    let (ok, _, err) = cluster
        .apply_yaml(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: jobmatch-test-matcher}}\nspec:\n  capacity: {{storage: 2Gi}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Retain\n  hostPath: {{path: {}, type: Directory}}\n",
            volume.display()
        ))
        .await;
    assert!(ok, "persistent volume: {err}");
    let (ok, _, err) = cluster
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "jobmatch-smtp",
            &format!("--from-literal=url={}", s.smtp.url),
        ])
        .await;
    assert!(ok, "SMTP secret: {err}");
    let (ok, _, err) = cluster
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "jobmatch-api-tokens",
            &format!("--from-literal=tokens={API_TOKEN} write"),
        ])
        .await;
    assert!(ok, "API tokens secret: {err}");

    let crds = repo_root().join("crds");
    cluster
        .kubectl_ok(&["apply", "-f", crds.to_str().unwrap()])
        .await;
    let values = s.dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!(
            r#"
image: {{operator: "{operator}", worker: "{worker}", pullPolicy: Never}}
operator:
  statusInterval: 5s
  # Pods reach the API server at the host's address on the pod network (no kube-proxy).
  env:
    - {{name: KUBERNETES_SERVICE_HOST, value: "{host}"}}
    - {{name: KUBERNETES_SERVICE_PORT, value: "{port}"}}
nats: {{url: "{nats}"}}
api: {{replicas: 1}}
# Two cores for everything: small requests, so that rolling updates fit on the node.
workers:
  resources:
    fetcher: {{requests: {{cpu: 20m, memory: 32Mi}}, limits: {{memory: 512Mi}}}}
    embedder: {{requests: {{cpu: 100m, memory: 128Mi}}, limits: {{memory: 2Gi}}}}
    matcher: {{requests: {{cpu: 20m, memory: 32Mi}}, limits: {{memory: 1Gi}}}}
    notifier: {{requests: {{cpu: 20m, memory: 32Mi}}, limits: {{memory: 512Mi}}}}
    api: {{requests: {{cpu: 20m, memory: 32Mi}}, limits: {{memory: 256Mi}}}}
"#,
            operator = image("operator", VERSION),
            worker = image("worker", VERSION),
            host = cluster.api_host,
            port = cluster.api_port,
            nats = s.nats.url,
        ),
    )
    .unwrap();
    let chart = repo_root().join("charts/jobmatch");
    let installed = Instant::now();
    let (ok, _, err) = cluster
        .helm(&[
            "install",
            "jobmatch",
            chart.to_str().unwrap(),
            "--namespace",
            "jobmatch",
            "--skip-crds",
            "-f",
            values.to_str().unwrap(),
        ])
        .await;
    assert!(ok, "helm install: {err}");
    let (ok, _, err) = cluster
        .kubectl(&["apply", "-n", "jobmatch", "-f", &s.config_arg()])
        .await;
    assert!(ok, "kubectl apply of the scenario: {err}");

    let first_mail = wait_for("the first notice", Duration::from_secs(300), || async {
        (s.delivered_count() > 0).then(|| installed.elapsed())
    })
    .await;
    timings.record("helm install to the first notice", first_mail);
    wait_for(
        "every expected notice",
        Duration::from_secs(240),
        || async { (s.delivered_count() >= EXPECTED.len()).then_some(()) },
    )
    .await;
    timings.record("helm install to every notice (15)", installed.elapsed());
    // Both operator replicas are ready (the follower too), and every worker.
    wait_for(
        "both operator replicas Ready",
        Duration::from_secs(180),
        || async { (ready_pods(&cluster, "operator").await.len() == 2).then_some(()) },
    )
    .await;
    timings.record(
        "helm install to both operator replicas Ready",
        installed.elapsed(),
    );
    for role in ROLES {
        wait_for(
            &format!("the {role} pod Ready"),
            Duration::from_secs(120),
            || async { (ready_pods(&cluster, role).await.len() == 1).then_some(()) },
        )
        .await;
    }
    timings.record(
        "helm install to every worker pod Ready",
        installed.elapsed(),
    );
    let claim = jsonpath(
        &cluster,
        &["get", "pvc", "jobmatch-matcher-data"],
        "{.status.phase} {.spec.volumeName}",
    )
    .await;
    assert_eq!(claim, "Bound jobmatch-test-matcher", "the matcher's claim");
    api_answers_in_the_cluster(&cluster).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_exactly_once(&s, false);
    // Status from the workers' reports, in kubectl get's columns.
    wait_for(
        "ada's status to count 7 notices",
        Duration::from_secs(60),
        || async {
            let sent = jsonpath(
                &cluster,
                &["get", "matchsubscription", "ada"],
                "{.status.noticesSent}",
            )
            .await;
            (sent == "7").then_some(())
        },
    )
    .await;
    let table = cluster.kubectl_ok(&["get", "matchsubscriptions"]).await;
    let ada = table
        .lines()
        .find(|l| l.starts_with("ada "))
        .unwrap_or_default();
    assert!(
        ada.split_whitespace().any(|c| c == "7") && ada.contains("True"),
        "{table}"
    );
    let table = cluster.kubectl_ok(&["get", "jobsources"]).await;
    let acme = table
        .lines()
        .find(|l| l.starts_with("acme "))
        .unwrap_or_default();
    assert!(acme.split_whitespace().any(|c| c == "15"), "{table}");

    // A wave of postings, and each worker pod deleted once while it is on its way.
    let (ok, _, err) = cluster.apply_yaml(&wave_resources(&s.boards.url)).await;
    assert!(ok, "wave resources: {err}");
    wait_for(
        "the wave subscription Ready",
        Duration::from_secs(60),
        || async {
            let ready = jsonpath(
                &cluster,
                &["get", "matchsubscription", "wave"],
                r#"{.status.conditions[?(@.type=="Ready")].status}"#,
            )
            .await;
            (ready == "True").then_some(())
        },
    )
    .await;
    s.boards.set_greenhouse("wave", wave_board(WAVE));
    wait_for(
        "the wave board to be polled",
        Duration::from_secs(60),
        || async { (s.boards.hits("/v1/boards/wave/jobs") > 0).then_some(()) },
    )
    .await;
    for role in ["embedder", "matcher", "notifier", "fetcher"] {
        let took = replace_pod(&cluster, role).await;
        let sent = wave_mails(&s).len();
        timings.record(
            format!("{role} pod deleted to replacement Ready ({sent} of the wave sent)"),
            took,
        );
    }
    let wave_started = Instant::now();
    // How long the rest takes is the machine's speed (CI runs other suites beside this
    // one, and the pods' embedder gets a fraction of two cores): it must keep going, and
    // a notice lost would stop it short of the wave.
    wait_while_progressing(
        &format!("the {WAVE} notices of the wave"),
        WAVE,
        Duration::from_secs(150),
        Duration::from_secs(900),
        || async { wave_mails(&s).len() },
    )
    .await;
    timings.record(
        "the rest of the wave after the last deletion",
        wave_started.elapsed(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(wave_mails(&s).len(), WAVE, "one notice per wave posting");
    assert_exactly_once(&s, false);

    // The leader goes; the follower takes over and reconciles the next change.
    let leader = jsonpath(
        &cluster,
        &["get", "lease", "jobmatch-operator"],
        "{.spec.holderIdentity}",
    )
    .await;
    let operators = ready_pods(&cluster, "operator").await;
    assert!(
        operators.contains(&leader),
        "leader {leader:?} among {operators:?}"
    );
    let started = Instant::now();
    cluster
        .kubectl_ok(&["delete", "pod", &leader, "--wait=false"])
        .await;
    let follower = operators.iter().find(|p| **p != leader).unwrap().clone();
    wait_for(
        "the follower to hold the lease",
        Duration::from_secs(60),
        || async {
            let holder = jsonpath(
                &cluster,
                &["get", "lease", "jobmatch-operator"],
                "{.spec.holderIdentity}",
            )
            .await;
            (holder == follower).then_some(())
        },
    )
    .await;
    timings.record(
        "leader pod deleted to the follower leading",
        started.elapsed(),
    );
    let (ok, _, err) = cluster.apply_yaml(LATE).await;
    assert!(ok, "late subscription: {err}");
    let started = Instant::now();
    wait_for(
        "the late subscription Ready",
        Duration::from_secs(60),
        || async {
            let status = jsonpath(
                &cluster,
                &["get", "matchsubscription", "late"],
                r#"{.status.conditions[?(@.type=="Ready")].status}"#,
            )
            .await;
            (status == "True").then_some(())
        },
    )
    .await;
    timings.record(
        "a new subscription reconciled by the new leader",
        started.elapsed(),
    );
    let ada_jobs = EXPECTED.iter().filter(|(sub, _)| *sub == "ada").count();
    wait_for(
        "late's notices, from the jobs stored before",
        Duration::from_secs(120),
        || async {
            let late = scenario_deliveries(&s)
                .keys()
                .filter(|(sub, _)| sub == "late")
                .count();
            (late >= ada_jobs).then_some(())
        },
    )
    .await;
    timings.record(
        "a new subscription to its notices from stored jobs",
        started.elapsed(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_exactly_once(&s, true);
    let delivered = s.delivered_count();

    // A new image tag: every Deployment rolls, the operator's two replicas included.
    let started = Instant::now();
    let (ok, _, err) = cluster
        .helm(&[
            "upgrade",
            "jobmatch",
            chart.to_str().unwrap(),
            "--namespace",
            "jobmatch",
            "--reuse-values",
            "--set",
            &format!("image.operator={}", image("operator", UPGRADE_TAG)),
            "--set",
            &format!("image.worker={}", image("worker", UPGRADE_TAG)),
        ])
        .await;
    assert!(ok, "helm upgrade: {err}");
    for deployment in [
        "operator", "fetcher", "embedder", "matcher", "notifier", "api",
    ] {
        let name = format!("jobmatch-{deployment}");
        wait_for(
            &format!("{name} to name the new image"),
            Duration::from_secs(180),
            || async {
                let image = jsonpath(
                    &cluster,
                    &["get", "deploy", &name],
                    "{.spec.template.spec.containers[0].image}",
                )
                .await;
                image.ends_with(UPGRADE_TAG).then_some(())
            },
        )
        .await;
        let (ok, out, err) = cluster
            .kubectl(&[
                "rollout",
                "status",
                &format!("deploy/{name}"),
                "--timeout=240s",
            ])
            .await;
        assert!(ok, "{name} rollout did not complete: {out}{err}");
    }
    timings.record("helm upgrade to every rollout complete", started.elapsed());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        s.delivered_count(),
        delivered,
        "the upgrade sent notices again"
    );
    assert_exactly_once(&s, true);

    // Uninstall, then delete the resources: nothing of jobmatch is left.
    let started = Instant::now();
    let (ok, out, err) = cluster
        .helm(&[
            "uninstall",
            "jobmatch",
            "--namespace",
            "jobmatch",
            "--timeout",
            "180s",
        ])
        .await;
    assert!(ok, "helm uninstall: {out}{err}");
    let (ok, out, err) = cluster
        .kubectl(&[
            "delete",
            "jobsources,matchsubscriptions",
            "--all",
            "--timeout=60s",
        ])
        .await;
    assert!(ok, "deleting the resources after uninstall: {out}{err}");
    cluster
        .kubectl_ok(&[
            "delete",
            "secret",
            "slack",
            "jobmatch-smtp",
            "jobmatch-api-tokens",
        ])
        .await;
    wait_for(
        "nothing of jobmatch left",
        Duration::from_secs(120),
        || async {
            let left = leftovers(&cluster).await;
            left.is_empty().then_some(())
        },
    )
    .await;
    timings.record("helm uninstall to nothing left", started.elapsed());
    cluster
        .kubectl_ok(&["delete", "pv", "jobmatch-test-matcher"])
        .await;
}

/// Every object in the namespace, and jobmatch's cluster-wide RBAC, that is not the
/// namespace's own (its default ServiceAccount, token and root CA) or an Event.
async fn leftovers(cluster: &Cluster) -> Vec<String> {
    let (_, kinds, _) = cluster
        .kubectl(&[
            "api-resources",
            "--verbs=list",
            "--namespaced",
            "-o",
            "name",
        ])
        .await;
    let kinds: Vec<&str> = kinds
        .lines()
        .filter(|k| !k.starts_with("events") && !k.is_empty())
        .collect();
    let (_, out, _) = cluster
        .kubectl(&["get", &kinds.join(","), "-n", "jobmatch", "-o", "name"])
        .await;
    let mut left: Vec<String> = out
        .lines()
        .filter(|o| {
            !(o.starts_with("serviceaccount/default")
                || o.starts_with("secret/default-token-")
                || *o == "configmap/kube-root-ca.crt")
        })
        .map(str::to_owned)
        .collect();
    let (_, out, _) = cluster
        .kubectl(&["get", "clusterroles,clusterrolebindings", "-o", "name"])
        .await;
    left.extend(
        out.lines()
            .filter(|o| o.contains("jobmatch"))
            .map(str::to_owned),
    );
    left
}
