//! A loopback Slack incoming-webhook receiver that records every message body.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;

type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

pub struct SlackReceiver {
    pub url: String,
    received: Received,
    _task: tokio::task::JoinHandle<()>,
}

impl SlackReceiver {
    pub async fn start() -> Self {
        let received: Received = Arc::default();
        let app = Router::new()
            .route("/services/{a}/{b}/{c}", post(receive))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind slack receiver");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}"),
            received,
            _task: task,
        }
    }

    /// A webhook URL of this receiver.
    pub fn webhook(&self, channel: &str) -> String {
        format!("{}/services/T000/B000/{channel}", self.url)
    }

    /// (channel, body) of every message received.
    pub fn messages(&self) -> Vec<(String, serde_json::Value)> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn receive(
    State(received): State<Received>,
    Path((_, _, channel)): Path<(String, String, String)>,
    body: axum::Json<serde_json::Value>,
) -> &'static str {
    if let Ok(mut r) = received.lock() {
        r.push((channel, body.0));
    }
    "ok"
}
