//! The REST API. Two routers share the endpoints' code:
//!
//! - [`gateway`]: the `api` role, the one entry point: embedding (through the embedders
//!   over NATS), jobs (`/job/*`), the candidate pool (`/resume/*`) and `/fetch`. It is
//!   stateless; the other roles answer it over NATS request–reply (`crate::rpc`).
//! - [`embedder`]: the embedding endpoints on an embedder's own listener, through its
//!   queue directly.
//!
//! Both carry `GET /openapi.json`, bearer-token access ([`auth`]) and the same limits:
//! body size, texts per request, text length, a per-request timeout and a concurrency
//! limit that sheds load with 503 and `Retry-After` (tower layers). Errors are JSON in
//! TEI's shape, `{"error": "...", "error_type": "..."}`, the message naming the field
//! (`texts[3]: empty`).

pub mod auth;
pub mod backends;
pub mod embed;
pub mod fetch;
pub mod jobs;
pub mod resumes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jobmatch_core::rpc::{ErrorKind, RpcError};
use serde::Serialize;
use tower::ServiceBuilder;
use utoipa::{OpenApi, ToSchema};

use crate::metrics::Metrics;

pub use auth::Access;
pub use backends::{Embedding, Gateway};

/// Seconds a client is asked to wait after a 429 or 503.
const RETRY_AFTER_SECS: u32 = 1;

/// What every request is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body (413 beyond).
    pub max_body_bytes: usize,
    /// Most texts in one embedding request (413 beyond).
    pub max_inputs: usize,
    /// Longest text of any field, in bytes (422 beyond).
    pub max_text_bytes: usize,
    /// Most requests being served at once; more are answered 503 at once.
    pub max_concurrent: usize,
    /// The longest one request may take (504 beyond).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_inputs: 256,
            max_text_bytes: 64 << 10,
            max_concurrent: 128,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What the embedding endpoints share.
#[derive(Clone)]
pub struct ApiState {
    pub embedding: Embedding,
    pub limits: Limits,
}

/// The embedding endpoints on an embedder's listener.
pub fn embedder(state: ApiState, access: Access, metrics: Arc<Metrics>) -> Router {
    let limits = state.limits;
    let reads = embed::routes().with_state(state);
    protect(None, reads, access, limits, metrics)
}

/// Every endpoint: the `api` role.
pub fn gateway(gateway: Gateway, access: Access, metrics: Arc<Metrics>) -> Router {
    let limits = gateway.api.limits;
    let reads = embed::routes()
        .with_state(gateway.api.clone())
        .merge(jobs::read_routes().with_state(gateway.clone()))
        .merge(resumes::read_routes().with_state(gateway.clone()));
    let writes = jobs::write_routes()
        .with_state(gateway.clone())
        .merge(resumes::write_routes().with_state(gateway.clone()))
        .merge(fetch::routes().with_state(gateway));
    protect(Some(writes), reads, access, limits, metrics)
}

/// Tokens on reads and writes, the limits on both, metrics around everything, and the
/// OpenAPI document (public).
fn protect(
    writes: Option<Router>,
    reads: Router,
    access: Access,
    limits: Limits,
    metrics: Arc<Metrics>,
) -> Router {
    let mut routes = reads.route_layer(axum::middleware::from_fn_with_state(
        access.clone(),
        auth::require_read,
    ));
    if let Some(writes) = writes {
        routes = routes.merge(writes.route_layer(axum::middleware::from_fn_with_state(
            access,
            auth::require_write,
        )));
    }
    routes
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded_or_late))
                .load_shed()
                .concurrency_limit(limits.max_concurrent.max(1))
                .timeout(limits.timeout),
        )
        .route_layer(axum::middleware::from_fn_with_state(metrics, measure))
        .route("/openapi.json", get(openapi))
}

/// Counts each answer by route and status, and times it.
async fn measure(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.api.record(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The tower layers' refusals as answers: shed (503) or too slow (504).
async fn overloaded_or_late(error: tower::BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Overloaded",
            "the server is serving as many requests as it may; retry shortly",
        )
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            "the request took longer than the server's limit",
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Backend",
            format!("unhandled: {error}"),
        )
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobmatch",
        description = "jobmatch's REST API: embeddings, jobs posted, closed and searched for a resume, a candidate pool searched for a job, board polls on demand; health and metrics. Every endpoint but /openapi.json, /health, /ready and /metrics needs `Authorization: Bearer <token>`; writes need a token of scope `write`."
    ),
    paths(
        embed::embed,
        embed::batch_embed,
        embed::tei_embed,
        jobs::add,
        jobs::update,
        jobs::delete,
        jobs::search,
        resumes::add,
        resumes::update,
        resumes::delete,
        resumes::search,
        fetch::fetch,
        health,
        ready,
        metrics
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

// Documentation of the endpoints `crate::http` serves.

/// The process is alive.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "ok", body = String)))]
#[allow(dead_code)]
fn health() {}

/// Every role this process runs has started (for the embedder: the model has loaded
/// and embedded a warm-up batch). One line per role.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Every role is ready", body = String),
    (status = 503, description = "Some role is still starting", body = String),
))]
#[allow(dead_code)]
fn ready() {}

/// Prometheus metrics in the OpenMetrics text format, among them the API's requests by
/// route and status and their durations, the embedding queue's depth, batch sizes,
/// tokens embedded and requests refused as overloaded.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String)))]
#[allow(dead_code)]
fn metrics() {}

