//! The REST API served next to `/health`, `/ready` and `/metrics`: the embedding
//! endpoints (on the `embedder` and `all` roles) and the OpenAPI document describing
//! them, `GET /openapi.json`.
//!
//! Errors are JSON in TEI's shape, `{"error": "...", "error_type": "..."}`: 400 for a
//! body that is not JSON, 413 for too many inputs, 415 without a JSON content type, 422
//! for a valid JSON body that is wrong (missing field, wrong type, empty text), 429 when
//! the queue is full, 503 while the model loads.

pub mod embed;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::embed::{Batcher, SubmitError};

/// Seconds a client is asked to wait after a 429.
const RETRY_AFTER_SECS: u32 = 1;

/// Largest request body: room for `--embed-max-inputs` whole postings (axum's default
/// is 2 MiB). Larger bodies get 413.
const MAX_BODY_BYTES: usize = 16 << 20;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Set once the model has loaded and warmed up.
    pub embedder: Arc<OnceLock<Batcher>>,
    /// Most texts in one request.
    pub max_inputs: usize,
}

impl ApiState {
    fn batcher(&self) -> Result<&Batcher, ApiError> {
        self.embedder.get().ok_or_else(|| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error_type: "Unavailable",
            message: "the embedding model is still loading; retry shortly".into(),
        })
    }
}

/// The embedding endpoints and the OpenAPI document.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/embed", post(embed::embed))
        .route("/api/batch-embed", post(embed::batch_embed))
        .route("/embed", post(embed::tei_embed))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .route("/openapi.json", get(openapi))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobmatch",
        description = "Embeddings of job postings and resumes with a sentence-transformers model; health and metrics."
    ),
    paths(
        embed::embed,
        embed::batch_embed,
        embed::tei_embed,
        health,
        ready,
        metrics
    ),
    components(schemas(
        embed::EmbedRequest,
        embed::EmbedResponse,
        embed::BatchEmbedRequest,
        embed::BatchEmbedResponse,
        embed::TeiEmbedRequest,
        embed::TeiInputs,
        ErrorBody
    ))
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

/// Prometheus metrics in the OpenMetrics text format, among them the embedding queue's
/// depth, batch sizes in texts and tokens, tokens embedded and per second, truncations
/// and requests refused as overloaded.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String)))]
#[allow(dead_code)]
fn metrics() {}

/// An error, in text-embeddings-inference's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the field or input.
    pub error: String,
    /// `Validation`, `Overloaded`, `Unavailable` or `Backend`.
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
    fn validation(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error_type: "Validation",
            message: message.into(),
        }
    }

    fn too_many(count: usize, max: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error_type: "Validation",
            message: format!("{count} texts in one request; at most {max} are accepted"),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let (status, error_type) = match &e {
            SubmitError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "Overloaded"),
            SubmitError::TooMany { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "Validation"),
            SubmitError::TooLong { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Validation"),
            SubmitError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            SubmitError::Tokenizer(_) | SubmitError::Model(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "Backend")
            }
        };
        Self {
            status,
            error_type,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.message, "API request failed");
        }
        let body = axum::Json(ErrorBody {
            error: self.message,
            error_type: self.error_type.to_owned(),
        });
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            (self.status, [(header::RETRY_AFTER, RETRY_AFTER_SECS)], body).into_response()
        } else {
            (self.status, body).into_response()
        }
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
            Err(rejection) => Err(ApiError {
                status: rejection.status(),
                error_type: "Validation",
                message: rejection.body_text(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// The API before the model has loaded.
    fn loading() -> Router {
        router(ApiState {
            embedder: Arc::default(),
            max_inputs: 4,
        })
    }

    async fn call(request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = loading().oneshot(request).await.expect("infallible");
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

    #[tokio::test]
    async fn answers_503_until_the_model_is_warm() {
        let (status, body) = call(post("/api/embed", r#"{"text": "x"}"#)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error_type"], "Unavailable");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("still loading")
        );
    }

    #[tokio::test]
    async fn bodies_over_16_mib_are_refused_before_reading_them_whole() {
        let huge = format!(r#"{{"text": "{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let (status, body) = call(post("/api/embed", huge)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("length limit exceeded"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn validation_comes_before_the_model() {
        // Refused without a model: the limits and shapes are checked first.
        let (status, body) = call(post(
            "/api/batch-embed",
            r#"{"texts": ["a","b","c","d","e"]}"#,
        ))
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let (status, body) = call(post("/embed", r#"{"inputs": ""}"#)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], "text 0 is empty");
    }

    #[test]
    fn the_openapi_document_names_every_endpoint() {
        let doc = ApiDoc::openapi();
        for path in [
            "/api/embed",
            "/api/batch-embed",
            "/embed",
            "/health",
            "/ready",
            "/metrics",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
