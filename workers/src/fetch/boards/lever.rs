//! Lever postings: `GET /v0/postings/{site}?mode=json&skip=N&limit=M` (also on the EU
//! host), a bare array paged with `skip`/`limit`, dates in epoch milliseconds, text
//! already plain in `descriptionPlain`.

use jobmatch_core::Salary;
use serde::Deserialize;

use super::JSON;
use crate::fetch::normalize::{
    employment_type, from_epoch_millis, salary_interval, seniority, unique_locations,
    workplace_from_location, workplace_or_onsite, workplace_word,
};
use crate::fetch::text::{fold_whitespace, html_to_text};
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

/// Postings asked for per request.
pub const PAGE_SIZE: usize = 100;

pub fn url(base: &str, site: &str, skip: usize) -> String {
    format!("{base}/v0/postings/{site}?mode=json&skip={skip}&limit={PAGE_SIZE}")
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
    site: &str,
) -> Result<Option<Page>, PollError> {
    let mut all = Page::default();
    let mut skip = 0;
    loop {
        let url = url(base, site, skip);
        let Some(body) = requests.page(skip == 0, &url, JSON).await? else {
            return Ok(None);
        };
        let (page, served) = crate::fetch::cpu_bound(|| parse(origin, &body))
            .map_err(|source| PollError::Parse { url, source })?;
        all.postings.extend(page.postings);
        all.errors.extend(page.errors);
        if served < PAGE_SIZE {
            return Ok(Some(all));
        }
        skip += served;
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    id: String,
    text: String,
    hosted_url: String,
    #[serde(default)]
    created_at: Option<i64>,
    #[serde(default)]
    categories: Categories,
    #[serde(default)]
    workplace_type: Option<String>,
    #[serde(default)]
    description_plain: Option<String>,
    #[serde(default)]
    lists: Vec<List>,
    #[serde(default)]
    additional_plain: Option<String>,
    #[serde(default)]
    salary_range: Option<SalaryRange>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Categories {
    location: Option<String>,
    commitment: Option<String>,
    team: Option<String>,
    department: Option<String>,
    #[serde(default)]
    all_locations: Vec<String>,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    text: String,
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct SalaryRange {
    min: Option<f64>,
    max: Option<f64>,
    currency: Option<String>,
    interval: Option<String>,
}

/// Parses one page; also returns how many elements the board served, which says
/// whether another page may follow.
pub fn parse(origin: Origin<'_>, body: &[u8]) -> Result<(Page, usize), ParseError> {
    let jobs: Vec<serde_json::Value> = from_json(body)?;
    let served = jobs.len();
    let mut page = Page::default();
    read_items("", jobs, &mut page, |job: Job| {
        Ok(Some(normalize(origin, job)))
    });
    Ok((page, served))
}

fn normalize(origin: Origin<'_>, job: Job) -> jobmatch_core::Posting {
    let c = job.categories;
    let mut p = origin.posting(&job.id, &job.text, origin.identity, &job.hosted_url);
    p.locations = unique_locations(c.location.clone().into_iter().chain(c.all_locations));
    p.workplace = job
        .workplace_type
        .as_deref()
        .and_then(workplace_word)
        .or_else(|| c.location.as_deref().and_then(workplace_from_location))
        .unwrap_or_else(|| workplace_or_onsite(&p.locations));
    let mut description = job.description_plain.unwrap_or_default();
    for list in job.lists {
        description.push_str(&format!(
            "\n\n{}\n{}",
            list.text,
            html_to_text(&list.content)
        ));
    }
    if let Some(additional) = job.additional_plain {
        description.push_str("\n\n");
        description.push_str(&additional);
    }
    p.description = fold_whitespace(&description);
    p.tags = [c.team, c.department].into_iter().flatten().collect();
    p.employment_type = c.commitment.as_deref().and_then(employment_type);
    p.seniority = seniority(&p.title);
    p.salary = job.salary_range.map(|s| Salary {
        min: s.min,
        max: s.max,
        currency: s.currency,
        interval: s.interval.as_deref().and_then(salary_interval),
    });
    p.posted_at = job.created_at.and_then(from_epoch_millis);
    p
}
