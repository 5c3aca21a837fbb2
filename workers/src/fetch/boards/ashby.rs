//! Ashby job boards: `GET /posting-api/job-board/{name}?includeCompensation=true`, the
//! whole board in one response. Unlisted jobs (`isListed: false`) are skipped.

use jobmatch_core::{Salary, Workplace};
use serde::Deserialize;

use super::JSON;
use crate::fetch::normalize::{
    employment_type, parse_time, salary_interval, seniority, unique_locations, workplace_or_onsite,
    workplace_word,
};
use crate::fetch::text::{fold_whitespace, html_to_text};
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

pub fn url(base: &str, name: &str) -> String {
    format!("{base}/posting-api/job-board/{name}?includeCompensation=true")
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
    name: &str,
) -> Result<Option<Page>, PollError> {
    requests
        .single(url(base, name), JSON, |body| parse(origin, body))
        .await
}

#[derive(Deserialize)]
struct Board {
    jobs: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    id: String,
    title: String,
    job_url: String,
    #[serde(default = "listed")]
    is_listed: bool,
    #[serde(default)]
    is_remote: Option<bool>,
    #[serde(default)]
    workplace_type: Option<String>,
    #[serde(default)]
    employment_type: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    secondary_locations: Vec<SecondaryLocation>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    description_plain: Option<String>,
    #[serde(default)]
    description_html: Option<String>,
    #[serde(default)]
    published_at: Option<String>,
    #[serde(default)]
    compensation: Option<Compensation>,
}

fn listed() -> bool {
    true
}

#[derive(Deserialize)]
struct SecondaryLocation {
    #[serde(default)]
    location: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Compensation {
    #[serde(default)]
    summary_components: Vec<Component>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    #[serde(default)]
    compensation_type: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    currency_code: Option<String>,
    #[serde(default)]
    min_value: Option<f64>,
    #[serde(default)]
    max_value: Option<f64>,
}

pub fn parse(origin: Origin<'_>, body: &[u8]) -> Result<Page, ParseError> {
    let board: Board = from_json(body)?;
    let mut page = Page::default();
    read_items("jobs", board.jobs, &mut page, |job: Job| {
        Ok(job.is_listed.then(|| normalize(origin, job)))
    });
    Ok(page)
}

fn normalize(origin: Origin<'_>, job: Job) -> jobmatch_core::Posting {
    let mut p = origin.posting(&job.id, &job.title, origin.identity, &job.job_url);
    p.locations = unique_locations(
        job.location.into_iter().chain(
            job.secondary_locations
                .into_iter()
                .filter_map(|l| l.location),
        ),
    );
    p.workplace = job
        .workplace_type
        .as_deref()
        .and_then(workplace_word)
        .or(if job.is_remote == Some(true) {
            Some(Workplace::Remote)
        } else {
            None
        })
        .unwrap_or_else(|| workplace_or_onsite(&p.locations));
    p.description = match (job.description_plain, job.description_html) {
        (Some(plain), _) if !plain.trim().is_empty() => fold_whitespace(&plain),
        (_, Some(html)) => html_to_text(&html),
        _ => String::new(),
    };
    p.tags = [job.department, job.team].into_iter().flatten().collect();
    p.employment_type = job.employment_type.as_deref().and_then(employment_type);
    p.seniority = seniority(&p.title);
    p.salary = job.compensation.and_then(|c| {
        c.summary_components
            .into_iter()
            .find(|c| {
                c.compensation_type
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case("salary"))
            })
            .map(|c| Salary {
                min: c.min_value,
                max: c.max_value,
                currency: c.currency_code,
                interval: c.interval.as_deref().and_then(salary_interval),
            })
    });
    p.posted_at = job.published_at.as_deref().and_then(parse_time);
    p
}
