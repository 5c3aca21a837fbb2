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
    /// Each pay tier (by level or place) with its own components.
    #[serde(default)]
    compensation_tiers: Vec<Tier>,
}

#[derive(Deserialize)]
struct Tier {
    #[serde(default)]
    components: Vec<Component>,
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

fn is_salary(c: &Component) -> bool {
    c.compensation_type
        .as_deref()
        .is_none_or(|t| t.eq_ignore_ascii_case("salary"))
}

/// The salary of the summary's components, else the range over every tier's salary
/// components in the first one's currency and interval (tiers by level or place: the
/// lowest minimum to the highest maximum).
fn salary(c: Compensation) -> Option<Salary> {
    let of = |c: &Component| Salary {
        min: c.min_value,
        max: c.max_value,
        currency: c.currency_code.clone(),
        interval: c.interval.as_deref().and_then(salary_interval),
    };
    if let Some(summary) = c.summary_components.iter().find(|c| is_salary(c)) {
        return Some(of(summary));
    }
    let mut tiers = c
        .compensation_tiers
        .iter()
        .flat_map(|t| &t.components)
        .filter(|c| is_salary(c));
    let mut range = of(tiers.next()?);
    for tier in tiers.map(of) {
        if tier.currency != range.currency || tier.interval != range.interval {
            continue;
        }
        let lowest = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let highest = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        range.min = lowest(range.min, tier.min);
        range.max = highest(range.max, tier.max);
    }
    Some(range)
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
    p.salary = job.compensation.and_then(salary);
    p.posted_at = job.published_at.as_deref().and_then(parse_time);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salary_from_the_tiers_when_the_summary_has_none() {
        let body = br#"{"jobs": [{"id": "1", "title": "Engineer", "jobUrl": "https://jobs.ashbyhq.com/n/1",
            "compensation": {"summaryComponents": [{"compensationType": "EquityPercentage", "minValue": 0.1}],
              "compensationTiers": [
                {"components": [{"compensationType": "Salary", "interval": "1 YEAR", "currencyCode": "EUR", "minValue": 70000, "maxValue": 85000}]},
                {"components": [{"compensationType": "Salary", "interval": "1 YEAR", "currencyCode": "EUR", "minValue": 80000, "maxValue": 98000},
                                {"compensationType": "Bonus", "currencyCode": "EUR", "maxValue": 10000}]}]}}]}"#;
        let origin = Origin {
            source: "nimbus",
            kind: "ashby",
            identity: "nimbus",
        };
        let page = parse(origin, body).expect("page");
        let salary = page.postings[0].salary.clone().expect("salary");
        assert_eq!((salary.min, salary.max), (Some(70_000.0), Some(98_000.0)));
        assert_eq!(salary.currency.as_deref(), Some("EUR"));
        assert_eq!(salary.interval.as_deref(), Some("year"));
    }
}
