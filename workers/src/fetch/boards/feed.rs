//! RSS and Atom feeds of job postings (read by `feed-rs`): one entry, one posting. The
//! employer is the source's `company`, else the entry's author, else the `Company:`
//! prefix many job feeds put in the title, else the feed's title.

use jobmatch_core::Posting;

use crate::fetch::normalize::{clean_line, seniority, workplace_from_location};
use crate::fetch::text::html_to_text;
use crate::fetch::{Origin, Page, ParseError, PollError, PostingError, Requests};

const ACCEPT: &str =
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8";

pub async fn poll(
    requests: &mut Requests<'_>,
    origin: Origin<'_>,
    url: &str,
    company: Option<&str>,
) -> Result<Option<Page>, PollError> {
    requests
        .single(url.to_owned(), ACCEPT, |body| parse(origin, body, company))
        .await
}

pub fn parse(origin: Origin<'_>, body: &[u8], company: Option<&str>) -> Result<Page, ParseError> {
    let feed = feed_rs::parser::parse(body)
        .map_err(|e| ParseError::new(format!("not an RSS or Atom feed: {e}")))?;
    let feed_title = feed.title.map(|t| clean_line(&t.content));
    let mut page = Page::default();
    for (index, entry) in feed.entries.into_iter().enumerate() {
        let title = entry
            .title
            .map(|t| clean_line(&t.content))
            .unwrap_or_default();
        let url = entry
            .links
            .first()
            .map(|l| l.href.clone())
            .unwrap_or_default();
        if title.is_empty() || entry.id.trim().is_empty() {
            page.errors.push(PostingError {
                location: format!("entry {index}"),
                message: "an entry needs a title and an id (or link)".to_owned(),
            });
            continue;
        }
        let author = entry
            .authors
            .first()
            .and_then(|a| a.name.as_deref())
            .map(clean_line)
            .filter(|a| !a.is_empty());
        let (employer, role) = match (company, author) {
            (Some(c), _) => (c.to_owned(), title.clone()),
            (None, Some(a)) => (a, title.clone()),
            (None, None) => match title.split_once(": ") {
                Some((c, role)) if !role.trim().is_empty() => (c.to_owned(), role.to_owned()),
                _ => (feed_title.clone().unwrap_or_default(), title.clone()),
            },
        };
        let mut p: Posting = origin.posting(
            crate::fetch::dedup::short_hash(entry.id.trim()),
            &role,
            &employer,
            &url,
        );
        let html = entry
            .content
            .and_then(|c| c.body)
            .or(entry.summary.map(|s| s.content))
            .unwrap_or_default();
        p.description = html_to_text(&html);
        p.workplace = workplace_from_location(&p.title).unwrap_or_default();
        p.tags = entry
            .categories
            .into_iter()
            .map(|c| clean_line(&c.term))
            .filter(|t| !t.is_empty())
            .collect();
        p.seniority = seniority(&p.title);
        let to_time = |seconds: i64| time::OffsetDateTime::from_unix_timestamp(seconds).ok();
        p.posted_at = entry
            .published
            .or(entry.updated)
            .and_then(|t| to_time(t.timestamp()));
        p.updated_at = entry.updated.and_then(|t| to_time(t.timestamp()));
        page.postings.push(p);
    }
    Ok(page)
}
