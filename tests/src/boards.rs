//! A loopback job board: Greenhouse's and Lever's public APIs serving fixture files, plus
//! boards that misbehave (malformed JSON, HTTP 500, no answer). Counts requests per path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::fixture;

#[derive(Clone, Default)]
struct Shared {
    greenhouse: Arc<HashMap<String, String>>,
    lever: Arc<HashMap<String, serde_json::Value>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

pub struct BoardServer {
    pub url: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl BoardServer {
    /// Serves Greenhouse board `acme` and Lever site `globex` from `tests/fixtures/boards`,
    /// and the misbehaving Greenhouse boards `broken-json` (truncated JSON), `error500`,
    /// `slow` (answers after 30 s) and `partial` (acme plus one malformed job).
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// Like [`BoardServer::start`], plus more Greenhouse boards: (token, response body).
    pub async fn start_with(extra_greenhouse: Vec<(String, String)>) -> Self {
        let read = |name: &str| {
            std::fs::read_to_string(fixture(&format!("boards/{name}"))).expect("board fixture")
        };
        let mut greenhouse: HashMap<String, String> = extra_greenhouse.into_iter().collect();
        greenhouse.insert("acme".to_owned(), read("greenhouse-acme.json"));
        let mut lever = HashMap::new();
        lever.insert(
            "globex".to_owned(),
            serde_json::from_str(&read("lever-globex.json")).expect("lever fixture is JSON"),
        );
        let shared = Shared {
            greenhouse: Arc::new(greenhouse),
            lever: Arc::new(lever),
            hits: Arc::default(),
        };
        let hits = shared.hits.clone();
        let app = Router::new()
            .route("/v1/boards/{token}/jobs", get(greenhouse_jobs))
            .route("/v0/postings/{site}", get(lever_postings))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), count))
            .with_state(shared);
        let (url, task) = crate::serve_loopback(app).await;
        Self {
            url,
            hits,
            _task: task,
        }
    }

    /// Requests received for a path (without query).
    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .map(|h| h.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

async fn count(
    State(s): State<Shared>,
    uri: Uri,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Ok(mut hits) = s.hits.lock() {
        *hits.entry(uri.path().to_owned()).or_default() += 1;
    }
    next.run(req).await
}

fn json(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn greenhouse_jobs(State(s): State<Shared>, Path(token): Path<String>) -> Response {
    match token.as_str() {
        "broken-json" => json(r#"{"jobs": [{"id": 1, "title": "Truncated"#.to_owned()),
        "error500" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        // The acme board with one job of the wrong shape appended.
        "partial" => {
            let mut board: serde_json::Value =
                serde_json::from_str(&s.greenhouse["acme"]).expect("fixture is JSON");
            if let Some(jobs) = board["jobs"].as_array_mut() {
                jobs.push(
                    serde_json::json!({"id": "not-a-number", "title": 7, "absolute_url": null}),
                );
            }
            json(board.to_string())
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            json(r#"{"jobs": []}"#.to_owned())
        }
        _ => match s.greenhouse.get(&token) {
            Some(body) => json(body.clone()),
            None => (
                StatusCode::NOT_FOUND,
                r#"{"status":404,"error":"Job board not found"}"#,
            )
                .into_response(),
        },
    }
}

async fn lever_postings(
    State(s): State<Shared>,
    Path(site): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(serde_json::Value::Array(all)) = s.lever.get(&site) else {
        return (
            StatusCode::NOT_FOUND,
            r#"{"ok":false,"error":"Document not found"}"#,
        )
            .into_response();
    };
    let skip = q.get("skip").and_then(|v| v.parse().ok()).unwrap_or(0usize);
    let limit = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let page: Vec<_> = all.iter().skip(skip).take(limit).cloned().collect();
    json(serde_json::Value::Array(page).to_string())
}
