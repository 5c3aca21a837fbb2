//! Operator at scale on a real kube-apiserver: creates JobSources and MatchSubscriptions
//! (default 1,000 and 10,000), then starts the operator and reports the time until it
//! stops writing (steady state), its write requests per second on the way, its peak RSS,
//! and its writes over one steady minute (lease renewals reported apart).
//!
//!   cargo build -p jobmatch-operator && cargo run -p jobmatch-e2e --bin bench-operator [-- SOURCES SUBSCRIPTIONS]
//!
//! `JOBMATCH_OPERATOR_BIN=target/release/jobmatch-operator` measures a release build
//! (what an image ships); the default is the dev build.

use std::process::Stdio;
use std::time::{Duration, Instant};

use jobmatch_e2e::k8s::{Cluster, OPERATOR_USER};
use jobmatch_e2e::process::{Nats, Proc};
use jobmatch_e2e::{free_port, repo_root};
use tokio::process::Command;

/// User plus system CPU seconds a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state field.
    (ticks(11) + ticks(12)) / 100.0
}

/// Counts the operator's writes (leases aside) in the audit log, reading only what was
/// appended since the last call.
struct AuditTail {
    path: std::path::PathBuf,
    offset: u64,
    partial: String,
    count: usize,
}

impl AuditTail {
    fn new(path: std::path::PathBuf) -> Self {
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        AuditTail {
            path,
            offset,
            partial: String::new(),
            count: 0,
        }
    }

    fn operator_writes(&mut self) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return self.count;
        };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err()
            || file.read_to_string(&mut text).is_err()
        {
            return self.count;
        }
        self.offset += text.len() as u64;
        self.partial.push_str(&text);
        let complete = match self.partial.rfind('\n') {
            Some(i) => {
                let rest = self.partial.split_off(i + 1);
                std::mem::replace(&mut self.partial, rest)
            }
            None => return self.count,
        };
        self.count += complete
            .lines()
            .filter(|l| l.contains(OPERATOR_USER) && !l.contains("\"resource\":\"leases\""))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                e["user"]["username"] == OPERATOR_USER && e["objectRef"]["resource"] != "leases"
            })
            .count();
        self.count
    }
}

