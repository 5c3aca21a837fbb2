//! Arbeitnow: `GET /api/job-board-api?page=N`, `data[]` a page at a time with
//! `links.next` saying whether another follows; times in epoch seconds.

use jobmatch_core::Workplace;
use serde::Deserialize;

use super::JSON;
use crate::fetch::normalize::{
    employment_type, from_epoch_seconds, seniority, unique_locations, workplace_or_onsite,
};
use crate::fetch::text::html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

pub fn url(base: &str, page: usize) -> String {
    format!("{base}/api/job-board-api?page={page}")
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
) -> Result<Option<Page>, PollError> {
    let mut all = Page::default();
    for number in 1.. {
        let url = url(base, number);
        let Some(body) = requests.page(number == 1, &url, JSON).await? else {
            return Ok(None);
        };
        let (page, more) = crate::fetch::cpu_bound(|| parse(origin, &body))
            .map_err(|source| PollError::Parse { url, source })?;
        all.postings.extend(page.postings);
        all.errors.extend(page.errors);
        if !more {
            break;
        }
    }
    Ok(Some(all))
}

#[derive(Deserialize)]
struct Listing {
    data: Vec<serde_json::Value>,
    #[serde(default)]
    links: Links,
}

#[derive(Deserialize, Default)]
struct Links {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Job {
    slug: String,
    company_name: String,
    title: String,
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    remote: bool,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    job_types: Vec<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    created_at: Option<i64>,
}

/// Parses one page; the flag says whether another page follows.
pub fn parse(origin: Origin<'_>, body: &[u8]) -> Result<(Page, bool), ParseError> {
    let listing: Listing = from_json(body)?;
    let more = listing.links.next.is_some() && !listing.data.is_empty();
    let mut page = Page::default();
    read_items("data", listing.data, &mut page, |job: Job| {
        Ok(Some(normalize(origin, job)))
    });
    Ok((page, more))
}

fn normalize(origin: Origin<'_>, job: Job) -> jobmatch_core::Posting {
    let mut p = origin.posting(&job.slug, &job.title, &job.company_name, &job.url);
    p.locations = unique_locations(job.location);
    p.workplace = if job.remote {
        Workplace::Remote
    } else {
        workplace_or_onsite(&p.locations)
    };
    p.description = job
        .description
        .as_deref()
        .map(html_to_text)
        .unwrap_or_default();
    p.employment_type = job.job_types.iter().find_map(|t| employment_type(t));
    // Arbeitnow lists levels among the tags.
    p.seniority = job
        .job_types
        .iter()
        .chain(&job.tags)
        .find_map(|t| seniority(t))
        .or_else(|| seniority(&p.title));
    p.tags = job.tags;
    p.posted_at = job.created_at.and_then(from_epoch_seconds);
    p
}
