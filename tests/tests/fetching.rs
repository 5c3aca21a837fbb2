//! The fetcher on the wire, with a real nats-server: two fetcher processes share fifty
//! sources and poll each exactly once per interval; a board answering 304 produces no
//! messages; bad boards end up as counted, named errors on their source's status.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::TryStreamExt;
use jobmatch_core::messages::{
    CONFIG_BUCKET, JOBS_STREAM, REPORTS_BUCKET, Report, jobs_subject, source_key,
};
use jobmatch_e2e::boards::BoardServer;
use jobmatch_e2e::process::{JobmatchEnv, Nats, Proc};
use jobmatch_e2e::{free_port, wait_for};

const SOURCES: usize = 50;
const INTERVAL: Duration = Duration::from_secs(3);

fn greenhouse(name: &str, token: &str, base: &str, interval: &str) -> String {
    format!(
        "---\napiVersion: jobmatch.dev/v1alpha1\nkind: JobSource\nmetadata: {{name: {name}}}\nspec: {{board: {{kind: greenhouse, token: {token}}}, baseUrl: {base}, interval: {interval}}}\n"
    )
}

fn tiny_board(n: usize) -> String {
    serde_json::json!({"jobs": [{
        "id": 9_000_000 + n, "title": format!("Engineer {n}"), "company_name": format!("Company {n}"),
        "absolute_url": format!("https://boards.greenhouse.io/s{n}/jobs/1"),
        "location": {"name": "Remote"}, "content": "&lt;p&gt;Build things.&lt;/p&gt;"
    }]})
    .to_string()
}

async fn polls_total(port: u16) -> f64 {
    let Ok(body) = reqwest_get(port, "/metrics").await else {
        return 0.0;
    };
    jobmatch_e2e::metric_sum(&body, "jobmatch_polls_total")
}