/// An error, in text-embeddings-inference's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the field or input (`texts[3]: empty`).
    pub error: String,
    /// `Validation`, `Unauthorized`, `Forbidden`, `NotFound`, `Conflict`, `Overloaded`,
    /// `Unavailable`, `Timeout`, `Upstream` or `Backend`.
    pub error_type: String,
}

/// An API error: a status and a message for the caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
        }
    }

    /// 422, naming the field in `message`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation", message)
    }

    fn too_many(field: &str, count: usize, max: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Validation",
            format!("{field}: {count} texts in one request; at most {max} are accepted"),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> Self {
        let (status, error_type) = match e.kind {
            ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "Validation"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "Conflict"),
            ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Validation"),
            ErrorKind::Overloaded => (StatusCode::TOO_MANY_REQUESTS, "Overloaded"),
            ErrorKind::Upstream => (StatusCode::BAD_GATEWAY, "Upstream"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            ErrorKind::TimedOut => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Backend"),
        };
        Self::new(status, error_type, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.message, "API request failed");
        }
        let retry = matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        let status = self.status;
        let body = axum::Json(ErrorBody {
            error: self.message,
            error_type: self.error_type.to_owned(),
        });
        let mut response = (status, body).into_response();
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, RETRY_AFTER_SECS.into());
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// `axum::Json`, with its rejections (not JSON, wrong content type, wrong field types)
/// answered as [`ApiError`]s that name the field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "Validation",
                rejection.body_text(),
            )),
        }
    }
}

/// Refuses an empty or blank text, or one over the length limit, naming its field.
pub fn check_text(field: &str, text: &str, limits: &Limits) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::validation(format!("{field}: empty")));
    }
    if text.len() > limits.max_text_bytes {
        return Err(ApiError::validation(format!(
            "{field}: {} bytes; at most {} are accepted",
            text.len(),
            limits.max_text_bytes
        )));
    }
    Ok(())
}

/// Most results one search answers, and the furthest page.
pub const MAX_LIMIT: usize = 100;
pub const MAX_OFFSET: usize = 10_000;

/// Checks a page: `limit` 1..=100, `offset` at most 10,000.
pub fn check_page(limit: usize, offset: usize) -> Result<(), ApiError> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::validation(format!(
            "limit: {limit}; between 1 and {MAX_LIMIT}"
        )));
    }
    if offset > MAX_OFFSET {
        return Err(ApiError::validation(format!(
            "offset: {offset}; at most {MAX_OFFSET}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// The embedder's API before the model has loaded, at small limits.
    fn loading(access: Access, max_concurrent: usize) -> Router {
        let state = ApiState {
            embedding: Embedding::Local(Arc::default()),
            limits: Limits {
                max_body_bytes: 1 << 10,
                max_inputs: 4,
                max_text_bytes: 64,
                max_concurrent,
                timeout: Duration::from_secs(5),
            },
        };
        embedder(state, access, Arc::default())
    }

    async fn call(router: Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
        Request::post(path)
            .header("content-type", "application/json")
            .body(body.into())
            .expect("request")
    }

    #[test]
    fn a_role_that_does_not_answer_in_time_is_a_gateway_timeout_not_retry_now() {
        use jobmatch_core::rpc::{ErrorKind, RpcError};
        let late = ApiError::from(RpcError::new(ErrorKind::TimedOut, "no embedder answered"));
        assert_eq!(late.status(), StatusCode::GATEWAY_TIMEOUT);
        let down = ApiError::from(RpcError::new(
            ErrorKind::Unavailable,
            "no embedder is running",
        ));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn answers_503_with_retry_after_until_the_model_is_warm() {
        let response = loading(Access::open(), 8)
            .oneshot(post("/api/embed", r#"{"text": "x"}"#))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_before_reading_them_whole() {
        let huge = format!(r#"{{"text": "{}"}}"#, "x".repeat(4 << 10));
        let (status, body) = call(loading(Access::open(), 8), post("/api/embed", huge)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    }

    #[tokio::test]
    async fn validation_names_the_field_and_comes_before_the_model() {
        let router = loading(Access::open(), 8);
        let (status, body) = call(
            router.clone(),
            post("/api/batch-embed", r#"{"texts": ["a","b","c","d","e"]}"#),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let (status, body) = call(
            router.clone(),
            post("/api/batch-embed", r#"{"texts": ["a", " "]}"#),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], "texts[1]: empty");
        let long = format!(r#"{{"inputs": ["{}"]}}"#, "x".repeat(65));
        let (status, body) = call(router, post("/embed", long)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("inputs[0]: 65 bytes"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn without_tokens_a_reachable_listener_refuses_with_401() {
        let closed = Access::load(None, false, false).expect("closed");
        let response = loading(closed, 8)
            .oneshot(post("/api/embed", r#"{"text": "x"}"#))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }

    #[test]
    fn the_openapi_document_names_every_endpoint() {
        let doc = ApiDoc::openapi();
        for path in [
            "/api/embed",
            "/api/batch-embed",
            "/embed",
            "/job/add",
            "/job/update",
            "/job/delete",
            "/job/search",
            "/resume/add",
            "/resume/update",
            "/resume/delete",
            "/resume/search",
            "/fetch",
            "/health",
            "/ready",
            "/metrics",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
