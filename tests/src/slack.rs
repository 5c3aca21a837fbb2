//! A loopback Slack incoming-webhook receiver that records every message body.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// A failure to answer with instead of accepting a message.
#[derive(Clone, Debug)]
pub struct Failure {
    pub status: u16,
    pub retry_after: Option<u64>,
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
    failures: Arc<Mutex<VecDeque<Failure>>>,
}

pub struct SlackReceiver {
    pub url: String,
    shared: Shared,
    _task: tokio::task::JoinHandle<()>,
}

impl SlackReceiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// Listening on `host` (an address of this machine).
    pub async fn start_on(host: &str) -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route("/services/{a}/{b}/{c}", post(receive))
            .with_state(shared.clone());
        let (url, task) = crate::serve_on(host, app).await;
        Self {
            url,
            shared,
            _task: task,
        }
    }

    /// Answers the next requests with these failures, in order, before accepting again.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Failure>) {
        if let Ok(mut f) = self.shared.failures.lock() {
            f.extend(failures);
        }
    }

    /// When each request (accepted or not) arrived.
    pub fn attempts(&self) -> Vec<Instant> {
        self.shared
            .attempts
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// A webhook URL of this receiver.
    pub fn webhook(&self, channel: &str) -> String {
        format!("{}/services/T000/B000/{channel}", self.url)
    }

    /// (channel, body) of every message received.
    pub fn messages(&self) -> Vec<(String, serde_json::Value)> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

async fn receive(
    State(shared): State<Shared>,
    Path((_, _, channel)): Path<(String, String, String)>,
    body: axum::Json<serde_json::Value>,
) -> Response {
    if let Ok(mut a) = shared.attempts.lock() {
        a.push(Instant::now());
    }
    let failure = shared.failures.lock().ok().and_then(|mut f| f.pop_front());
    if let Some(failure) = failure {
        let status =
            StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, "rate_limited").into_response();
        if let Some(after) = failure.retry_after {
            response.headers_mut().insert(
                HeaderName::from_static("retry-after"),
                after
                    .to_string()
                    .parse()
                    .expect("a number is a header value"),
            );
        }
        return response;
    }
    if let Ok(mut r) = shared.received.lock() {
        r.push((channel, body.0));
    }
    "ok".into_response()
}
