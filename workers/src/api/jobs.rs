//! `/job/add`, `/job/update`, `/job/delete`: jobs posted through the API enter the
//! pipeline as a board's do (source `api`, through dedup; the fetchers answer), so
//! subscribers hear of them. `/job/search`: the open jobs for a resume text or vector,
//! with a MatchSubscription's criteria, ranked and explained (the matchers answer).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jobmatch_core::rpc::{
    self, JobHit, Page, PostingAccepted, PostingCommand, PostingOutcome, SearchRequest,
};
use jobmatch_core::{Criteria, Posting, Salary, Workplace};
use serde::Deserialize;
use utoipa::ToSchema;

use super::backends::{SEARCH_TIMEOUT, WRITE_TIMEOUT};
use super::{ApiError, ApiJson, ErrorBody, Gateway, Limits, check_page, check_text};
use crate::embed::Overlong;
use crate::fetch::normalize;

pub fn read_routes() -> Router<Gateway> {
    Router::new().route("/job/search", post(search))
}

pub fn write_routes() -> Router<Gateway> {
    Router::new()
        .route("/job/add", post(add))
        .route("/job/update", post(update))
        .route("/job/delete", post(delete))
}

/// A job as a client posts it: a `Posting`'s fields, `id` optional on add.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobInput {
    /// Yours; stored as `api:<id>`. Generated on add when absent; required on update.
    #[serde(default)]
    pub id: Option<String>,
    pub title: String,
    pub company: String,
    /// Plain text.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub locations: Vec<String>,
    /// Read from the locations when absent (`Remote - Europe` is remote).
    #[serde(default)]
    pub workplace: Workplace,
    #[serde(default)]
    pub salary: Option<Salary>,
    #[serde(default)]
    pub employment_type: Option<String>,
    /// `intern`, `junior`, `mid`, `senior`, `staff`, `principal`, `lead` or
    /// `director`; read from the title when absent.
    #[serde(default)]
    pub seniority: Option<String>,
    /// Where to apply (http or https).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub posted_at: Option<time::OffsetDateTime>,
}

const SENIORITIES: [&str; 8] = [
    "intern",
    "junior",
    "mid",
    "senior",
    "staff",
    "principal",
    "lead",
    "director",
];

/// Longest id a client may choose.
const MAX_ID_CHARS: usize = 200;

/// Refuses an id that is empty, too long, or holds spaces or control characters.
pub fn check_id(id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() {
        return Err(ApiError::validation("id: empty"));
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(ApiError::validation(format!(
            "id: longer than {MAX_ID_CHARS} characters"
        )));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::validation(
            "id: spaces and control characters are not allowed",
        ));
    }
    Ok(())
}

/// A new random id.
pub fn generated_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl JobInput {
    /// The posting it describes, checked field by field.
    pub fn into_posting(self, id: String, limits: &Limits) -> Result<Posting, ApiError> {
        check_id(&id)?;
        check_text("title", &self.title, limits)?;
        check_text("company", &self.company, limits)?;
        if self.description.len() > limits.max_text_bytes {
            check_text("description", &self.description, limits)?;
        }
        for (i, location) in self.locations.iter().enumerate() {
            check_text(&format!("locations[{i}]"), location, limits)?;
        }
        for (i, tag) in self.tags.iter().enumerate() {
            check_text(&format!("tags[{i}]"), tag, limits)?;
        }
        let url = self.url.unwrap_or_default();
        if !url.is_empty()
            && !url::Url::parse(&url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        {
            return Err(ApiError::validation(format!(
                "url: {url:?} is not an http(s) URL"
            )));
        }
        let seniority = match self.seniority {
            Some(s) if SENIORITIES.contains(&s.as_str()) => Some(s),
            Some(s) => {
                return Err(ApiError::validation(format!(
                    "seniority: {s:?}; one of {}",
                    SENIORITIES.join(", ")
                )));
            }
            None => normalize::seniority(&self.title),
        };
        if let Some(salary) = &self.salary {
            let negative = [salary.min, salary.max].iter().flatten().any(|v| *v < 0.0);
            if negative {
                return Err(ApiError::validation("salary: negative"));
            }
            if let (Some(min), Some(max)) = (salary.min, salary.max)
                && min > max
            {
                return Err(ApiError::validation("salary: min is above max"));
            }
        }
        let workplace = match self.workplace {
            Workplace::Unknown => self
                .locations
                .iter()
                .find_map(|l| normalize::workplace_from_location(l))
                .unwrap_or(Workplace::Unknown),
            known => known,
        };
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).ok();
        Ok(Posting {
            id: rpc::api_posting_id(&id),
            source: rpc::API_SOURCE.to_owned(),
            title: normalize::clean_line(&self.title),
            company: normalize::clean_line(&self.company),
            locations: normalize::unique_locations(self.locations),
            workplace,
            url,
            description: self.description,
            tags: self.tags,
            employment_type: self.employment_type,
            seniority,
            salary: self.salary,
            posted_at: self.posted_at.or(now),
            updated_at: now,
            closed: false,
            repost_of: None,
        })
    }
}

