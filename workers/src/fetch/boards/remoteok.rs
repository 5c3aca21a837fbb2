//! RemoteOK: `GET /api`, a bare array whose first element is a legal notice (skipped),
//! then every job; salaries in USD with 0 meaning unknown, times in epoch seconds, and
//! text sometimes garbled by a double encoding (repaired). Attribution is required:
//! each posting links back to remoteok.com.

use jobmatch_core::{Salary, Workplace};
use serde::Deserialize;

use super::JSON;
use crate::fetch::normalize::{
    clean_line, from_epoch_seconds, repair_mojibake, seniority, unique_locations,
};
use crate::fetch::text::html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

pub fn url(base: &str) -> String {
    format!("{base}/api")
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
) -> Result<Option<Page>, PollError> {
    requests
        .single(url(base), JSON, |body| parse(origin, body))
        .await
}

/// The number, or the string of a number, RemoteOK writes either.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Number {
    fn value(&self) -> Option<f64> {
        match self {
            Number::Int(n) => Some(*n as f64),
            Number::Float(f) => Some(*f),
            Number::Text(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct Job {
    id: Number,
    position: String,
    company: String,
    url: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    salary_min: Option<Number>,
    #[serde(default)]
    salary_max: Option<Number>,
    #[serde(default)]
    epoch: Option<Number>,
    #[serde(default)]
    description: Option<String>,
}

pub fn parse(origin: Origin<'_>, body: &[u8]) -> Result<Page, ParseError> {
    let items: Vec<serde_json::Value> = from_json(body)?;
    let mut page = Page::default();
    let jobs = items
        .into_iter()
        .map(|item| {
            // The legal notice: an object without an `id`, kept out of the count.
            if item.get("legal").is_some() && item.get("id").is_none() {
                serde_json::Value::Null
            } else {
                item
            }
        })
        .collect();
    read_items("", jobs, &mut page, |job: Option<Job>| {
        Ok(job.map(|j| normalize(origin, j)))
    });
    // The notice is element 0: `path[0]` locations still match the board's array.
    Ok(page)
}

fn normalize(origin: Origin<'_>, job: Job) -> jobmatch_core::Posting {
    let native = match &job.id {
        Number::Text(s) => s.trim().to_owned(),
        n => n.value().map(|v| format!("{v:.0}")).unwrap_or_default(),
    };
    let mut p = origin.posting(
        &native,
        &repair_mojibake(&job.position),
        &repair_mojibake(&job.company),
        &job.url,
    );
    let location = job
        .location
        .as_deref()
        .map(repair_mojibake)
        .unwrap_or_default();
    p.locations = unique_locations([location.into_owned()]);
    p.workplace = Workplace::Remote;
    p.description = job
        .description
        .as_deref()
        .map(|d| html_to_text(&repair_mojibake(d)))
        .unwrap_or_default();
    p.tags = job
        .tags
        .iter()
        .map(|t| clean_line(t))
        .filter(|t| !t.is_empty())
        .collect();
    p.seniority = seniority(&p.title);
    let amount = |n: &Option<Number>| n.as_ref().and_then(Number::value).filter(|v| *v > 0.0);
    let (min, max) = (amount(&job.salary_min), amount(&job.salary_max));
    if min.is_some() || max.is_some() {
        p.salary = Some(Salary {
            min,
            max,
            currency: Some("USD".to_owned()),
            interval: Some("year".to_owned()),
        });
    }
    p.posted_at = job
        .epoch
        .as_ref()
        .and_then(Number::value)
        .and_then(|s| from_epoch_seconds(s as i64));
    p
}
