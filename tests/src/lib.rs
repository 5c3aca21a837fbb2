//! Test harness for the end-to-end scenarios in `tests/`: real servers started as child
//! processes on random loopback ports, and loopback HTTP stand-ins for what this machine
//! cannot reach (job boards, Slack), serving data in the real services' shapes.
//!
//! Programs are found through the environment `scripts/test.sh` sets up:
//! `JOBMATCH_NATS_SERVER`, `JOBMATCH_SMTPD_PYTHON`, `JOBMATCH_MODEL_DIR`, and
//! `JOBMATCH_BIN` (default: `target/debug/jobmatch` of this workspace).

pub mod boards;
pub mod k8s;
pub mod k8s_node;
pub mod mail;
pub mod parity;
pub mod process;
pub mod quality;
pub mod slack;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// A path from the environment, or a clear failure naming the setup script.
pub fn env_path(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(v) => PathBuf::from(v),
        None => panic!(
            "{name} is not set: run the tests through scripts/test.sh, which installs and sets it"
        ),
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `count` until it reaches `target`. Fails when it has not grown for `stall` (work
/// lost or stuck: a redelivery after an ack wait still counts as progress), or after
/// `limit` in all. For waits whose length is the machine's speed, not a property of the
/// code: a loaded CI machine runs them slowly but never stalls them.
pub async fn wait_while_progressing<F, Fut>(
    what: &str,
    target: usize,
    stall: Duration,
    limit: Duration,
    mut count: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let started = Instant::now();
    let (mut last, mut last_change) = (count().await, Instant::now());
    while last < target {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = count().await;
        if now > last {
            (last, last_change) = (now, Instant::now());
        }
        assert!(
            last_change.elapsed() <= stall,
            "{what}: stuck at {last} of {target} for {stall:?}"
        );
        assert!(
            started.elapsed() <= limit,
            "{what}: {last} of {target} after {limit:?}"
        );
    }
}

/// Sum of a Prometheus metric's samples in `/metrics` text: every line naming exactly
/// `name` (optionally with its label set, e.g. `x_total{category="parse"}`), over all
/// label sets that follow.
pub fn metric_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A process's peak resident memory (`VmHWM`) in MiB; NaN when it cannot be read.
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Fixture files under `tests/fixtures`.
pub fn fixture(path: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(path)
}

pub mod scenario;

/// An HTTP app served on a random loopback port until the returned task is dropped or
/// aborted: its base URL, and the task.
pub async fn serve_loopback(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    serve_on("127.0.0.1", app).await
}

/// Like [`serve_loopback`], on `host` (an address of this machine).
pub async fn serve_on(host: &str, app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind((host, 0))
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}