async fn submit(
    gateway: &Gateway,
    posting: Posting,
    create: bool,
) -> Result<(StatusCode, Json<PostingAccepted>), ApiError> {
    let accepted: PostingAccepted = gateway
        .call(
            rpc::POSTINGS_SUBJECT,
            &PostingCommand::Submit {
                posting: Box::new(posting),
                create,
            },
            WRITE_TIMEOUT,
        )
        .await?;
    let status = if create && accepted.outcome != PostingOutcome::Duplicate {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(accepted)))
}

/// Posts a new job. It goes through dedup like a board's: the same job already open
/// from a board is answered `duplicate` (with `duplicateOf`) and not published again.
#[utoipa::path(
    post,
    path = "/job/add",
    tag = "jobs",
    request_body = JobInput,
    responses(
        (status = 201, description = "Published: subscribers will hear of it", body = PostingAccepted),
        (status = 200, description = "A duplicate of an open job: remembered, not published", body = PostingAccepted),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 409, description = "A job with this id is open; use /job/update", body = ErrorBody),
        (status = 422, description = "A field missing, empty, too long or invalid (named)", body = ErrorBody),
        (status = 503, description = "No fetcher is running, or the server is at its concurrency limit", body = ErrorBody),
    )
)]
pub async fn add(
    State(gateway): State<Gateway>,
    ApiJson(job): ApiJson<JobInput>,
) -> Result<(StatusCode, Json<PostingAccepted>), ApiError> {
    let id = job.id.clone().unwrap_or_else(generated_id);
    let posting = job.into_posting(id, &gateway.api.limits)?;
    submit(&gateway, posting, true).await
}

/// Changes an open job posted through the API: it is embedded and matched again.
#[utoipa::path(
    post,
    path = "/job/update",
    tag = "jobs",
    request_body = JobInput,
    responses(
        (status = 200, description = "Published again (`updated`), or `unchanged`", body = PostingAccepted),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 404, description = "No open job with this id", body = ErrorBody),
        (status = 422, description = "A field missing, empty, too long or invalid (named)", body = ErrorBody),
    )
)]
pub async fn update(
    State(gateway): State<Gateway>,
    ApiJson(job): ApiJson<JobInput>,
) -> Result<(StatusCode, Json<PostingAccepted>), ApiError> {
    let Some(id) = job.id.clone() else {
        return Err(ApiError::validation("id: required"));
    };
    let posting = job.into_posting(id, &gateway.api.limits)?;
    submit(&gateway, posting, false).await
}

/// Which job.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobId {
    /// As added (`acme-1` or `api:acme-1`).
    pub id: String,
}

/// Closes a job posted through the API: it is matched no more.
#[utoipa::path(
    post,
    path = "/job/delete",
    tag = "jobs",
    request_body = JobId,
    responses(
        (status = 200, description = "Closed", body = PostingAccepted),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "A read-only token", body = ErrorBody),
        (status = 404, description = "No open job with this id", body = ErrorBody),
    )
)]
pub async fn delete(
    State(gateway): State<Gateway>,
    ApiJson(job): ApiJson<JobId>,
) -> Result<Json<PostingAccepted>, ApiError> {
    check_id(&job.id)?;
    let accepted = gateway
        .call(
            rpc::POSTINGS_SUBJECT,
            &PostingCommand::Close { id: job.id },
            WRITE_TIMEOUT,
        )
        .await?;
    Ok(Json(accepted))
}

fn default_limit() -> usize {
    10
}

/// A search for jobs: a resume as `text` (embedded by the embedders) or as a `vector`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSearch {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    /// A MatchSubscription's criteria (`minScore` 0.3 when absent).
    #[serde(default)]
    pub criteria: Criteria,
    /// Results per page, 1..=100.
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Results to skip: the previous answer's `nextOffset`.
    #[serde(default)]
    pub offset: usize,
}

