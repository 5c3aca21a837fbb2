//! Greenhouse job boards: `GET /v1/boards/{token}/jobs?content=true`, the whole board in
//! one response (`jobs[]`), `content` as entity-escaped HTML.

use serde::Deserialize;
use time::OffsetDateTime;

use super::JSON;
use crate::fetch::normalize::{employment_type, seniority, unique_locations, workplace_or_onsite};
use crate::fetch::text::escaped_html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

pub fn url(base: &str, token: &str) -> String {
    format!("{base}/v1/boards/{token}/jobs?content=true")
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
    token: &str,
) -> Result<Option<Page>, PollError> {
    requests
        .single(url(base, token), JSON, |body| parse(origin, body))
        .await
}

#[derive(Deserialize)]
struct Board {
    jobs: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Job {
    id: u64,
    title: String,
    absolute_url: String,
    #[serde(default)]
    location: Option<Named>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    departments: Vec<Named>,
    #[serde(default)]
    offices: Vec<Named>,
    #[serde(default)]
    metadata: Option<Vec<Metadata>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    updated_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    first_published: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    name: Option<String>,
}

/// Custom fields a board defines; some name the employment type or level.
#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: serde_json::Value,
}

/// Parses a board response. A malformed document fails whole; a malformed job is
/// reported in the page and skipped.
pub fn parse(origin: Origin<'_>, body: &[u8]) -> Result<Page, ParseError> {
    let board: Board = from_json(body)?;
    let mut page = Page::default();
    read_items("jobs", board.jobs, &mut page, |job: Job| {
        Ok(Some(normalize(origin, job)))
    });
    Ok(page)
}

fn normalize(origin: Origin<'_>, job: Job) -> jobmatch_core::Posting {
    let company = job.company_name.as_deref().unwrap_or(origin.identity);
    let mut p = origin.posting(job.id, &job.title, company, &job.absolute_url);
    let location = job.location.and_then(|l| l.name).unwrap_or_default();
    p.locations = unique_locations(
        location
            .split(';')
            .map(str::to_owned)
            .chain(job.offices.into_iter().filter_map(|o| o.name)),
    );
    p.workplace = crate::fetch::normalize::workplace_from_location(&location)
        .unwrap_or_else(|| workplace_or_onsite(&p.locations));
    p.description = job
        .content
        .as_deref()
        .map(escaped_html_to_text)
        .unwrap_or_default();
    p.tags = job.departments.into_iter().filter_map(|d| d.name).collect();
    for field in job.metadata.unwrap_or_default() {
        let (Some(name), Some(value)) = (field.name, field.value.as_str()) else {
            continue;
        };
        let name = name.to_lowercase();
        if name.contains("employment type") || name.contains("job type") {
            p.employment_type = employment_type(value);
        } else if name.contains("level") || name.contains("seniority") {
            p.seniority = seniority(value);
        }
    }
    if p.seniority.is_none() {
        p.seniority = seniority(&p.title);
    }
    p.posted_at = job.first_published.or(job.updated_at);
    p.updated_at = job.updated_at;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin {
            source: "acme-src",
            kind: "greenhouse",
            identity: "acme",
        }
    }

    #[test]
    fn malformed_job_is_named_by_path_and_skipped() {
        let body = br#"{"jobs": [
          {"id": 1, "title": "Ok", "absolute_url": "https://x/1"},
          {"id": "not-a-number", "title": 7}
        ]}"#;
        let page = parse(origin(), body).unwrap();
        assert_eq!(page.postings.len(), 1);
        assert_eq!(page.errors[0].location, "jobs[1].id");
        assert!(
            page.errors[0].message.contains("invalid type"),
            "{:?}",
            page.errors
        );
    }

    #[test]
    fn malformed_json_is_an_error_with_position() {
        let err = parse(origin(), br#"{"jobs": [{"id": 1,"#).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
