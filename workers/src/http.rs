//! The worker's HTTP server: `/health` (the process runs), `/ready` (every role it runs
//! has started, per role), `/metrics` (Prometheus text format), and the REST API
//! (`crate::api`) where the process runs the embedder.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::metrics::Metrics;
use crate::runtime::Readiness;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// Serves the operations endpoints at once, and every other path from `api` once it is
/// set; until then 503 where `serves_api` (the API is starting), else 404.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    api: Arc<OnceLock<Router>>,
    serves_api: bool,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, readiness })
        .fallback_service(tower::service_fn(move |request: Request| {
            let api = api.get().cloned();
            async move {
                match api {
                    Some(api) => api.oneshot(request).await,
                    None if serves_api => Ok(crate::api::ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Unavailable",
                        "the API is starting; retry shortly",
                    )
                    .into_response()),
                    None => Ok(crate::api::ApiError::new(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("no endpoint {} here", request.uri().path()),
                    )
                    .into_response()),
                }
            }
        }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /health, /ready, /metrics and the API");
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
