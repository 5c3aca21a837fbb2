//! Greenhouse job boards: `GET /v1/boards/{token}/jobs?content=true`, the whole board in
//! one response (`jobs[]`), `content` as entity-escaped HTML.

use jobmatch_core::{Posting, Workplace};
use serde::Deserialize;
use time::OffsetDateTime;

use super::text::escaped_html_to_text;
use super::{BoardPage, PostingError, workplace_from_location};

pub fn url(base: &str, token: &str) -> String {
    format!("{base}/v1/boards/{token}/jobs?content=true")
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

/// Parses a board response. A malformed document fails whole; a malformed job is reported
/// in the page and skipped.
pub fn parse(source: &str, token: &str, body: &[u8]) -> Result<BoardPage, serde_json::Error> {
    let board: Board = serde_json::from_slice(body)?;
    let mut page = BoardPage::default();
    for (index, value) in board.jobs.into_iter().enumerate() {
        match serde_json::from_value::<Job>(value) {
            Ok(job) => page.postings.push(normalize(source, token, job)),
            Err(e) => page.errors.push(PostingError {
                index,
                message: e.to_string(),
            }),
        }
    }
    page.complete = true;
    Ok(page)
}

fn normalize(source: &str, token: &str, job: Job) -> Posting {
    let location = job.location.and_then(|l| l.name).unwrap_or_default();
    let mut locations: Vec<String> = location
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for office in job.offices.into_iter().filter_map(|o| o.name) {
        if !locations.iter().any(|l| l.eq_ignore_ascii_case(&office)) && !office.is_empty() {
            locations.push(office);
        }
    }
    let workplace = workplace_from_location(&location).unwrap_or(if locations.is_empty() {
        Workplace::Unknown
    } else {
        Workplace::Onsite
    });
    Posting {
        id: format!("greenhouse:{token}:{}", job.id),
        source: source.to_owned(),
        title: job.title.trim().to_owned(),
        company: job.company_name.unwrap_or_else(|| token.to_owned()),
        locations,
        workplace,
        url: job.absolute_url,
        description: job
            .content
            .as_deref()
            .map(escaped_html_to_text)
            .unwrap_or_default(),
        tags: job.departments.into_iter().filter_map(|d| d.name).collect(),
        employment_type: None,
        salary: None,
        posted_at: job.first_published.or(job.updated_at),
        updated_at: job.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_a_job_and_skips_a_malformed_one() {
        let body = br#"{"jobs": [
          {"id": 4012345, "title": " Senior Rust Engineer ", "absolute_url": "https://boards.greenhouse.io/acme/jobs/4012345",
           "location": {"name": "Remote - Europe"}, "company_name": "Acme Corp",
           "updated_at": "2026-11-02T10:00:00-05:00", "first_published": "2026-10-30T09:00:00-05:00",
           "content": "&lt;p&gt;Tokio &amp;amp; Kubernetes&lt;/p&gt;", "departments": [{"name": "Engineering"}],
           "offices": [{"name": "Berlin"}], "metadata": []},
          {"id": "not-a-number", "title": 7}
        ], "meta": {"total": 2}}"#;
        let page = parse("acme-src", "acme", body).unwrap();
        assert_eq!(page.errors.len(), 1);
        assert_eq!(page.errors[0].index, 1);
        let p = &page.postings[0];
        assert_eq!(p.id, "greenhouse:acme:4012345");
        assert_eq!(p.source, "acme-src");
        assert_eq!(p.title, "Senior Rust Engineer");
        assert_eq!(p.company, "Acme Corp");
        assert_eq!(p.workplace, Workplace::Remote);
        assert_eq!(p.locations, ["Remote - Europe", "Berlin"]);
        assert_eq!(p.description, "Tokio & Kubernetes");
        assert_eq!(p.tags, ["Engineering"]);
        assert_eq!(
            p.posted_at,
            Some(time::macros::datetime!(2026-10-30 14:00 UTC))
        );
    }

    #[test]
    fn malformed_json_is_an_error_with_position() {
        let err = parse("a", "a", br#"{"jobs": [{"id": 1,"#).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
