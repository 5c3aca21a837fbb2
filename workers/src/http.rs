//! The worker's HTTP server: `/health` (the process runs), `/ready` (every role it runs
//! has started, per role), `/metrics` (Prometheus text format), and the REST API
//! (`crate::api`) where the process runs the embedder.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::runtime::Readiness;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    api: Option<Router>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, readiness });
    let serves_api = api.is_some();
    if let Some(api) = api {
        app = app.merge(api);
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    if serves_api {
        tracing::info!(%addr, "serving /health, /ready, /metrics, the embedding API and /openapi.json");
    } else {
        tracing::info!(%addr, "serving /health, /ready, /metrics");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await?;
    Ok(())
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let roles = state
        .readiness
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let all = roles.values().all(|r| *r);
    let body = roles
        .iter()
        .map(|(role, ready)| format!("{role}: {}\n", if *ready { "ready" } else { "starting" }))
        .collect::<String>();
    (
        if all {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        body,
    )
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.metrics.registry()) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
