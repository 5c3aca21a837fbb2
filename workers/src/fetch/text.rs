//! Board text to clean plain text: HTML (sometimes entity-escaped twice over, as
//! Greenhouse serves it) to readable lines, whitespace folded.

/// Plain text of an HTML fragment. Links keep their text, not their URLs.
pub fn html_to_text(html: &str) -> String {
    let text = html2text::config::plain_no_decorate()
        .link_footnotes(false)
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), 10_000)
        .unwrap_or_else(|_| html.to_owned());
    fold_whitespace(&text)
}

/// Greenhouse's `content` is HTML whose markup is itself entity-escaped
/// (`&lt;p&gt;Build &amp;amp; ship&lt;/p&gt;`): unescape once, then convert.
pub fn escaped_html_to_text(escaped: &str) -> String {
    html_to_text(&html_escape::decode_html_entities(escaped))
}

/// Trims every line, drops runs of blank lines, and folds spaces within lines.
pub fn fold_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        blank = false;
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greenhouse_double_escaped_content_becomes_text() {
        let content = "&lt;p&gt;Build &amp;amp; ship &lt;strong&gt;Rust&lt;/strong&gt; services.&lt;/p&gt;&lt;ul&gt;&lt;li&gt;Kubernetes&lt;/li&gt;&lt;/ul&gt;";
        let text = escaped_html_to_text(content);
        assert!(text.contains("Build & ship Rust services."), "{text}");
        assert!(text.contains("Kubernetes"), "{text}");
        assert!(!text.contains('<') && !text.contains("&amp;"), "{text}");
    }

    #[test]
    fn whitespace_is_folded() {
        assert_eq!(fold_whitespace("  a   b \n\n\n  c\n"), "a b\n\nc");
    }

    #[test]
    fn deeply_nested_html_does_not_crash() {
        let html = "<div>".repeat(5_000) + "deep" + &"</div>".repeat(5_000);
        assert!(html_to_text(&html).contains("deep"));
    }
}
