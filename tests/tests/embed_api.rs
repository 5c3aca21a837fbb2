//! The embedding API of a real `jobmatch embedder` process (real nats-server, real
//! model), over HTTP: the shapes of `/api/embed`, `/api/batch-embed` and TEI's `/embed`,
//! parity of vectors however requests are batched together, clear 4xx errors, 429 with
//! `Retry-After` under a flood, `/metrics`, `/ready` after the warm-up, `/openapi.json`.

use std::path::Path;
use std::time::Duration;

use jobmatch_e2e::parity::{self, cosine};
use jobmatch_e2e::process::{JobmatchEnv, Nats, Proc};
use jobmatch_e2e::{free_port, metric_sum, wait_for};
use serde_json::{Value, json};

struct Embedder {
    base: String,
    client: reqwest::Client,
    _proc: Proc,
    _nats: Nats,
    _dir: tempfile::TempDir,
}

impl Embedder {
    /// `jobmatch embedder` with `env` added, once `/ready` answers 200.
    async fn start(env: &[(&str, &str)]) -> Self {
        let nats = Nats::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let jobmatch = JobmatchEnv {
            nats_url: nats.url.clone(),
            smtp_url: None,
            data_dir: dir.path().join("data"),
        };
        let log = dir.path().join("embedder.log");
        let mut command = jobmatch.command(&["embedder", "--listen", &listen], &log);
        for (k, v) in env {
            command.env(k, v);
        }
        let proc = Proc::spawn("jobmatch embedder", &mut command);
        jobmatch_workers::tls::install_crypto_provider();
        let client = reqwest::Client::new();
        let base = format!("http://{listen}");
        let ready_url = format!("{base}/ready");
        let log_path = log.clone();
        wait_for("the embedder to be ready", Duration::from_secs(60), || {
            let (client, url, log) = (client.clone(), ready_url.clone(), log_path.clone());
            async move {
                let ok = matches!(client.get(&url).send().await, Ok(r) if r.status() == 200);
                if !ok && log_text(&log).contains("role failed") {
                    panic!("embedder failed: {}", log_text(&log));
                }
                ok.then_some(())
            }
        })
        .await;
        Self {
            base,
            client,
            _proc: proc,
            _nats: nats,
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.expect("a JSON body");
        (status, headers, body)
    }

    async fn post_raw(&self, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body.to_owned());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON error body"))
    }

    async fn get_text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `(text, vector)` of the parity fixture, but for its empty text, which the API refuses.
fn references() -> Vec<(String, Vec<f32>)> {
    parity::references()
        .into_iter()
        .filter(|r| !r.text.trim().is_empty())
        .map(|r| (r.text, r.vector))
        .collect()
}

fn vector(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).expect("a vector of numbers")
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_answer_in_their_shapes_with_the_reference_vectors() {
    let server = Embedder::start(&[
        ("JOBMATCH_EMBED_PRECISION", "f32"),
        ("JOBMATCH_EMBED_MAX_INPUTS", "16"),
    ])
    .await;
    let refs = references();
    let dimension = refs[0].1.len();

    // Readiness came after the warm-up batch went through the queue.
    let metrics = server.get_text("/metrics").await;
    assert!(
        metric_sum(&metrics, "jobmatch_texts_embedded_total") >= 4.0,
        "ready before the warm-up: {metrics}"
    );

    // One text.
    let (status, headers, body) = server.post("/api/embed", json!({"text": refs[1].0})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dimension"], dimension);
    assert_eq!(body["truncated"], false);
    assert!(body["tokens"].as_u64().unwrap_or(0) > 2, "{body}");
    assert_eq!(headers["x-truncated-inputs"], "0");
    assert!(cosine(&vector(&body["embedding"]), &refs[1].1) >= 0.9999);

    // Many texts, over-limit ones among them: counted, and reported.
    let texts: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
    let (status, headers, body) = server
        .post("/api/batch-embed", json!({"texts": texts}))
        .await;
    assert_eq!(status, 200, "{body}");
    let embeddings = body["embeddings"].as_array().expect("embeddings");
    assert_eq!(embeddings.len(), refs.len());
    for ((text, want), got) in refs.iter().zip(embeddings) {
        let c = cosine(&vector(got), want);
        assert!(c >= 0.9999, "batch-embed: cosine {c} for {text:?}");
    }
    assert_eq!(
        body["truncated"], 2,
        "two fixture texts are over 256 tokens"
    );
    assert_eq!(headers["x-truncated-inputs"], "2");

    // TEI: a single string or a list; always a list of vectors.
    let (status, _, body) = server.post("/embed", json!({"inputs": refs[2].0})).await;
    assert_eq!(status, 200, "{body}");
    let vectors = body.as_array().expect("a list of vectors");
    assert_eq!(vectors.len(), 1);
    assert!(cosine(&vector(&vectors[0]), &refs[2].1) >= 0.9999);
    let (status, _, body) = server
        .post(
            "/embed",
            json!({"inputs": [refs[3].0, refs[4].0], "truncate": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(2));

    // Every fixture text as its own request, all at once: the queue batches them
    // together in whatever mix, and no vector changes.
    let requests = refs.iter().map(|(text, _)| {
        let (client, url) = (server.client.clone(), format!("{}/api/embed", server.base));
        let text = text.clone();
        async move {
            let response = client
                .post(url)
                .json(&json!({"text": text}))
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("JSON")
        }
    });
    let answers = futures::future::join_all(requests).await;
    for ((text, want), body) in refs.iter().zip(&answers) {
        let c = cosine(&vector(&body["embedding"]), want);
        assert!(c >= 0.9999, "concurrent: cosine {c} for {text:?}");
    }

    let metrics = server.get_text("/metrics").await;
    assert!(
        metric_sum(&metrics, "jobmatch_embed_batch_texts_count") >= 1.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "jobmatch_embed_batch_tokens_sum") > 1000.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "jobmatch_embed_tokens_total") > 1000.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "jobmatch_embed_tokens_per_second") > 0.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "jobmatch_embed_truncations_total") >= 4.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("jobmatch_embed_queue_depth 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jobmatch_embed_overloaded_total 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors() {
    let server = Embedder::start(&[("JOBMATCH_EMBED_MAX_INPUTS", "16")]).await;
    let long = "word ".repeat(400);

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/api/batch-embed",
            json!({"texts": []}),
            422,
            "no texts to embed",
        ),
        (
            "/api/batch-embed",
            json!({"texts": ["fine", "  "]}),
            422,
            "texts[1]: empty",
        ),
        ("/api/embed", json!({"text": ""}), 422, "text: empty"),
        (
            "/api/embed",
            json!({"text": 42}),
            422,
            "text: invalid type: integer `42`, expected a string",
        ),
        (
            "/api/batch-embed",
            json!({"texts": ["a", 1]}),
            422,
            "texts[1]: invalid type: integer `1`",
        ),
        (
            "/api/embed",
            json!({"txt": "x"}),
            422,
            "missing field `text`",
        ),
        (
            "/api/batch-embed",
            json!({"texts": vec!["x"; 17]}),
            413,
            "17 texts in one request; at most 16 are accepted",
        ),
        ("/embed", json!({"inputs": []}), 422, "no texts to embed"),
        ("/embed", json!({"inputs": {"a": 1}}), 422, "inputs"),
        (
            "/embed",
            json!({"inputs": [long], "truncate": false}),
            422,
            "texts[0]: longer than the model's limit of 256 tokens",
        ),
        (
            "/embed",
            json!({"inputs": "x", "normalize": false}),
            422,
            "normalize: false is not supported",
        ),
    ];
    for (path, body, status, message) in cases {
        let (got, _, answer) = server.post(path, body.clone()).await;
        assert_eq!(got, status, "{path} {body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{path} {body}: {error:?} should say {message:?}"
        );
        assert_eq!(answer["error_type"], "Validation", "{answer}");
    }

