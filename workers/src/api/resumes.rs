//! `/resume/add`, `/resume/update`, `/resume/delete`: a candidate pool kept apart from
//! MatchSubscriptions (which stay Kubernetes resources), held by the matchers beside
//! the jobs. Deleting a resume erases its text and vector. `/resume/search`: the
//! resumes that fit a posting, the recruiter's direction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jobmatch_core::rpc::{
    self, Page, Resume, ResumeCommand, ResumeHit, ResumeWritten, SearchRequest,
};
use jobmatch_core::{Criteria, Posting};
use serde::Deserialize;
use utoipa::ToSchema;

use super::backends::{SEARCH_TIMEOUT, WRITE_TIMEOUT};
use super::jobs::{JobInput, check_criteria, check_id, generated_id, query_vector};
use super::{ApiError, ApiJson, ErrorBody, Gateway, check_page, check_text};
use crate::embed::Overlong;

pub fn read_routes() -> Router<Gateway> {
    Router::new().route("/resume/search", post(search))
}

pub fn write_routes() -> Router<Gateway> {
    Router::new()
        .route("/resume/add", post(add))
        .route("/resume/update", post(update))
        .route("/resume/delete", post(delete))
}

/// A resume for the pool.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeInput {
    /// Yours; generated on add when absent, required on update.
    #[serde(default)]
    pub id: Option<String>,
    /// The resume as plain text.
    pub text: String,
    /// What the candidate wants of a job (a MatchSubscription's criteria): a posting
    /// that fails them does not list this resume.
    #[serde(default)]
    pub criteria: Option<Criteria>,
}

async fn put(
    gateway: &Gateway,
    input: ResumeInput,
    id: String,
    create: bool,
) -> Result<ResumeWritten, ApiError> {
    check_id(&id)?;
    check_text("text", &input.text, &gateway.api.limits)?;
    if let Some(criteria) = &input.criteria {
        check_criteria(criteria)?;
    }
    let vector = gateway
        .api
        .embedding
        .embed_one(input.text.clone(), Overlong::Chunk)
        .await?;
    let resume = Resume {
        id,
        text: input.text,
        criteria: input.criteria,
        updated_at: jobmatch_core::rfc3339_now(),
    };
    gateway
        .call(
            rpc::RESUMES_SUBJECT,
            &ResumeCommand::Put {
                resume,
                vector,
                create,
            },
            WRITE_TIMEOUT,
        )
        .await
}

/// Adds a resume to the pool.
#[utoipa::path(
    post,
    path = "/resume/add",
    tag = "resumes",
    request_body = ResumeInput,
    responses(
        (status = 201, description = "Stored", body = ResumeWritten),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 409, description = "A resume with this id exists; use /resume/update", body = ErrorBody),
        (status = 422, description = "Empty or overlong text, bad id or criteria (named)", body = ErrorBody),
        (status = 503, description = "No embedder or matcher is running", body = ErrorBody),
    )
)]
pub async fn add(
    State(gateway): State<Gateway>,
    ApiJson(input): ApiJson<ResumeInput>,
) -> Result<(StatusCode, Json<ResumeWritten>), ApiError> {
    let id = input.id.clone().unwrap_or_else(generated_id);
    let written = put(&gateway, input, id, true).await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// Replaces a resume's text and criteria.
#[utoipa::path(
    post,
    path = "/resume/update",
    tag = "resumes",
    request_body = ResumeInput,
    responses(
        (status = 200, description = "Stored", body = ResumeWritten),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 404, description = "No resume with this id", body = ErrorBody),
        (status = 422, description = "Empty or overlong text, no id, bad criteria (named)", body = ErrorBody),
    )
)]
pub async fn update(
    State(gateway): State<Gateway>,
    ApiJson(input): ApiJson<ResumeInput>,
) -> Result<Json<ResumeWritten>, ApiError> {
    let Some(id) = input.id.clone() else {
        return Err(ApiError::validation("id: required"));
    };
    Ok(Json(put(&gateway, input, id, false).await?))
}

/// Which resume.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeId {
    pub id: String,
}

/// Erases a resume: its text and vector are gone from the store and its files.
#[utoipa::path(
    post,
    path = "/resume/delete",
    tag = "resumes",
    request_body = ResumeId,
    responses(
        (status = 200, description = "Erased", body = ResumeWritten),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 404, description = "No resume with this id", body = ErrorBody),
    )
)]
pub async fn delete(
    State(gateway): State<Gateway>,
    ApiJson(resume): ApiJson<ResumeId>,
) -> Result<Json<ResumeWritten>, ApiError> {
    check_id(&resume.id)?;
    let written = gateway
        .call(
            rpc::RESUMES_SUBJECT,
            &ResumeCommand::Delete { id: resume.id },
            WRITE_TIMEOUT,
        )
        .await?;
    Ok(Json(written))
}

fn default_limit() -> usize {
    10
}

fn default_min_score() -> f32 {
    Criteria::default().min_score
}

/// A search for resumes: the job as `posting` (its fields, as `/job/add` takes them),
/// as `text`, or as a `vector`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeSearch {
    #[serde(default)]
    pub posting: Option<JobInput>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    /// Cosine similarity below which no resume is listed (0..1, default 0.3).
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
}

/// The resumes of the pool that fit a job, best first, each with its score and why
/// (its own criteria checked against the job).
#[utoipa::path(
    post,
    path = "/resume/search",
    tag = "resumes",
    request_body = ResumeSearch,
    responses(
        (status = 200, description = "One page of resumes, best first", body = Page<ResumeHit>),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 422, description = "Not exactly one of posting, text and vector; bad fields or page", body = ErrorBody),
        (status = 503, description = "No embedder or matcher is running", body = ErrorBody),
    )
)]
pub async fn search(
    State(gateway): State<Gateway>,
    ApiJson(search): ApiJson<ResumeSearch>,
) -> Result<Json<Page<ResumeHit>>, ApiError> {
    check_page(search.limit, search.offset)?;
    if !(0.0..=1.0).contains(&search.min_score) {
        return Err(ApiError::validation(format!(
            "minScore: {}; between 0 and 1",
            search.min_score
        )));
    }
    let (posting, place_known, vector) = match (search.posting, search.text, search.vector) {
        (Some(job), None, None) => {
            let id = job.id.clone().unwrap_or_else(|| "search".to_owned());
            let posting = job.into_posting(id, &gateway.api.limits)?;
            let vector = gateway
                .api
                .embedding
                .embed_one(posting.embedding_text(), Overlong::Truncate)
                .await?;
            (posting, true, vector)
        }
        (None, text, vector) => {
            let description = text.clone().unwrap_or_default();
            // The text is a posting's: cut as stored postings are.
            let vector = query_vector(&gateway, text, vector, Overlong::Truncate).await?;
            let posting = Posting {
                description,
                ..Posting::default()
            };
            (posting, false, vector)
        }
        (Some(_), _, _) => {
            return Err(ApiError::validation(
                "posting, text, vector: give one of them",
            ));
        }
    };
    let page = gateway
        .call(
            rpc::SEARCH_SUBJECT,
            &SearchRequest::Resumes {
                vector,
                posting: Box::new(posting),
                place_known,
                min_score: search.min_score,
                limit: search.limit,
                offset: search.offset,
            },
            SEARCH_TIMEOUT,
        )
        .await?;
    Ok(Json(page))
}
