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

/// Failures drawn at random (seeded) for a share of requests.
#[derive(Clone, Debug)]
pub struct Chaos {
    pub seed: u64,
    /// 429 with `Retry-After: 1`.
    pub share_429: f64,
    pub share_500: f64,
    /// No answer for `hang` (longer than the notifier's timeout), then 504.
    pub share_timeout: f64,
    pub hang: std::time::Duration,
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
    failures: Arc<Mutex<VecDeque<Failure>>>,
    /// The `X-Jobmatch-Notice-Id` of each accepted message.
    notice_ids: Arc<Mutex<Vec<String>>>,
    chaos: Arc<Mutex<Option<(Chaos, u64)>>>,
    faults: Arc<Mutex<Vec<&'static str>>>,
}

impl Shared {
    /// Which random fault (if any) this request gets.
    fn draw(&self) -> Option<(&'static str, std::time::Duration)> {
        let mut chaos = self.chaos.lock().ok()?;
        let (c, state) = chaos.as_mut()?;
        // xorshift64*: enough randomness for a test, and reproducible from the seed.
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let roll = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        let fault = if roll < c.share_429 {
            "429"
        } else if roll < c.share_429 + c.share_500 {
            "500"
        } else if roll < c.share_429 + c.share_500 + c.share_timeout {
            "timeout"
        } else {
            return None;
        };
        Some((fault, c.hang))
    }
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

    /// Fails a seeded share of the requests from now on.
    pub fn chaos(&self, chaos: Chaos) {
        if let Ok(mut c) = self.shared.chaos.lock() {
            let seed = chaos.seed.max(1);
            *c = Some((chaos, seed));
        }
    }

    /// The random faults injected so far (`429`, `500`, `timeout`).
    pub fn faults(&self) -> Vec<&'static str> {
        self.shared
            .faults
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// The notice id header of every accepted message, in order.
    pub fn notice_ids(&self) -> Vec<String> {
        self.shared
            .notice_ids
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
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
    headers: axum::http::HeaderMap,
    body: axum::Json<serde_json::Value>,
) -> Response {
    if let Ok(mut a) = shared.attempts.lock() {
        a.push(Instant::now());
    }
    if let Some((fault, hang)) = shared.draw() {
        if let Ok(mut f) = shared.faults.lock() {
            f.push(fault);
        }
        let response = match fault {
            "429" => {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, "rate_limited").into_response();
                r.headers_mut().insert(
                    HeaderName::from_static("retry-after"),
                    axum::http::HeaderValue::from_static("1"),
                );
                r
            }
            "500" => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
            _ => {
                tokio::time::sleep(hang).await;
                (StatusCode::GATEWAY_TIMEOUT, "timeout").into_response()
            }
        };
        return response;
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
    let notice_id = headers
        .get("x-jobmatch-notice-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut ids) = shared.notice_ids.lock() {
        ids.push(notice_id);
    }
    if let Ok(mut r) = shared.received.lock() {
        r.push((channel, body.0));
    }
    "ok".into_response()
}
