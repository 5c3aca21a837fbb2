//! Lever postings: `GET /v0/postings/{site}?mode=json&skip=N&limit=M`, a bare array,
//! dates in epoch milliseconds, text already plain in `descriptionPlain`.

use jobmatch_core::{Posting, Salary, Workplace};
use serde::Deserialize;
use time::OffsetDateTime;

use super::text::{fold_whitespace, html_to_text};
use super::{BoardPage, PostingError, workplace_from_location};

/// Postings asked for per request.
pub const PAGE_SIZE: usize = 100;

pub fn url(base: &str, site: &str, skip: usize) -> String {
    format!("{base}/v0/postings/{site}?mode=json&skip={skip}&limit={PAGE_SIZE}")
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

/// Parses one page. `complete` is false when the page was full (there may be more).
pub fn parse(source: &str, site: &str, body: &[u8]) -> Result<BoardPage, serde_json::Error> {
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(body)?;
    let mut page = BoardPage {
        complete: jobs.len() < PAGE_SIZE,
        ..Default::default()
    };
    for (index, value) in jobs.into_iter().enumerate() {
        match serde_json::from_value::<Job>(value) {
            Ok(job) => page.postings.push(normalize(source, site, job)),
            Err(e) => page.errors.push(PostingError {
                index,
                message: e.to_string(),
            }),
        }
    }
    Ok(page)
}

fn normalize(source: &str, site: &str, job: Job) -> Posting {
    let c = job.categories;
    let mut locations = c.all_locations;
    if let Some(location) = &c.location
        && !locations.contains(location)
    {
        locations.insert(0, location.clone());
    }
    let workplace = match job.workplace_type.as_deref() {
        Some("remote") => Workplace::Remote,
        Some("hybrid") => Workplace::Hybrid,
        Some("on-site" | "onsite") => Workplace::Onsite,
        _ => c
            .location
            .as_deref()
            .and_then(workplace_from_location)
            .unwrap_or(if locations.is_empty() {
                Workplace::Unknown
            } else {
                Workplace::Onsite
            }),
    };
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
    let posted_at = job
        .created_at
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok());
    Posting {
        id: format!("lever:{site}:{}", job.id),
        source: source.to_owned(),
        title: job.text.trim().to_owned(),
        company: site.to_owned(),
        locations,
        workplace,
        url: job.hosted_url,
        description: fold_whitespace(&description),
        tags: [c.team, c.department].into_iter().flatten().collect(),
        employment_type: c.commitment,
        salary: job.salary_range.map(|s| Salary {
            min: s.min,
            max: s.max,
            currency: s.currency,
            interval: s.interval,
        }),
        posted_at,
        updated_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_a_posting() {
        let body = br#"[{"id": "5f1c-77", "text": "Platform Engineer", "hostedUrl": "https://jobs.lever.co/globex/5f1c-77",
          "createdAt": 1730000000000, "workplaceType": "hybrid",
          "categories": {"location": "Berlin", "commitment": "Full-time", "team": "Platform", "allLocations": ["Berlin", "Hamburg"]},
          "descriptionPlain": "Run our clusters.", "lists": [{"text": "You bring", "content": "<li>Go</li><li>Terraform</li>"}],
          "additionalPlain": "Visa sponsorship available.",
          "salaryRange": {"min": 70000, "max": 90000, "currency": "EUR", "interval": "per-year-salary"}}]"#;
        let page = parse("globex-src", "globex", body).unwrap();
        assert!(page.complete);
        let p = &page.postings[0];
        assert_eq!(p.id, "lever:globex:5f1c-77");
        assert_eq!(p.workplace, Workplace::Hybrid);
        assert_eq!(p.locations, ["Berlin", "Hamburg"]);
        assert_eq!(p.employment_type.as_deref(), Some("Full-time"));
        assert!(
            p.description
                .starts_with("Run our clusters.\n\nYou bring\nGo\n\nTerraform"),
            "{}",
            p.description
        );
        assert!(p.description.ends_with("Visa sponsorship available."));
        assert_eq!(p.salary.as_ref().unwrap().max, Some(90000.0));
        assert_eq!(p.posted_at.unwrap().unix_timestamp(), 1_730_000_000);
    }
}
