//! The embedding endpoints: `POST /api/embed` (one text) and `POST /api/batch-embed`
//! (many), as in the system jobmatch replaces, and TEI's `POST /embed`.
//!
//! Every text goes through the shared batching queue without waiting for room: a full
//! queue answers 429 with `Retry-After`. Texts over the model's limit are cut and
//! counted (`truncated` in the body, `x-truncated-inputs` on every answer), or refused
//! with TEI's `truncate: false`.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiState, ErrorBody, check_text};
use crate::embed::Overlong;
use jobmatch_core::rpc::EmbedReply;

/// The embedding endpoints.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/embed", post(embed))
        .route("/api/batch-embed", post(batch_embed))
        .route("/embed", post(tei_embed))
}

/// Header on every embedding answer: how many inputs were cut at the model's limit.
pub const TRUNCATED_HEADER: &str = "x-truncated-inputs";

/// One text.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbedRequest {
    /// The text to embed (cut at the model's token limit).
    #[schema(example = "Senior Rust engineer, remote, Kubernetes")]
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbedResponse {
    /// Unit-length vector.
    pub embedding: Vec<f32>,
    /// Length of the vector.
    pub dimension: usize,
    /// Tokens the model read (after truncation, special tokens included).
    pub tokens: usize,
    /// Whether the text was cut at the model's limit.
    pub truncated: bool,
}

/// Many texts.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchEmbedRequest {
    /// The texts to embed, at most the server's `--embed-max-inputs` (256 by default).
    pub texts: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchEmbedResponse {
    /// One vector per text, in order.
    pub embeddings: Vec<Vec<f32>>,
    pub dimension: usize,
    /// Tokens the model read, in all.
    pub tokens: usize,
    /// How many texts were cut at the model's limit.
    pub truncated: usize,
}

/// TEI's request: one text or many.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TeiEmbedRequest {
    pub inputs: TeiInputs,
    /// Cut texts over the model's limit (default) or refuse them with 422.
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Vectors come unit-length; `false` is refused.
    #[serde(default)]
    pub normalize: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TeiInputs {
    One(String),
    Many(Vec<String>),
}

/// Refuses empty requests, more texts than allowed, and blank or overlong texts,
/// naming each by `field[i]`.
fn validate(field: &str, texts: &[String], state: &ApiState) -> Result<(), ApiError> {
    if texts.is_empty() {
        return Err(ApiError::validation(format!("{field}: no texts to embed")));
    }
    let max = state.limits.max_inputs;
    if texts.len() > max {
        return Err(ApiError::too_many(field, texts.len(), max));
    }
    for (i, text) in texts.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), text, &state.limits)?;
    }
    Ok(())
}

async fn submit(
    state: &ApiState,
    texts: Vec<String>,
    refuse_overlong: bool,
) -> Result<EmbedReply, ApiError> {
    let overlong = if refuse_overlong {
        Overlong::Refuse
    } else {
        Overlong::Truncate
    };
    state.embedding.embed(texts, overlong).await
}

fn with_truncated(truncated: usize, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        HeaderName::from_static(TRUNCATED_HEADER),
        HeaderValue::from(truncated),
    );
    response
}

/// Embeds one text.
#[utoipa::path(
    post,
    path = "/api/embed",
    tag = "embed",
    request_body = EmbedRequest,
    responses(
        (status = 200, description = "The vector", body = EmbedResponse),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 422, description = "Empty or overlong text, or a field of the wrong type", body = ErrorBody),
        (status = 429, description = "The queue is full; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "The model is still loading, no embedder runs, or the server is at its concurrency limit", body = ErrorBody),
    )
)]
pub async fn embed(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<EmbedRequest>,
) -> Result<Response, ApiError> {
    check_text("text", &request.text, &state.limits)?;
    let mut embedded = submit(&state, vec![request.text], false).await?;
    let embedding = embedded.vectors.pop().unwrap_or_default();
    Ok(with_truncated(
        embedded.truncated,
        Json(EmbedResponse {
            embedding,
            dimension: embedded.dimension,
            tokens: embedded.tokens,
            truncated: embedded.truncated > 0,
        }),
    ))
}

/// Embeds many texts in one request.
#[utoipa::path(
    post,
    path = "/api/batch-embed",
    tag = "embed",
    request_body = BatchEmbedRequest,
    responses(
        (status = 200, description = "One vector per text, in order", body = BatchEmbedResponse),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 413, description = "More texts than one request may carry", body = ErrorBody),
        (status = 422, description = "No texts, an empty text, or a field of the wrong type", body = ErrorBody),
        (status = 429, description = "The queue is full; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "The model is still loading", body = ErrorBody),
    )
)]
pub async fn batch_embed(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<BatchEmbedRequest>,
) -> Result<Response, ApiError> {
    validate("texts", &request.texts, &state)?;
    let embedded = submit(&state, request.texts, false).await?;
    Ok(with_truncated(
        embedded.truncated,
        Json(BatchEmbedResponse {
            embeddings: embedded.vectors,
            dimension: embedded.dimension,
            tokens: embedded.tokens,
            truncated: embedded.truncated,
        }),
    ))
}

/// text-embeddings-inference's endpoint: `{"inputs": "..." | ["...", ...]}` gives an
/// array of vectors.
#[utoipa::path(
    post,
    path = "/embed",
    tag = "tei",
    request_body = TeiEmbedRequest,
    responses(
        (status = 200, description = "One vector per input, in order", body = Vec<Vec<f32>>),
        (status = 413, description = "More inputs than one request may carry", body = ErrorBody),
        (status = 422, description = "No inputs, an empty input, an input over the limit with `truncate: false`, or a field of the wrong type", body = ErrorBody),
        (status = 429, description = "The queue is full", body = ErrorBody),
        (status = 503, description = "The model is still loading", body = ErrorBody),
    )
)]
pub async fn tei_embed(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<TeiEmbedRequest>,
) -> Result<Response, ApiError> {
    if request.normalize == Some(false) {
        return Err(ApiError::validation(
            "normalize: false is not supported: this server returns unit-length vectors",
        ));
    }
    let texts = match request.inputs {
        TeiInputs::One(text) => vec![text],
        TeiInputs::Many(texts) => texts,
    };
    validate("inputs", &texts, &state)?;
    let embedded = submit(&state, texts, request.truncate == Some(false)).await?;
    Ok(with_truncated(embedded.truncated, Json(embedded.vectors)))
}
