//! Back-pressure under a burst: N postings (default 50,000) appear at once on 10 boards;
//! one process per role works through them against a real nats-server. Prints the time
//! and rate, each role's peak RSS, and the embedder's deepest queue against its bound,
//! showing that memory stays flat and the queue full rather than growing.
//!
//!     eval "$(scripts/setup.sh --env)"
//!     cargo build --bin jobmatch && cargo run -p jobmatch-e2e --bin bench-burst -- 50000

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use jobmatch_core::messages as m;
use jobmatch_e2e::boards::BoardServer;
use jobmatch_e2e::process::{JobmatchEnv, Nats, Proc, Smtp};

const BOARDS: usize = 10;
const QUEUE: usize = 256;

fn board(b: usize, per_board: usize) -> String {
    let jobs: Vec<serde_json::Value> = (0..per_board)
        .map(|i| {
            let n = b * per_board + i;
            serde_json::json!({
                "id": 5_000_000 + n,
                "title": format!("Platform Engineer {n}"),
                "absolute_url": format!("https://boards.greenhouse.io/burst{b}/jobs/{n}"),
                "location": {"name": "Remote"},
                "company_name": format!("Burst {b}"),
                "content": format!("&lt;p&gt;Operate Kubernetes clusters and write Go and Rust services, team {}.&lt;/p&gt;", n % 97),
            })
        })
        .collect();
    serde_json::json!({"jobs": jobs}).to_string()
}

async fn pending(js: &async_nats::jetstream::Context, spec: m::ConsumerSpec) -> Option<u64> {
    let s = js.get_stream(spec.stream).await.ok()?;
    let c = s.get_consumer::<PullConfig>(spec.name).await.ok()?;
    let info = c.cached_info();
    Some(info.num_pending + info.num_ack_pending as u64)
}

async fn queue_depth(client: &reqwest::Client, url: &str) -> Option<f64> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    Some(jobmatch_e2e::metric_sum(
        &text,
        "jobmatch_embed_queue_depth",
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    jobmatch_workers::tls::install_crypto_provider();
    let per_board = n.div_ceil(BOARDS);
    let nats = Nats::start().await;
    let smtp = Smtp::start().await;
    let boards = BoardServer::start_with(
        (0..BOARDS)
            .map(|b| (format!("burst{b}"), board(b, per_board)))
            .collect(),
    )
    .await;
    let dir = tempfile::tempdir()?;
    let mut config = String::new();
    for b in 0..BOARDS {
        config.push_str(&format!(
            "apiVersion: jobmatch.dev/v1alpha1\nkind: JobSource\nmetadata: {{name: burst{b}}}\nspec: {{board: {{kind: greenhouse, token: burst{b}}}, baseUrl: {}, interval: 1h}}\n---\n",
            boards.url
        ));
    }
    config.push_str("apiVersion: jobmatch.dev/v1alpha1\nkind: MatchSubscription\nmetadata: {name: ops}\nspec:\n  resume: {text: \"Platform engineer: Kubernetes, Go, Rust.\"}\n  criteria: {minScore: 0.5, mustHave: [team42]}\n  notify: {email: {to: ops@example.com}}\n");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config)?;
    let env = JobmatchEnv {
        nats_url: nats.url.clone(),
        smtp_url: Some(smtp.url.clone()),
        data_dir: dir.path().join("data"),
    };
    let metrics_port = jobmatch_e2e::free_port();
    let mut procs: Vec<(&str, Proc)> = Vec::new();
    let started = Instant::now();
    for role in ["embedder", "matcher", "notifier", "fetcher"] {
        let mut command = env.command(
            &[role, "-f", &path.display().to_string()],
            &dir.path().join(format!("{role}.log")),
        );
        command.env("JOBMATCH_LOG", "warn");
        if role == "embedder" {
            command
                .env("JOBMATCH_LISTEN", format!("127.0.0.1:{metrics_port}"))
                .env("JOBMATCH_EMBED_QUEUE", QUEUE.to_string());
        }
        procs.push((role, Proc::spawn(role, &mut command)));
    }
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await?);
    let client = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let mut peak: BTreeMap<&str, f64> = BTreeMap::new();
    let mut deepest = 0f64;
    let mut published = 0;
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (role, p) in &procs {
            if let Some(pid) = p.pid() {
                let e = peak.entry(role).or_default();
                *e = e.max(jobmatch_e2e::peak_rss_mib(pid));
            }
        }
        if let Some(depth) = queue_depth(&client, &metrics_url).await {
            deepest = deepest.max(depth);
        }
        if let Ok(mut s) = js.get_stream(m::JOBS_STREAM).await {
            published = s.info().await.map(|i| i.state.messages).unwrap_or(0);
        }
        let waiting = pending(&js, m::EMBEDDER_CONSUMER).await.unwrap_or(u64::MAX);
        let matching = pending(&js, m::MATCHER_CONSUMER).await.unwrap_or(u64::MAX);
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "[{:>4.0}s] published {published}, embedding queue {waiting}, matching {matching}, queue depth {deepest}",
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        if published as usize >= n && waiting == 0 && matching == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!("not done after an hour");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} postings through fetch, embed and match in {secs:.1} s ({:.0} postings/s)",
        n as f64 / secs
    );
    for (role, mib) in &peak {
        println!("peak RSS {role:<9} {mib:>6.0} MiB");
    }
    println!("embedder queue: deepest {deepest:.0} texts of a bound of {QUEUE}");
    for (_, p) in procs {
        let _ = p.stop().await;
    }
    Ok(())
}
