//! `/fetch`: poll a configured JobSource now (a fetcher does it, publishing as a
//! scheduled poll would, and answers the counts `jobmatch fetch` prints), or preview an
//! unsaved JobSource spec (this process reads the board and answers the normalized
//! postings; nothing is written anywhere).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use jobmatch_core::rpc::{self, FetchReport, FetchRequest};
use jobmatch_core::{JobSourceSpec, Posting};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::backends::FETCH_TIMEOUT;
use super::{ApiError, ApiJson, ErrorBody, Gateway};

pub fn routes() -> Router<Gateway> {
    Router::new().route("/fetch", post(fetch))
}

/// Either a configured source's name, or an unsaved spec to preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchInput {
    /// The name of a configured JobSource: poll it now.
    #[serde(default)]
    pub source: Option<String>,
    /// A JobSource `spec` to preview (as in the YAML: `board`, `baseUrl`,
    /// `titleIncludes`, ...).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub spec: Option<JobSourceSpec>,
    /// The preview's source name (in the postings' `source`), default `preview`.
    #[serde(default)]
    pub name: Option<String>,
}

/// A preview: what a poll of the spec would publish.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub postings: Vec<Posting>,
    /// Each malformed posting skipped: where and why.
    pub errors: Vec<String>,
    /// Postings dropped by `titleIncludes`.
    pub filtered: usize,
    pub http_status: Option<u16>,
    pub requests: usize,
}

/// A poll's counts or a preview's postings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FetchAnswer {
    Polled(FetchReport),
    Preview(Preview),
}

/// Polls a configured JobSource now, or previews an unsaved spec.
#[utoipa::path(
    post,
    path = "/fetch",
    tag = "fetch",
    request_body = FetchInput,
    responses(
        (status = 200, description = "The poll's counts (`source`), or the preview's postings (`spec`)", body = FetchAnswer),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 404, description = "No JobSource of this name", body = ErrorBody),
        (status = 409, description = "The source is being polled now", body = ErrorBody),
        (status = 422, description = "Neither or both of source and spec; an invalid spec (the field named)", body = ErrorBody),
        (status = 502, description = "The board failed or answered something unreadable", body = ErrorBody),
        (status = 503, description = "No fetcher is running", body = ErrorBody),
    )
)]
pub async fn fetch(
    State(gateway): State<Gateway>,
    ApiJson(input): ApiJson<FetchInput>,
) -> Result<Json<FetchAnswer>, ApiError> {
    match (input.source, input.spec) {
        (Some(source), None) => {
            let report = gateway
                .call(rpc::FETCH_SUBJECT, &FetchRequest { source }, FETCH_TIMEOUT)
                .await?;
            Ok(Json(FetchAnswer::Polled(report)))
        }
        (None, Some(mut spec)) => {
            let name = input.name.unwrap_or_else(|| "preview".to_owned());
            // A preview polls once: the interval does not matter.
            spec.interval = spec.interval.max(spec.board.min_interval());
            let source = jobmatch_core::validate::source_config(&name, spec).map_err(|e| {
                let field = if e.field == "metadata.name" {
                    "name".to_owned()
                } else {
                    e.field.clone()
                };
                ApiError::validation(format!("{field}: {}", e.message))
            })?;
            let poll = crate::fetch::poll(&gateway.boards, &source, None)
                .await
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "Upstream",
                        format!("polling the board: {e}"),
                    )
                })?;
            Ok(Json(FetchAnswer::Preview(Preview {
                errors: poll
                    .skipped
                    .iter()
                    .map(|s| format!("{}: {}", s.location, s.message))
                    .collect(),
                filtered: poll.filtered,
                http_status: poll.http_status,
                requests: poll.requests,
                postings: poll.postings,
            })))
        }
        (Some(_), Some(_)) => Err(ApiError::validation(
            "source, spec: give one of them, not both",
        )),
        (None, None) => Err(ApiError::validation("source: required (or spec)")),
    }
}
