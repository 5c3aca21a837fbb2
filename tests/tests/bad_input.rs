//! Bad input gets a clear, named error and loses nothing: failing boards, a malformed
//! posting, an unknown kind and an invalid subscription are reported, and every valid
//! source and subscription keeps working.

use std::collections::BTreeSet;
use std::time::Duration;

use jobmatch_core::ids::kv_key;
use jobmatch_e2e::process::{JobmatchEnv, Nats, Smtp};
use jobmatch_e2e::{boards::BoardServer, free_port, mail::read_maildir, metric_sum, wait_for};

const CONFIG: &str = r#"
apiVersion: jobmatch.dev/v1alpha1
kind: JobSource
metadata: {name: partial}
spec: {board: {kind: greenhouse, token: partial}, baseUrl: ${BOARD}, interval: 2s}
---
apiVersion: jobmatch.dev/v1alpha1
kind: JobSource
metadata: {name: broken}
spec: {board: {kind: greenhouse, token: broken-json}, baseUrl: ${BOARD}, interval: 2s}
---
apiVersion: jobmatch.dev/v1alpha1
kind: JobSource
metadata: {name: failing}
spec: {board: {kind: greenhouse, token: error500}, baseUrl: ${BOARD}, interval: 2s}
---
apiVersion: jobmatch.dev/v1alpha1
kind: JobSource
metadata: {name: slow}
spec: {board: {kind: greenhouse, token: slow}, baseUrl: ${BOARD}, interval: 2s}
---
apiVersion: jobmatch.dev/v1alpha1
kind: JobSorce
metadata: {name: typo}
spec: {board: {kind: greenhouse, token: acme}}
---
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: broken-email}
spec:
  resume: {text: "Backend engineer, Rust and Kubernetes"}
  notify: {email: {to: "not an address"}}
---
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: ada}
spec:
  resume:
    text: >-
      Backend engineer with 6 years of Rust and Kubernetes. I build event-driven
      services with Tokio, PostgreSQL and NATS, design APIs, and run what I build in
      production with Prometheus and on-call.
  criteria: {remote: allowed, locations: [Berlin], minScore: 0.465, mustNotHave: [php]}
  notify: {email: {to: ada@example.com}}
"#;

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_boards_and_documents_are_named_errors_and_the_rest_works() {
    let nats = Nats::start().await;
    let smtp = Smtp::start().await;
    let boards = BoardServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, CONFIG.replace("${BOARD}", &boards.url)).expect("write config");
    let env = JobmatchEnv {
        nats_url: nats.url.clone(),
        smtp_url: Some(smtp.url.clone()),
        data_dir: dir.path().join("data"),
    };
    let log = dir.path().join("all.log");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut proc = env.spawn(
        &[
            "all",
            "--listen",
            &listen,
            "-f",
            &config.display().to_string(),
        ],
        &log,
    );

    // The valid subscription gets exactly its notices from the valid (partial) board.
    let want: BTreeSet<String> = ["4012001", "4012002", "4012003", "4012009"]
        .iter()
        .map(|id| format!("ada.{}", kv_key(&format!("greenhouse:partial:{id}"))))
        .collect();
    let count = want.len();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(
        "ada's notices from the partial board",
        Duration::from_secs(180),
        || {
            if let Some(status) = proc.try_exit() {
                panic!("jobmatch exited ({status})\n{}", read_log());
            }
            let n = read_maildir(&smtp.maildir).len();
            async move { (n >= count).then_some(()) }
        },
    )
    .await;

    // Every failure is counted by category, and the slow board has timed out at least once.
    let metrics = wait_for(
        "every failure to be counted",
        Duration::from_secs(60),
        || async move {
            let m = http_get(port, "/metrics").await;
            let counted = ["parse", "http_status", "timeout"].iter().all(|c| {
                metric_sum(
                    &m,
                    &format!("jobmatch_poll_errors_total{{category=\"{c}\"}}"),
                ) >= 1.0
            });
            (counted && metric_sum(&m, "jobmatch_postings_malformed_total") >= 1.0).then_some(m)
        },
    )
    .await;
    assert!(
        metric_sum(&metrics, "jobmatch_notices_sent_total") >= 4.0,
        "{metrics}"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = read_maildir(&smtp.maildir);
    let got: BTreeSet<String> = mails
        .iter()
        .map(|m| m.header("x-jobmatch-notice").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        mails.len(),
        4,
        "ada gets exactly her four notices, once each: {got:?}"
    );
    assert_eq!(got, want);
    assert!(mails.iter().all(|m| {
        m.header("to")
            .is_some_and(|t| t.contains("ada@example.com"))
    }));

    let text = read_log();
    for expected in [
        "unknown kind \"JobSorce\"",
        "MatchSubscription \"broken-email\": spec.notify.email.to: \"not an address\" is not an email address",
        "/v1/boards/broken-json/jobs?content=true: malformed response: jobs[0].title: EOF while parsing a string at line 1 column 39",
        "/v1/boards/error500/jobs?content=true: HTTP 500",
        "/v1/boards/slow/jobs?content=true: timed out after 2s",
        "malformed posting skipped",
    ] {
        assert!(text.contains(expected), "log lacks {expected:?}\n{text}");
    }
    assert!(proc.try_exit().is_none(), "jobmatch must keep running");
    let ready = http_get(port, "/ready").await;
    assert!(
        ready.starts_with("HTTP/1.0 200") || ready.starts_with("HTTP/1.1 200"),
        "{ready}"
    );
    assert!(ready.contains("notifier: ready"), "{ready}");
    let status = proc.stop().await;
    assert!(
        status.is_some_and(|s| s.success()),
        "clean stop: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_prints_postings_and_names_each_failure() {
    let boards = BoardServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, CONFIG.replace("${BOARD}", &boards.url)).expect("write config");
    let env = JobmatchEnv {
        nats_url: "nats://127.0.0.1:1".into(),
        smtp_url: None,
        data_dir: dir.path().join("data"),
    };
    let output = env
        .command(
            &["fetch", "-f", &config.display().to_string()],
            &dir.path().join("fetch.log"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .expect("jobmatch fetch");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "fetch exits non-zero when a source fails"
    );
    let postings: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(postings.len(), 15, "the partial board's 15 good postings");
    assert!(postings.iter().all(|p| {
        p["source"] == "partial"
            && p["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("greenhouse:partial:"))
    }));
    for expected in [
        "partial: skipped jobs[15].absolute_url: invalid type: null, expected a string",
        "partial: 15 new, 0 updated, 0 unchanged, 0 closed, 0 duplicates, 0 reposts, 1 errors, 0 filtered out (HTTP 200, 1 request)",
        "broken: error [parse]: ",
        "failing: error [http_status] (HTTP 500): ",
        "slow: error [timeout]: ",
        "unknown kind \"JobSorce\"",
    ] {
        assert!(
            stderr.contains(expected),
            "stderr lacks {expected:?}\n{stderr}"
        );
    }
}