async fn reqwest_get(port: u16, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

async fn report(kv: &jetstream::kv::Store, source: &str) -> Report {
    kv.get(source_key(source))
        .await
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn fetchers_share_sources_poll_politely_and_report_bad_boards() {
    let nats = Nats::start().await;
    let boards = BoardServer::start_with(
        (0..SOURCES)
            .map(|n| (format!("s{n:02}"), tiny_board(n)))
            .collect(),
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let base = &boards.url;
    let mut config = String::new();
    for n in 0..SOURCES {
        config.push_str(&greenhouse(
            &format!("s{n:02}"),
            &format!("s{n:02}"),
            base,
            "3s",
        ));
    }
    config.push_str(&greenhouse("etag", "etag", base, "1s"));
    for (name, token) in [
        ("truncated", "broken-json"),
        ("wrongtypes", "wrong-types"),
        ("utf8", "invalid-utf8"),
        ("huge", "huge"),
        ("failing", "error500"),
        ("partial", "partial"),
    ] {
        config.push_str(&greenhouse(name, token, base, "2s"));
    }
    config.push_str(&format!(
        "---\napiVersion: jobmatch.dev/v1alpha1\nkind: JobSource\nmetadata: {{name: deep}}\nspec: {{board: {{kind: careerpage, url: \"{base}/careers/deep\"}}, interval: 2s}}\n"
    ));
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, config).expect("write config");
    let env = JobmatchEnv {
        nats_url: nats.url.clone(),
        smtp_url: None,
        data_dir: dir.path().join("data"),
    };
    let ports = [free_port(), free_port()];
    let mut fetchers: Vec<Proc> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let listen = format!("127.0.0.1:{port}");
            let args = [
                "fetcher",
                "--listen",
                &listen,
                "-f",
                &path.display().to_string(),
            ];
            let mut command = env.command(&args, &dir.path().join(format!("fetcher-{i}.log")));
            command
                .env("JOBMATCH_HOST_RATE", "200")
                .env("JOBMATCH_HOST_BURST", "50");
            Proc::spawn(&format!("fetcher {i}"), &mut command)
        })
        .collect();

    // Watch four intervals of polling after every source has been polled once.
    let started = wait_for("every source polled once", Duration::from_secs(60), || {
        let all = (0..SOURCES).all(|n| boards.hits(&format!("/v1/boards/s{n:02}/jobs")) > 0);
        async move { all.then(Instant::now) }
    })
    .await;
    tokio::time::sleep(INTERVAL * 4).await;
    let watched = started.elapsed();

    for n in 0..SOURCES {
        let times: Vec<Instant> = boards
            .requests(&format!("/v1/boards/s{n:02}/jobs"))
            .iter()
            .map(|r| r.at)
            .collect();
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= INTERVAL.mul_f32(0.9),
                "s{n:02} polled twice within one interval ({gap:?} apart): {times:?}"
            );
        }
        let in_window = times.iter().filter(|t| **t >= started).count();
        let expected = watched.as_secs_f64() / INTERVAL.as_secs_f64();
        assert!(
            in_window as f64 >= expected - 1.5,
            "s{n:02} polled {in_window} times in {watched:?}, expected about {expected:.1}"
        );
    }
    for port in ports {
        assert!(
            polls_total(port).await > 0.0,
            "both replicas poll (port {port})"
        );
    }

    // The ETag board: one publish per posting however often it is polled.
    let requests = boards.requests("/v1/boards/etag/jobs");
    assert!(requests.len() >= 4, "{requests:?}");
    assert!(
        requests[1..].iter().all(|r| r.if_none_match.is_some()),
        "{requests:?}"
    );
    let client = async_nats::connect(&nats.url).await.expect("connect");
    let js = jetstream::new(client);
    let stream = js.get_stream(JOBS_STREAM).await.expect("JOBS stream");
    let counts: Vec<(String, usize)> = stream
        .info_with_subjects(jobs_subject("*"))
        .await
        .expect("subjects")
        .try_collect()
        .await
        .expect("subjects");
    // The partial board serves the same 15 jobs: each is published once, by whichever
    // of the two sources listed it first; the other source's copy is a duplicate.
    let acme: usize = counts
        .iter()
        .filter(|(subject, _)| {
            *subject == jobs_subject("etag") || *subject == jobs_subject("partial")
        })
        .map(|(_, n)| n)
        .sum();
    assert_eq!(acme, 15, "a 304 publishes nothing: {counts:?}");

    // Every bad board: a named error on its status; the partial one counts its skip.
    let kv = js
        .get_key_value(REPORTS_BUCKET)
        .await
        .expect("reports bucket");
    let want = [
        ("truncated", "EOF while parsing a string at line 1 column"),
        (
            "wrongtypes",
            "jobs: invalid type: string \"all of them\", expected a sequence",
        ),
        ("utf8", "invalid unicode code point at line 1 column"),
        ("huge", "response larger than 33554432 bytes"),
        ("failing", "HTTP 500"),
    ];
    let reports = wait_for("status of every bad board", Duration::from_secs(30), || {
        let kv = kv.clone();
        async move {
            let mut reports = Vec::new();
            for (name, _) in want {
                reports.push(report(&kv, name).await);
            }
            let partial = report(&kv, "partial").await;
            let etag = report(&kv, "etag").await;
            let deep = report(&kv, "deep").await;
            let done = reports.iter().all(|r| r.last_error.is_some())
                && partial.malformed_total.is_some()
                && etag.last_http_status == Some(304)
                && deep.postings_seen.is_some();
            done.then_some((reports, partial, deep))
        }
    })
    .await;
    for ((name, message), report) in want.iter().zip(&reports.0) {
        let error = report.last_error.as_deref().unwrap_or_default();
        assert!(error.contains(message), "{name}: {error}");
    }
    assert_eq!(reports.0[4].last_http_status, Some(500));
    let partial = reports.1;
    // Its postings are the etag board's too: duplicates across boards, or new when first.
    assert_eq!(
        partial
            .last_counts
            .map(|c| (c.malformed, c.new + c.unchanged + c.duplicates)),
        Some((1, 15)),
        "{partial:?}"
    );
    assert_eq!(partial.last_error, None);
    assert_eq!(reports.2.postings_seen, Some(1), "deeply nested HTML read");

    // A posting gone from its board is published once more, closed.
    boards.set_greenhouse("s00", r#"{"jobs": []}"#.to_owned());
    let closed = wait_for(
        "the vanished posting published closed",
        Duration::from_secs(30),
        || {
            let stream = stream.clone();
            async move {
                let last = stream
                    .get_last_raw_message_by_subject(&jobs_subject("s00"))
                    .await
                    .ok()?;
                let posting: jobmatch_core::Posting = serde_json::from_slice(&last.payload).ok()?;
                posting.closed.then_some(posting)
            }
        },
    )
    .await;
    assert_eq!(closed.id, "greenhouse:s00:9000000");

    // A source deleted: its postings close too.
    let config = js
        .get_key_value(CONFIG_BUCKET)
        .await
        .expect("config bucket");
    config.delete("source.s01").await.expect("delete source");
    let closed = wait_for(
        "the removed source's posting closed",
        Duration::from_secs(30),
        || {
            let stream = stream.clone();
            async move {
                let last = stream
                    .get_last_raw_message_by_subject(&jobs_subject("s01"))
                    .await
                    .ok()?;
                let posting: jobmatch_core::Posting = serde_json::from_slice(&last.payload).ok()?;
                posting.closed.then_some(posting)
            }
        },
    )
    .await;
    assert_eq!(closed.id, "greenhouse:s01:9000001");

    for fetcher in fetchers.drain(..) {
        let status = fetcher.stop().await;
        assert!(
            status.is_some_and(|s| s.success()),
            "clean stop: {status:?}"
        );
    }
}
