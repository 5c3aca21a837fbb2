//! Remotive: `GET /api/remote-jobs[?category=...]`, every job in one response with a
//! legal notice beside it, times without an offset (UTC), and the salary as free text.
//! Remotive asks for at most four requests a day: sources refuse shorter intervals.

use jobmatch_core::Workplace;
use serde::Deserialize;

use super::JSON;
use crate::fetch::normalize::{
    employment_type, parse_time, salary_from_text, seniority, unique_locations,
};
use crate::fetch::text::html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

pub fn url(base: &str, category: Option<&str>) -> String {
    match category {
        Some(c) => format!("{base}/api/remote-jobs?category={}", url_escape(c)),
        None => format!("{base}/api/remote-jobs"),
    }
}

fn url_escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
    category: Option<&str>,
) -> Result<Option<Page>, PollError> {
    requests
        .single(url(base, category), JSON, |body| parse(origin, body))
        .await
}

#[derive(Deserialize)]
struct Listing {
    jobs: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Job {
    id: u64,
    url: String,
    title: String,
    company_name: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    job_type: Option<String>,
    #[serde(default)]
    publication_date: Option<String>,
    #[serde(default)]
    candidate_required_location: Option<String>,
    #[serde(default)]
    salary: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

pub fn parse(origin: Origin<'_>, body: &[u8]) -> Result<Page, ParseError> {
    let listing: Listing = from_json(body)?;
    let mut page = Page::default();
    read_items("jobs", listing.jobs, &mut page, |job: Job| {
        Ok(Some(normalize(origin, job)))
    });
    Ok(page)
}

fn normalize(origin: Origin<'_>, job: Job) -> jobmatch_core::Posting {
    let mut p = origin.posting(job.id, &job.title, &job.company_name, &job.url);
    p.locations = unique_locations(job.candidate_required_location);
    p.workplace = Workplace::Remote;
    p.description = job
        .description
        .as_deref()
        .map(html_to_text)
        .unwrap_or_default();
    p.tags = job.category.into_iter().chain(job.tags).collect();
    p.employment_type = job.job_type.as_deref().and_then(employment_type);
    p.seniority = seniority(&p.title);
    p.salary = job.salary.as_deref().and_then(salary_from_text);
    p.posted_at = job.publication_date.as_deref().and_then(parse_time);
    p
}
