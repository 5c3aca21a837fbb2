//! Workable accounts: `GET /api/v1/widget/accounts/{account}?details=true`, the whole
//! account in one response (`name`, `jobs[]`), descriptions as HTML.

use jobmatch_core::Workplace;
use serde::Deserialize;

use super::JSON;
use crate::fetch::normalize::{
    employment_type, parse_time, seniority, unique_locations, workplace_or_onsite,
};
use crate::fetch::text::html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

pub fn url(base: &str, account: &str) -> String {
    format!("{base}/api/v1/widget/accounts/{account}?details=true")
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
    account: &str,
) -> Result<Option<Page>, PollError> {
    requests
        .single(url(base, account), JSON, |body| parse(origin, body))
        .await
}

#[derive(Deserialize)]
struct Account {
    #[serde(default)]
    name: Option<String>,
    jobs: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Job {
    shortcode: String,
    title: String,
    url: String,
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    locations: Vec<Place>,
    #[serde(default)]
    telecommuting: Option<bool>,
    #[serde(default)]
    employment_type: Option<String>,
    #[serde(default)]
    experience: Option<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    published_on: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct Place {
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    hidden: bool,
}

fn place(parts: [&Option<String>; 3]) -> String {
    parts
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn parse(origin: Origin<'_>, body: &[u8]) -> Result<Page, ParseError> {
    let account: Account = from_json(body)?;
    let company = account.name.unwrap_or_else(|| origin.identity.to_owned());
    let mut page = Page::default();
    read_items("jobs", account.jobs, &mut page, |job: Job| {
        Ok(Some(normalize(origin, &company, job)))
    });
    Ok(page)
}

fn normalize(origin: Origin<'_>, company: &str, job: Job) -> jobmatch_core::Posting {
    let mut p = origin.posting(&job.shortcode, &job.title, company, &job.url);
    let main = place([&job.city, &job.state, &job.country]);
    p.locations = unique_locations(
        std::iter::once(main).chain(
            job.locations
                .iter()
                .filter(|l| !l.hidden)
                .map(|l| place([&l.city, &l.region, &l.country])),
        ),
    );
    p.workplace = if job.telecommuting == Some(true) {
        Workplace::Remote
    } else {
        workplace_or_onsite(&p.locations)
    };
    p.description = job
        .description
        .as_deref()
        .map(html_to_text)
        .unwrap_or_default();
    p.tags = [job.department, job.function]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .collect();
    p.employment_type = job.employment_type.as_deref().and_then(employment_type);
    p.seniority = job
        .experience
        .as_deref()
        .and_then(seniority)
        .or_else(|| seniority(&p.title));
    p.posted_at = job
        .published_on
        .or(job.created_at)
        .as_deref()
        .and_then(parse_time);
    p
}