    let (status, body) = server
        .post_raw(
            "/api/embed",
            Some("application/json"),
            "{\"text\": \"unterminated",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("EOF"),
        "{body}"
    );
    let (status, body) = server
        .post_raw("/api/embed", None, "{\"text\": \"x\"}")
        .await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Content-Type"),
        "{body}"
    );

    // Nothing was embedded for the refused requests; the server still works.
    let (status, _, body) = server
        .post("/api/embed", json!({"text": "still here"}))
        .await;
    assert_eq!(status, 200, "{body}");

    let doc: Value =
        serde_json::from_str(&server.get_text("/openapi.json").await).expect("OpenAPI JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    for path in [
        "/api/embed",
        "/api/batch-embed",
        "/embed",
        "/metrics",
        "/ready",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented: {doc}");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_is_answered_busy_and_the_queue_stays_bounded() {
    // A queue of 8 texts, batches of 4: a flood of 40 requests of 4 long texts each.
    let server = Embedder::start(&[
        ("JOBMATCH_EMBED_QUEUE", "8"),
        ("JOBMATCH_EMBED_MAX_BATCH_TEXTS", "4"),
    ])
    .await;
    let text = "Senior Rust engineer for distributed systems, Kubernetes and NATS. ".repeat(20);
    let requests = (0..40).map(|_| {
        let (client, url) = (
            server.client.clone(),
            format!("{}/api/batch-embed", server.base),
        );
        let texts = vec![text.clone(); 4];
        async move {
            let response = client
                .post(url)
                .json(&json!({"texts": texts}))
                .send()
                .await
                .expect("POST");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (
                status,
                retry_after,
                response.json::<Value>().await.expect("JSON"),
            )
        }
    });
    let answers = futures::future::join_all(requests).await;
    let ok = answers.iter().filter(|(s, _, _)| *s == 200).count();
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    eprintln!("flood of 40 requests: {ok} served, {} busy", busy.len());
    assert_eq!(ok + busy.len(), 40, "only 200 or 429: {answers:?}");
    assert!(ok >= 2, "some requests are served: {ok}");
    assert!(!busy.is_empty(), "a full queue answers busy");
    for (_, retry_after, body) in &busy {
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["error_type"], "Overloaded");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("at most 8"),
            "{body}"
        );
    }
    for (status, _, body) in &answers {
        if *status == 200 {
            assert_eq!(body["embeddings"].as_array().map(Vec::len), Some(4));
        }
    }

    let metrics = server.get_text("/metrics").await;
    assert_eq!(
        metric_sum(&metrics, "jobmatch_embed_overloaded_total"),
        busy.len() as f64,
        "{metrics}"
    );
    // Batches never exceeded 4 texts: every observation falls in the buckets up to 4.
    let over_four: f64 = metric_sum(&metrics, "jobmatch_embed_batch_texts_count")
        - metrics
            .lines()
            .find(|l| l.starts_with("jobmatch_embed_batch_texts_bucket{le=\"4.0\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .expect("a le=4 bucket");
    assert_eq!(over_four, 0.0, "{metrics}");
    assert!(
        metrics.contains("jobmatch_embed_queue_depth 0"),
        "{metrics}"
    );

    // Once the flood is over the server answers normally.
    let (status, _, body) = server.post("/api/embed", json!({"text": "after"})).await;
    assert_eq!(status, 200, "{body}");
}