fn writes(cluster: &Cluster, mark: usize) -> (usize, usize) {
    let all = cluster.writes_by(OPERATOR_USER, mark);
    let leases = all.iter().filter(|w| w.1 == "leases").count();
    (all.len() - leases, leases)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sources = args.first().copied().unwrap_or(1_000);
    let subscriptions = args.get(1).copied().unwrap_or(10_000);
    let cluster = Cluster::start().await;
    let nats = Nats::start().await;
    cluster
        .kubectl_ok(&["apply", "-f", repo_root().join("crds").to_str().unwrap()])
        .await;
    let chart = repo_root().join("charts/jobmatch");
    cluster
        .helm(&[
            "install",
            "jobmatch",
            chart.to_str().unwrap(),
            "-n",
            "jobmatch",
            "--skip-crds",
        ])
        .await;
    // The notifiers' SMTP server: email subscriptions are refused without it.
    cluster
        .kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "jobmatch-smtp",
            "--from-literal=url=smtp://127.0.0.1:2525",
        ])
        .await;

    eprintln!("creating {sources} JobSources and {subscriptions} MatchSubscriptions");
    let created = Instant::now();
    let mut docs = Vec::new();
    for i in 0..sources {
        docs.push(format!(
            "apiVersion: jobmatch.dev/v1alpha1\nkind: JobSource\nmetadata: {{name: board-{i}, namespace: jobmatch}}\nspec:\n  board: {{kind: greenhouse, token: company{i}}}\n  interval: 30m\n"
        ));
    }
    for i in 0..subscriptions {
        docs.push(format!(
            "apiVersion: jobmatch.dev/v1alpha1\nkind: MatchSubscription\nmetadata: {{name: person-{i}, namespace: jobmatch}}\nspec:\n  resume: {{text: \"Engineer number {i}: Rust, Kubernetes, Postgres\"}}\n  criteria: {{minScore: 0.4}}\n  notify: {{email: {{to: person{i}@example.com}}}}\n"
        ));
    }
    for chunk in docs.chunks(500) {
        let (ok, _, err) = cluster
            .kubectl_input(
                &["create", "-f", "-", "-o", "name"],
                Some(&chunk.join("---\n")),
            )
            .await;
        assert!(ok, "creating resources: {err}");
    }
    eprintln!("created in {:.1} s", created.elapsed().as_secs_f64());

    let mark = cluster.audit_lines();
    let started = Instant::now();
    let log = std::fs::File::create(cluster.dir.path().join("operator.log")).expect("log");
    let operator = Proc::spawn(
        "jobmatch-operator",
        Command::new(
            std::env::var_os("JOBMATCH_OPERATOR_BIN")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target/debug/jobmatch-operator")),
        )
        .arg("run")
        .env("KUBECONFIG", &cluster.operator_kubeconfig)
        .env("JOBMATCH_NAMESPACE", "jobmatch")
        .env("JOBMATCH_NATS_URL", &nats.url)
        .env("JOBMATCH_OWNER_DEPLOYMENT", "jobmatch-operator")
        .env(
            "JOBMATCH_OPERATOR_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("JOBMATCH_LOG", "warn")
        .env(
            "JOBMATCH_LEADER_ELECT",
            std::env::var("BENCH_LEADER_ELECT").unwrap_or("true".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::from(log)),
    );
    let pid = operator.pid().expect("operator pid");
    // Steady: no new writes for 10 s. The audit log is read incrementally, so watching
    // it costs the measured machine little.
    let mut tail = AuditTail::new(cluster.audit_log.clone());
    let (mut last_count, mut last_change) = (0, Instant::now());
    let steady_at = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = tail.operator_writes();
        if n != last_count {
            last_count = n;
            last_change = Instant::now();
            eprintln!("  {:>5.1} s: {n} writes", started.elapsed().as_secs_f64());
        } else if n > 0 && last_change.elapsed() > Duration::from_secs(10) {
            break last_change.duration_since(started);
        }
        if started.elapsed() > Duration::from_secs(900) {
            panic!("no steady state after 15 minutes");
        }
    };
    let (total, _) = writes(&cluster, mark);
    let operator_cpu = cpu_seconds(pid);
    let steady_mark = cluster.audit_lines();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (quiet, leases) = writes(&cluster, steady_mark);
    let by_resource = |mark: usize| {
        let mut counts = std::collections::BTreeMap::new();
        for (verb, resource, _) in cluster.writes_by(OPERATOR_USER, mark) {
            *counts.entry(format!("{verb} {resource}")).or_insert(0usize) += 1;
        }
        counts
    };
    eprintln!("writes until steady, by request: {:?}", by_resource(mark));
    eprintln!(
        "writes in the steady minute, by request: {:?}",
        by_resource(steady_mark)
    );
    let rss = jobmatch_e2e::peak_rss_mib(pid);
    println!(
        "operator bench: {sources} JobSources, {subscriptions} MatchSubscriptions (kube-apiserver 1.20.2, this machine)"
    );
    println!(
        "  time to steady state:      {:.1} s",
        steady_at.as_secs_f64()
    );
    println!(
        "  writes to steady state:    {total} ({:.0} writes/s)",
        total as f64 / steady_at.as_secs_f64()
    );
    println!("  operator peak RSS:         {rss:.1} MiB");
    println!(
        "  operator CPU to steady:    {operator_cpu:.1} s ({:.0}% of one core)",
        100.0 * operator_cpu / steady_at.as_secs_f64()
    );
    println!("  writes in a steady minute: {quiet} (plus {leases} lease renewals)");
    operator.stop().await;
}
