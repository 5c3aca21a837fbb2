//! What a notice says: a subject, a plain-text body, an HTML body (everything from the
//! posting escaped), and Slack Block Kit blocks (mrkdwn-escaped).

use jobmatch_core::Workplace;
use jobmatch_core::messages::MatchFound;
use serde_json::{Value, json};

/// Longest description excerpt shown in a notice.
const EXCERPT_CHARS: usize = 400;

pub fn subject(m: &MatchFound) -> String {
    format!("New match: {} at {}", m.posting.title, m.posting.company)
}

fn place(m: &MatchFound) -> String {
    let p = &m.posting;
    let workplace = match p.workplace {
        Workplace::Remote => "Remote",
        Workplace::Hybrid => "Hybrid",
        Workplace::Onsite => "On-site",
        Workplace::Unknown => "",
    };
    let locations = p.locations.join("; ");
    match (workplace.is_empty(), locations.is_empty()) {
        (true, _) => locations,
        (false, true) => workplace.to_owned(),
        (false, false) => format!("{workplace} · {locations}"),
    }
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

fn why(m: &MatchFound) -> Vec<String> {
    let e = &m.explanation;
    let mut lines = vec![format!(
        "Similarity {:.2} (at least {:.2})",
        e.score, e.min_score
    )];
    if !e.matched_terms.is_empty() {
        lines.push(format!("Matched: {}", e.matched_terms.join(", ")));
    }
    if !e.missing_terms.is_empty() {
        lines.push(format!("Missing: {}", e.missing_terms.join(", ")));
    }
    lines.extend(e.filters.iter().cloned());
    lines
}

pub fn text(m: &MatchFound) -> String {
    let p = &m.posting;
    format!(
        "{} at {}\n{}\n{}\n\nWhy it matched:\n{}\n\n{}\n\n— jobmatch, subscription {}\n",
        p.title,
        p.company,
        place(m),
        p.url,
        why(m)
            .iter()
            .map(|l| format!("  - {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        excerpt(&p.description),
        m.subscription
    )
}

pub fn html(m: &MatchFound) -> String {
    use html_escape::{encode_double_quoted_attribute as attr, encode_text as esc};
    let p = &m.posting;
    let why: String = why(m)
        .iter()
        .map(|l| format!("<li>{}</li>", esc(l)))
        .collect();
    format!(
        "<!doctype html><html><body>\
         <h2><a href=\"{url}\">{title}</a> at {company}</h2>\
         <p>{place}</p>\
         <h3>Why it matched</h3><ul>{why}</ul>\
         <p>{excerpt}</p>\
         <p style=\"color:#888\">jobmatch · subscription {sub}</p>\
         </body></html>",
        url = attr(&p.url),
        title = esc(&p.title),
        company = esc(&p.company),
        place = esc(&place(m)),
        excerpt = esc(&excerpt(&p.description)),
        sub = esc(&m.subscription),
    )
}

/// Slack's mrkdwn reserves `&`, `<` and `>`.
fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An incoming-webhook body: `text` as the notification fallback, Block Kit for display.
pub fn slack(m: &MatchFound) -> Value {
    let p = &m.posting;
    let url = p.url.replace('|', "%7C").replace('>', "%3E");
    json!({
        "text": mrkdwn(&subject(m)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                "text": format!("*<{url}|{}>* at {}\n{}", mrkdwn(&p.title), mrkdwn(&p.company), mrkdwn(&place(m)))}},
            {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(&excerpt(&p.description))}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn(&why(m).join(" · "))}]}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobmatch_core::Posting;
    use jobmatch_core::messages::Explanation;

    fn found() -> MatchFound {
        MatchFound {
            subscription: "ada".into(),
            posting: Posting {
                id: "lever:x:1".into(),
                source: "x".into(),
                title: "Rust <script>alert(1)</script> Engineer".into(),
                company: "Ben & Jerry's".into(),
                locations: vec!["Berlin".into()],
                workplace: Workplace::Hybrid,
                url: "https://jobs.example.com/1?a=1&b=\"2\"".into(),
                description: "Use <b>Rust</b> & Tokio.".into(),
                tags: vec![],
                employment_type: None,
                salary: None,
                posted_at: None,
                updated_at: None,
                ..Default::default()
            },
            explanation: Explanation {
                score: 0.61,
                min_score: 0.35,
                matched_terms: vec!["rust".into()],
                missing_terms: vec!["kafka".into()],
                filters: vec!["location: berlin".into()],
            },
        }
    }

    #[test]
    fn html_escapes_everything_from_the_posting() {
        let html = html(&found());
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("Rust &lt;script&gt;alert(1)&lt;/script&gt; Engineer"));
        assert!(html.contains("Ben &amp; Jerry"));
        assert!(
            html.contains("href=\"https://jobs.example.com/1?a=1&amp;b=&quot;2&quot;\""),
            "{html}"
        );
        assert!(html.contains("Use &lt;b&gt;Rust&lt;/b&gt; &amp; Tokio."));
    }

    #[test]
    fn text_and_slack_carry_the_explanation() {
        let text = text(&found());
        assert!(text.contains("Similarity 0.61 (at least 0.35)"));
        assert!(text.contains("Missing: kafka"));
        assert!(text.contains("Hybrid · Berlin"));
        let slack = slack(&found());
        let first = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            first.contains("Ben &amp; Jerry's") && first.contains("&lt;script&gt;"),
            "{first}"
        );
        assert!(
            slack["blocks"][2]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .contains("Matched: rust")
        );
    }
}
