//! Career pages without an API: the schema.org `JobPosting` objects in a page's JSON-LD
//! (`<script type="application/ld+json">`, alone, in arrays or in an `@graph`).
//! `jobLocationType: TELECOMMUTE` means remote; `baseSalary` is a `MonetaryAmount`; a
//! posting past its `validThrough` is left out.

use jobmatch_core::{Posting, Salary, Workplace};
use serde_json::Value;
use time::OffsetDateTime;

use crate::fetch::normalize::{
    clean_line, employment_type, parse_time, salary_interval, seniority, unique_locations,
    workplace_or_onsite,
};
use crate::fetch::text::html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, PostingError, Requests};

const ACCEPT: &str = "text/html, application/xhtml+xml;q=0.9";

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    url: &str,
    company: Option<&str>,
) -> Result<Option<Page>, PollError> {
    requests
        .single(url.to_owned(), ACCEPT, |body| {
            parse(origin, body, url, company)
        })
        .await
}

/// Deepest JSON-LD nesting searched for `JobPosting` objects.
const MAX_DEPTH: usize = 16;

/// The text of every `<script type="application/ld+json">`, read with html5ever's
/// tokenizer alone: linear in the page, however deeply its elements nest (a tree
/// builder is quadratic on 100,000 nested elements).
fn ld_json_blocks(html: &str) -> Vec<String> {
    use std::cell::{Cell, RefCell};

    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::states::RawKind;
    use html5ever::tokenizer::{
        BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer,
    };

    #[derive(Default)]
    struct Scripts {
        in_ld_json: Cell<bool>,
        current: RefCell<String>,
        blocks: RefCell<Vec<String>>,
    }

    impl TokenSink for Scripts {
        type Handle = ();

        fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
            match token {
                Token::TagToken(tag) if &*tag.name == "script" => {
                    if tag.kind == TagKind::StartTag {
                        let ld_json = tag.attrs.iter().any(|a| {
                            &*a.name.local == "type"
                                && a.value.trim().eq_ignore_ascii_case("application/ld+json")
                        });
                        self.in_ld_json.set(ld_json);
                        self.current.borrow_mut().clear();
                        // Script text is raw: `<` inside it is not a tag.
                        return TokenSinkResult::RawData(RawKind::ScriptData);
                    }
                    if self.in_ld_json.replace(false) {
                        let block = std::mem::take(&mut *self.current.borrow_mut());
                        self.blocks.borrow_mut().push(block);
                    }
                }
                Token::CharacterTokens(text) if self.in_ld_json.get() => {
                    self.current.borrow_mut().push_str(&text);
                }
                _ => {}
            }
            TokenSinkResult::Continue
        }
    }

    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(Scripts::default(), Default::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.blocks.take()
}

pub fn parse(
    origin: Origin<'_>,
    body: &[u8],
    page_url: &str,
    company: Option<&str>,
) -> Result<Page, ParseError> {
    let html = String::from_utf8_lossy(body);
    let blocks = ld_json_blocks(&html);
    if blocks.is_empty() {
        return Err(ParseError::new(
            "no <script type=\"application/ld+json\"> in the page",
        ));
    }
    let mut page = Page::default();
    for (index, text) in blocks.iter().enumerate() {
        let value: Value = match serde_json::from_str(text.trim()) {
            Ok(v) => v,
            Err(e) => {
                page.errors.push(PostingError {
                    location: format!("JSON-LD block {index}"),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut found = Vec::new();
        collect_job_postings(&value, 0, &mut found);
        for (n, job) in found.into_iter().enumerate() {
            match normalize(origin, job, page_url, company) {
                Ok(Some(p)) => page.postings.push(p),
                Ok(None) => {}
                Err(message) => page.errors.push(PostingError {
                    location: format!("JSON-LD block {index}, JobPosting {n}"),
                    message,
                }),
            }
        }
    }
    Ok(page)
}

fn is_job_posting(v: &Value) -> bool {
    match v.get("@type") {
        Some(Value::String(t)) => t == "JobPosting",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "JobPosting"),
        _ => false,
    }
}

fn collect_job_postings<'v>(v: &'v Value, depth: usize, out: &mut Vec<&'v Value>) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Array(items) => items
            .iter()
            .for_each(|i| collect_job_postings(i, depth + 1, out)),
        Value::Object(_) if is_job_posting(v) => out.push(v),
        Value::Object(map) => {
            for key in ["@graph", "itemListElement", "item", "mainEntity"] {
                if let Some(inner) = map.get(key) {
                    collect_job_postings(inner, depth + 1, out);
                }
            }
        }
        _ => {}
    }
}

/// A text value, or the `name` of an object, or the first of an array.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(clean_line(s)).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => text(o.get("name")).or_else(|| text(o.get("value"))),
        Value::Array(a) => a.iter().find_map(|v| text(Some(v))),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.replace([',', ' '], "").parse().ok(),
        _ => None,
    }
}

fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    }
}

/// `Place` → "Berlin, BE, DE" from its `PostalAddress` (or its name).
fn place(v: &Value) -> Option<String> {
    let address = v.get("address").unwrap_or(v);
    if let Value::String(s) = address {
        return Some(s.clone());
    }
    let parts: Vec<String> = ["addressLocality", "addressRegion", "addressCountry"]
        .into_iter()
        .filter_map(|k| text(address.get(k)))
        .collect();
    if parts.is_empty() {
        text(v.get("name"))
    } else {
        Some(parts.join(", "))
    }
}

fn normalize(
    origin: Origin<'_>,
    job: &Value,
    page_url: &str,
    company: Option<&str>,
) -> Result<Option<Posting>, String> {
    let title = text(job.get("title")).ok_or("JobPosting without a title")?;
    if let Some(valid_through) = text(job.get("validThrough"))
        .as_deref()
        .and_then(parse_time)
        && valid_through < OffsetDateTime::now_utc()
    {
        return Ok(None);
    }
    let employer = company
        .map(str::to_owned)
        .or_else(|| text(job.get("hiringOrganization")))
        .unwrap_or_else(|| origin.identity.to_owned());
    let url = text(job.get("url")).unwrap_or_else(|| page_url.to_owned());
    let native = job
        .get("identifier")
        .and_then(|i| text(i.get("value")).or_else(|| text(Some(i))))
        .unwrap_or_else(|| crate::fetch::dedup::short_hash(&format!("{url}\n{title}")));
    let mut p = origin.posting(&native, &title, &employer, &url);
    p.locations = unique_locations(
        as_list(job.get("jobLocation"))
            .into_iter()
            .filter_map(place),
    );
    let remote_type =
        text(job.get("jobLocationType")).is_some_and(|t| t.eq_ignore_ascii_case("TELECOMMUTE"));
    if remote_type {
        p.locations.extend(unique_locations(
            as_list(job.get("applicantLocationRequirements"))
                .into_iter()
                .filter_map(place),
        ));
    }
    p.workplace = if remote_type {
        Workplace::Remote
    } else {
        workplace_or_onsite(&p.locations)
    };
    p.description = match job.get("description") {
        Some(Value::String(html)) => html_to_text(&html_escape::decode_html_entities(html)),
        _ => String::new(),
    };
    p.employment_type = as_list(job.get("employmentType"))
        .into_iter()
        .find_map(|t| t.as_str().and_then(employment_type));
    p.seniority = text(job.get("experienceRequirements"))
        .as_deref()
        .and_then(seniority)
        .or_else(|| seniority(&p.title));
    if let Some(salary) = job.get("baseSalary") {
        let value = salary.get("value").unwrap_or(salary);
        let (min, max) = match value {
            Value::Object(_) => (
                number(value.get("minValue")).or(number(value.get("value"))),
                number(value.get("maxValue")).or(number(value.get("value"))),
            ),
            v => (number(Some(v)), number(Some(v))),
        };
        if min.is_some() || max.is_some() {
            p.salary = Some(Salary {
                min,
                max,
                currency: text(salary.get("currency")),
                interval: text(value.get("unitText"))
                    .as_deref()
                    .and_then(salary_interval),
            });
        }
    }
    p.tags = as_list(job.get("occupationalCategory"))
        .into_iter()
        .chain(as_list(job.get("industry")))
        .filter_map(|v| text(Some(v)))
        .collect();
    p.posted_at = text(job.get("datePosted")).as_deref().and_then(parse_time);
    Ok(Some(p))
}
