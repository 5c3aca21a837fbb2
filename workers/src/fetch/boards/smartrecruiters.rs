//! SmartRecruiters: `GET /v1/companies/{id}/postings?limit&offset` lists postings
//! (`content[]`, `totalFound`) without their text; each description comes from the
//! detail call `GET /v1/companies/{id}/postings/{postingId}` (`jobAd.sections`).

use jobmatch_core::{Posting, Workplace};
use serde::Deserialize;

use super::JSON;
use crate::fetch::normalize::{employment_type, parse_time, seniority, unique_locations};
use crate::fetch::text::html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

/// Postings asked for per listing request (the API's maximum).
pub const PAGE_SIZE: usize = 100;

pub fn list_url(base: &str, company: &str, offset: usize) -> String {
    format!("{base}/v1/companies/{company}/postings?limit={PAGE_SIZE}&offset={offset}")
}

pub fn detail_url(base: &str, company: &str, id: &str) -> String {
    format!("{base}/v1/companies/{company}/postings/{id}")
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
    company: &str,
) -> Result<Option<Page>, PollError> {
    let mut all = Page::default();
    let mut offset = 0;
    loop {
        let url = list_url(base, company, offset);
        let Some(body) = requests.page(offset == 0, &url, JSON).await? else {
            return Ok(None);
        };
        let listing = crate::fetch::cpu_bound(|| parse_list(origin, &body))
            .map_err(|source| PollError::Parse { url, source })?;
        offset += listing.served;
        all.errors.extend(listing.page.errors);
        for mut posting in listing.page.postings {
            let native = posting.id.rsplit(':').next().unwrap_or_default().to_owned();
            let url = detail_url(base, company, &native);
            // A posting whose detail fails is still worth knowing; its text stays empty
            // and the error is reported.
            match requests.next(&url, JSON).await {
                Ok(body) => match crate::fetch::cpu_bound(|| parse_detail(&body)) {
                    Ok(detail) => detail.apply(&mut posting),
                    Err(e) => all.errors.push(crate::fetch::PostingError {
                        location: url,
                        message: e.message,
                    }),
                },
                Err(e @ PollError::TooManyPages { .. }) => return Err(e),
                Err(e) => all.errors.push(crate::fetch::PostingError {
                    location: url,
                    message: e.to_string(),
                }),
            }
            all.postings.push(posting);
        }
        if listing.served == 0 || offset >= listing.total {
            return Ok(Some(all));
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    content: Vec<serde_json::Value>,
    #[serde(default)]
    total_found: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    id: String,
    name: String,
    #[serde(default)]
    company: Option<Company>,
    #[serde(default)]
    released_date: Option<String>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    department: Option<Labelled>,
    #[serde(default)]
    function: Option<Labelled>,
    #[serde(default)]
    type_of_employment: Option<Labelled>,
    #[serde(default)]
    experience_level: Option<Labelled>,
}

#[derive(Deserialize)]
struct Company {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    identifier: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    remote: Option<bool>,
    #[serde(default)]
    hybrid: Option<bool>,
    #[serde(default)]
    full_location: Option<String>,
}

#[derive(Deserialize)]
struct Labelled {
    #[serde(default)]
    label: Option<String>,
}

/// One listing response.
pub struct List {
    /// Postings without descriptions yet.
    pub page: Page,
    /// Elements served, good or bad: the next offset moves by this much.
    pub served: usize,
    pub total: usize,
}

pub fn parse_list(origin: Origin<'_>, body: &[u8]) -> Result<List, ParseError> {
    let listing: Listing = from_json(body)?;
    let served = listing.content.len();
    let mut page = Page::default();
    read_items("content", listing.content, &mut page, |s: Summary| {
        Ok(Some(normalize(origin, s)))
    });
    Ok(List {
        page,
        served,
        total: listing.total_found,
    })
}

fn normalize(origin: Origin<'_>, s: Summary) -> Posting {
    let company_id = s
        .company
        .as_ref()
        .and_then(|c| c.identifier.clone())
        .unwrap_or_else(|| origin.identity.to_owned());
    let company = s
        .company
        .and_then(|c| c.name)
        .unwrap_or_else(|| company_id.clone());
    let url = format!("https://jobs.smartrecruiters.com/{company_id}/{}", s.id);
    let mut p = origin.posting(&s.id, &s.name, &company, &url);
    if let Some(l) = &s.location {
        let place = l.full_location.clone().unwrap_or_else(|| {
            [&l.city, &l.region, &l.country]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        });
        p.locations = unique_locations([place]);
        p.workplace = if l.remote == Some(true) {
            Workplace::Remote
        } else if l.hybrid == Some(true) {
            Workplace::Hybrid
        } else if p.locations.is_empty() {
            Workplace::Unknown
        } else {
            Workplace::Onsite
        };
    }
    p.tags = [s.department, s.function]
        .into_iter()
        .flatten()
        .filter_map(|l| l.label)
        .collect();
    p.employment_type = s
        .type_of_employment
        .and_then(|t| t.label)
        .as_deref()
        .and_then(employment_type);
    p.seniority = s
        .experience_level
        .and_then(|l| l.label)
        .as_deref()
        .and_then(seniority)
        .or_else(|| seniority(&p.title));
    p.posted_at = s.released_date.as_deref().and_then(parse_time);
    p
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DetailDoc {
    #[serde(default)]
    job_ad: Option<JobAd>,
    #[serde(default)]
    posting_url: Option<String>,
}

#[derive(Deserialize)]
struct JobAd {
    #[serde(default)]
    sections: serde_json::Map<String, serde_json::Value>,
}

/// What the detail call adds to a posting.
#[derive(Debug, Default)]
pub struct Detail {
    pub description: String,
    pub url: Option<String>,
}

impl Detail {
    fn apply(self, posting: &mut Posting) {
        posting.description = self.description;
        if let Some(url) = self.url {
            posting.url = url;
        }
    }
}

/// The sections of the job ad in the board's order (`companyDescription`,
/// `jobDescription`, `qualifications`, `additionalInformation`), each as title + text.
pub fn parse_detail(body: &[u8]) -> Result<Detail, ParseError> {
    let doc: DetailDoc = from_json(body)?;
    let mut parts = Vec::new();
    for key in [
        "jobDescription",
        "qualifications",
        "additionalInformation",
        "companyDescription",
    ] {
        let Some(section) = doc.job_ad.as_ref().and_then(|a| a.sections.get(key)) else {
            continue;
        };
        let title = section
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let text = section
            .get("text")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let text = html_to_text(text);
        if !text.is_empty() {
            parts.push(if title.is_empty() {
                text
            } else {
                format!("{title}\n{text}")
            });
        }
    }
    Ok(Detail {
        description: parts.join("\n\n"),
        url: doc.posting_url,
    })
}