/// The text or the vector of a search: exactly one of them (a text embedded as
/// `overlong` says: a resume whole, a posting cut as stored postings are).
pub async fn query_vector(
    gateway: &Gateway,
    text: Option<String>,
    vector: Option<Vec<f32>>,
    overlong: Overlong,
) -> Result<Vec<f32>, ApiError> {
    match (text, vector) {
        (Some(text), None) => {
            check_text("text", &text, &gateway.api.limits)?;
            gateway.api.embedding.embed_one(text, overlong).await
        }
        (None, Some(vector)) => {
            if vector.is_empty() {
                return Err(ApiError::validation("vector: empty"));
            }
            if vector.iter().any(|x| !x.is_finite()) {
                return Err(ApiError::validation("vector: not a finite number"));
            }
            Ok(vector)
        }
        (Some(_), Some(_)) => Err(ApiError::validation(
            "text, vector: give one of them, not both",
        )),
        (None, None) => Err(ApiError::validation("text: required (or vector)")),
    }
}

/// Checks criteria as the operator checks a MatchSubscription's.
pub fn check_criteria(criteria: &Criteria) -> Result<(), ApiError> {
    jobmatch_core::validate::criteria(criteria, "criteria")
        .map_err(|e| ApiError::validation(format!("{}: {}", e.field, e.message)))
}

/// The open jobs that fit a resume, best first, each with its score and why it matched.
#[utoipa::path(
    post,
    path = "/job/search",
    tag = "jobs",
    request_body = JobSearch,
    responses(
        (status = 200, description = "One page of jobs, best first", body = Page<JobHit>),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 422, description = "No text or vector, both, a vector of the wrong dimension, bad criteria or page", body = ErrorBody),
        (status = 429, description = "The embedders' queue is full", body = ErrorBody),
        (status = 503, description = "No embedder or matcher is running, or the server is at its concurrency limit", body = ErrorBody),
    )
)]
pub async fn search(
    State(gateway): State<Gateway>,
    ApiJson(search): ApiJson<JobSearch>,
) -> Result<Json<Page<JobHit>>, ApiError> {
    check_page(search.limit, search.offset)?;
    check_criteria(&search.criteria)?;
    // The text is a resume: read whole.
    let vector = query_vector(&gateway, search.text, search.vector, Overlong::Chunk).await?;
    let page = gateway
        .call(
            rpc::SEARCH_SUBJECT,
            &SearchRequest::Jobs {
                vector,
                criteria: search.criteria,
                limit: search.limit,
                offset: search.offset,
            },
            SEARCH_TIMEOUT,
        )
        .await?;
    Ok(Json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobInput {
        serde_json::from_value(serde_json::json!({
            "title": "Senior Rust Engineer",
            "company": "Acme",
            "locations": ["Remote - Europe"],
        }))
        .expect("valid")
    }

    #[test]
    fn a_posted_job_is_an_api_posting_with_what_boards_would_read() {
        let posting = job()
            .into_posting("acme-1".into(), &Limits::default())
            .expect("valid");
        assert_eq!(posting.id, "api:acme-1");
        assert_eq!(posting.source, "api");
        assert_eq!(posting.workplace, Workplace::Remote);
        assert_eq!(posting.seniority.as_deref(), Some("senior"));
        assert!(posting.posted_at.is_some());
    }

    #[test]
    fn bad_fields_are_named() {
        let limits = Limits::default();
        let mut j = job();
        j.title = " ".into();
        let e = j.into_posting("x".into(), &limits).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(format!("{e:?}").contains("title: empty"), "{e:?}");
        let mut j = job();
        j.seniority = Some("wizard".into());
        assert!(
            format!("{:?}", j.into_posting("x".into(), &limits).unwrap_err()).contains("seniority")
        );
        let mut j = job();
        j.url = Some("javascript:alert(1)".into());
        assert!(format!("{:?}", j.into_posting("x".into(), &limits).unwrap_err()).contains("url"));
        assert!(
            format!(
                "{:?}",
                job().into_posting("a b".into(), &limits).unwrap_err()
            )
            .contains("id:")
        );
        let unknown = serde_json::from_value::<JobInput>(serde_json::json!({
            "title": "t", "company": "c", "colour": "red"
        }))
        .unwrap_err();
        assert!(unknown.to_string().contains("colour"), "{unknown}");
    }
}
