//! Hacker News "Ask HN: Who is hiring?": the month's thread is the newest story by
//! `whoishiring` with that title (`GET /api/v1/search_by_date?tags=story,author_whoishiring`),
//! its comments come from `GET /api/v1/items/{id}`; each top-level comment is one
//! posting whose first line reads "Company | Role | Location | REMOTE | salary | ...".

use jobmatch_core::{Posting, Workplace};
use serde::Deserialize;

use super::JSON;
use crate::fetch::normalize::{
    clean_line, employment_type, parse_time, salary_from_text, seniority, workplace_from_location,
};
use crate::fetch::text::html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, Requests, from_json, read_items};

pub fn search_url(base: &str) -> String {
    format!("{base}/api/v1/search_by_date?tags=story,author_whoishiring&hitsPerPage=20")
}

pub fn item_url(base: &str, id: u64) -> String {
    format!("{base}/api/v1/items/{id}")
}

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    base: &str,
) -> Result<Option<Page>, PollError> {
    let url = search_url(base);
    let Some(body) = requests.first(&url, JSON).await? else {
        return Ok(None);
    };
    let thread =
        crate::fetch::cpu_bound(|| parse_search(&body)).map_err(|source| PollError::Parse {
            url: url.clone(),
            source,
        })?;
    let Some(thread) = thread else {
        return Err(PollError::Parse {
            url,
            source: ParseError::new("no \"Ask HN: Who is hiring?\" story among the results"),
        });
    };
    let url = item_url(base, thread);
    let body = requests.next(&url, JSON).await?;
    crate::fetch::cpu_bound(|| parse_thread(origin, &body))
        .map(Some)
        .map_err(|source| PollError::Parse { url, source })
}

#[derive(Deserialize)]
struct Search {
    hits: Vec<Hit>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hit {
    #[serde(rename = "objectID")]
    object_id: String,
    #[serde(default)]
    title: Option<String>,
}

/// The id of the newest "Who is hiring?" thread among the search results.
pub fn parse_search(body: &[u8]) -> Result<Option<u64>, ParseError> {
    let search: Search = from_json(body)?;
    Ok(search
        .hits
        .into_iter()
        .filter(|h| {
            h.title
                .as_deref()
                .is_some_and(|t| t.to_lowercase().contains("who is hiring"))
        })
        .find_map(|h| h.object_id.parse().ok()))
}

#[derive(Deserialize)]
struct Thread {
    #[serde(default)]
    children: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
}

/// Every top-level comment of the thread that reads as a posting. Deleted comments are
/// skipped; one without a "Company | Role | ..." line is reported.
pub fn parse_thread(origin: Origin<'_>, body: &[u8]) -> Result<Page, ParseError> {
    let thread: Thread = from_json(body)?;
    let mut page = Page::default();
    read_items("children", thread.children, &mut page, |c: Comment| {
        let Some(text) = c.text.filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        normalize(origin, c.id, &text, c.created_at.as_deref()).map(Some)
    });
    Ok(page)
}

/// What one field of the first line says.
enum Field {
    Workplace(Workplace),
    Salary,
    Employment(String),
    Link,
    Other,
}

fn classify(field: &str) -> Field {
    let lower = field.to_lowercase();
    if lower.starts_with("http") || lower.starts_with("www.") {
        return Field::Link;
    }
    if let Some(workplace) = workplace_from_location(field)
        && (lower.len() < 40 || workplace != Workplace::Onsite)
    {
        return Field::Workplace(workplace);
    }
    if field.chars().any(|c| c.is_ascii_digit()) && field.contains(['$', '€', '£', 'k', 'K']) {
        return Field::Salary;
    }
    let words = [
        "full-time",
        "full time",
        "fulltime",
        "part-time",
        "part time",
        "contract",
        "intern",
        "permanent",
    ];
    if words.iter().any(|w| lower.contains(w)) {
        return Field::Employment(
            employment_type(&lower.replace(" or ", " ")).unwrap_or(lower.clone()),
        );
    }
    Field::Other
}

const ROLE_WORDS: &[&str] = &[
    "engineer",
    "developer",
    "scientist",
    "designer",
    "manager",
    "lead",
    "architect",
    "sre",
    "devops",
    "analyst",
    "researcher",
    "programmer",
    "head of",
    "director",
    "cto",
    "founding",
    "intern",
    "consultant",
    "administrator",
    "specialist",
    "product",
];

fn normalize(
    origin: Origin<'_>,
    id: u64,
    html: &str,
    created_at: Option<&str>,
) -> Result<Posting, String> {
    let first_html = html.split("<p>").next().unwrap_or_default();
    let first = clean_line(&html_to_text(first_html).replace('\n', " "));
    let fields: Vec<&str> = first
        .split('|')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if fields.len() < 2 {
        return Err(format!(
            "no \"Company | Role | Location\" line: {:?}",
            first.chars().take(80).collect::<String>()
        ));
    }
    let company = strip_parenthesized_links(fields[0]);
    let rest = &fields[1..];
    let role_at = rest
        .iter()
        .position(|f| {
            let lower = f.to_lowercase();
            ROLE_WORDS.iter().any(|w| lower.contains(w))
        })
        .unwrap_or(0);
    let url = format!("https://news.ycombinator.com/item?id={id}");
    let mut p = origin.posting(id, rest[role_at], &company, &url);
    let (mut workplaces, mut places, mut regions) = (Vec::new(), Vec::new(), Vec::new());
    for (i, field) in rest.iter().enumerate() {
        if i == role_at {
            continue;
        }
        match classify(field) {
            Field::Workplace(w) => {
                workplaces.push(w);
                // "REMOTE (EU)" names a region too.
                if let Some(region) = field
                    .split_once('(')
                    .map(|(_, r)| r.trim_end_matches(')').trim())
                    && !region.is_empty()
                {
                    regions.push(region.to_owned());
                }
            }
            Field::Salary if p.salary.is_none() => p.salary = salary_from_text(field),
            Field::Employment(t) if p.employment_type.is_none() => p.employment_type = Some(t),
            Field::Link | Field::Salary | Field::Employment(_) => {}
            Field::Other => places.push((*field).to_owned()),
        }
    }
    p.locations = crate::fetch::normalize::unique_locations(places.into_iter().chain(regions));
    p.workplace = if workplaces.contains(&Workplace::Hybrid) {
        Workplace::Hybrid
    } else if workplaces.contains(&Workplace::Remote) {
        Workplace::Remote
    } else if workplaces.contains(&Workplace::Onsite) || !p.locations.is_empty() {
        Workplace::Onsite
    } else {
        Workplace::Unknown
    };
    p.description = html_to_text(html);
    p.seniority = seniority(&p.title);
    p.posted_at = created_at.and_then(parse_time);
    Ok(p)
}

/// `Acme (https://acme.dev)` → `Acme`.
fn strip_parenthesized_links(text: &str) -> String {
    match text.split_once('(') {
        Some((name, rest))
            if rest.contains("http") || rest.contains("www.") || rest.contains(".com") =>
        {
            clean_line(name)
        }
        _ => clean_line(text),
    }
}
