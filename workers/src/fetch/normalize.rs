//! Normalizing what boards write in many ways: places, seniority, employment types,
//! salaries in free text, dates, and text garbled by a wrong encoding.

use jobmatch_core::{Salary, Workplace};
use time::OffsetDateTime;

/// One line of text: entities decoded, mojibake repaired, whitespace folded.
pub fn clean_line(text: &str) -> String {
    let decoded = html_escape::decode_html_entities(text);
    repair_mojibake(&decoded)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads "Remote", "Hybrid" or "On-site" out of a free-text location.
pub fn workplace_from_location(location: &str) -> Option<Workplace> {
    let lower = location.to_lowercase();
    if lower.contains("hybrid") {
        Some(Workplace::Hybrid)
    } else if lower.contains("remote") || lower.contains("anywhere") || lower.contains("worldwide")
    {
        Some(Workplace::Remote)
    } else if lower.contains("on-site")
        || lower.contains("onsite")
        || lower.contains("on site")
        || lower.contains("in office")
        || lower.contains("in-office")
    {
        Some(Workplace::Onsite)
    } else {
        None
    }
}

/// The workplace a location implies: stated, else on-site when a place is named.
pub fn workplace_or_onsite(locations: &[String]) -> Workplace {
    locations
        .iter()
        .find_map(|l| workplace_from_location(l))
        .unwrap_or(if locations.is_empty() {
            Workplace::Unknown
        } else {
            Workplace::Onsite
        })
}

/// A board's workplace word (`remote`, `Hybrid`, `OnSite`, `on-site`, `TELECOMMUTE`).
pub fn workplace_word(word: &str) -> Option<Workplace> {
    match squash(word).as_str() {
        "remote" | "telecommute" | "fullyremote" => Some(Workplace::Remote),
        "hybrid" => Some(Workplace::Hybrid),
        "onsite" | "office" | "inoffice" | "inperson" => Some(Workplace::Onsite),
        _ => None,
    }
}

/// Lower-case letters and digits only: `Full-Time`, `full_time`, `FULL TIME` → `fulltime`.
fn squash(word: &str) -> String {
    word.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// One spelling of an employment type: `full-time`, `part-time`, `contract`,
/// `temporary`, `internship`, `volunteer`; unknown words are kept, lower-cased.
pub fn employment_type(word: &str) -> Option<String> {
    let squashed = squash(word);
    let known = match squashed.as_str() {
        "" => return None,
        "fulltime" | "permanent" | "festanstellung" | "vollzeit" => "full-time",
        "parttime" | "teilzeit" => "part-time",
        "contract" | "contractor" | "freelance" | "contracttohire" => "contract",
        "temporary" | "temp" | "seasonal" => "temporary",
        "intern" | "internship" | "praktikum" | "werkstudent" | "workingstudent" => "internship",
        "volunteer" => "volunteer",
        _ => return Some(word.trim().to_lowercase()),
    };
    Some(known.to_owned())
}

/// Seniority from a board's level (`Mid-Senior level`, `entry_level`) or a title.
pub fn seniority(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    let level = if has("intern") || has("internship") || has("trainee") {
        "intern"
    } else if has("director") || has("head") || has("vp") {
        "director"
    } else if has("principal") || has("distinguished") {
        "principal"
    } else if has("staff") {
        "staff"
    } else if has("lead") || has("manager") {
        "lead"
    } else if has("senior") || has("sr") || has("iii") {
        "senior"
    } else if has("junior") || has("jr") || has("entry") || has("graduate") || has("associate") {
        "junior"
    } else if has("mid") || has("intermediate") || has("ii") {
        "mid"
    } else {
        return None;
    };
    Some(level.to_owned())
}

/// A salary interval in one spelling: `year`, `month`, `week`, `day`, `hour`.
pub fn salary_interval(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let interval = if lower.contains("year") || lower.contains("annual") || lower.contains("yr") {
        "year"
    } else if lower.contains("month") {
        "month"
    } else if lower.contains("week") {
        "week"
    } else if lower.contains("day") || lower.contains("daily") {
        "day"
    } else if lower.contains("hour") || lower.contains("/hr") || lower.contains("hr") {
        "hour"
    } else {
        return None;
    };
    Some(interval.to_owned())
}

/// A salary range out of free text: `$120k - $150k`, `€60,000–80,000 per year`,
/// `USD 50/hr`, `100K-130K GBP`. `None` when no amount is found.
pub fn salary_from_text(text: &str) -> Option<Salary> {
    let currency = currency_in(text);
    let mut amounts = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() && amounts.len() < 2 {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut number = String::new();
        while i < chars.len()
            && (chars[i].is_ascii_digit() || matches!(chars[i], ',' | '.' | '\'' | ' '))
        {
            // A space only inside a number: `60 000`.
            if chars[i] == ' '
                && !(i + 1 < chars.len() && chars[i + 1].is_ascii_digit() && number.len() <= 3)
            {
                break;
            }
            number.push(chars[i]);
            i += 1;
        }
        let number = number.trim().trim_end_matches(['.', ',']);
        let digits: String =
            if number.contains('.') && number.rsplit('.').next().is_some_and(|d| d.len() != 3) {
                // A decimal point (`52.50`), not a thousands separator.
                number.replace([',', '\'', ' '], "")
            } else {
                number.replace([',', '.', '\'', ' '], "")
            };
        let Ok(mut value) = digits.parse::<f64>() else {
            continue;
        };
        if i < chars.len() && matches!(chars[i], 'k' | 'K') {
            value *= 1000.0;
            i += 1;
        }
        amounts.push(value);
    }
    let (&min, max) = (amounts.first()?, amounts.get(1).copied());
    // A range written `120-150k` means thousands on both ends.
    let min = match max {
        Some(max) if min < 1000.0 && max >= 1000.0 && min * 1000.0 <= max => min * 1000.0,
        _ => min,
    };
    let interval = salary_interval(text).or_else(|| {
        // Without a word: amounts over 1,000 are yearly, small ones hourly.
        Some(if min >= 1000.0 { "year" } else { "hour" }.to_owned())
    });
    Some(Salary {
        min: Some(min),
        max: max.or(Some(min)),
        currency,
        interval,
    })
}

fn currency_in(text: &str) -> Option<String> {
    let upper = text.to_uppercase();
    for code in [
        "USD", "EUR", "GBP", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "PLN", "INR", "JPY", "SGD",
    ] {
        if upper.contains(code) {
            return Some(code.to_owned());
        }
    }
    let symbol = if text.contains('€') {
        "EUR"
    } else if text.contains('£') {
        "GBP"
    } else if text.contains('$') {
        "USD"
    } else {
        return None;
    };
    Some(symbol.to_owned())
}

/// Text that was UTF-8, decoded as Windows-1252 and encoded as UTF-8 again
/// (`Zürich` → `ZÃ¼rich`, `it’s` → `itâ€™s`) turned back; other text unchanged.
pub fn repair_mojibake(text: &str) -> std::borrow::Cow<'_, str> {
    // Every such sequence starts with a lead byte read as one of these.
    if !text.contains(['Ã', 'Â', 'â', 'Ð', 'Ñ', 'Å', 'Ä', 'Ã']) {
        return text.into();
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    if unmappable {
        return text.into();
    }
    match String::from_utf8(bytes.into_owned()) {
        Ok(repaired) if repaired.chars().count() < text.chars().count() => repaired.into(),
        _ => text.into(),
    }
}

/// Seconds since the epoch, as some boards write times.
pub fn from_epoch_seconds(seconds: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

/// Milliseconds since the epoch (Lever).
pub fn from_epoch_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// An RFC 3339 time, a date-time without offset (taken as UTC), or a bare date.
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    if let Ok(t) = time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(t.assume_utc());
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(t);
    }
    let date = time::Date::parse(
        text.get(..10)?,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    Some(date.midnight().assume_utc())
}

/// Keeps the first of each location, dropping empty ones and ones already named as
/// part of another (`Berlin` beside `Berlin, Germany`, `Europe` beside `Remote - Europe`).
pub fn unique_locations(locations: impl IntoIterator<Item = String>) -> Vec<String> {
    let parts = |l: &str| -> Vec<String> {
        l.split([',', '-', '–', '/', '(', ')', ';', '|'])
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let mut out: Vec<String> = Vec::new();
    for location in locations {
        let location = clean_line(&location);
        let lower = location.to_lowercase();
        let known = out
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&location) || parts(l).contains(&lower));
        if !location.is_empty() && !known {
            out.push(location);
        }
    }
    out
}

/// Trims tags and drops empty and repeated ones (case-insensitive), keeping order.
pub fn unique_tags(tags: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    tags.retain_mut(|t| {
        *t = clean_line(t);
        !t.is_empty() && seen.insert(t.to_lowercase())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salaries_in_free_text() {
        let s = salary_from_text("$120k - $150k").unwrap();
        assert_eq!(
            (s.min, s.max, s.currency.as_deref(), s.interval.as_deref()),
            (Some(120_000.0), Some(150_000.0), Some("USD"), Some("year"))
        );
        let s = salary_from_text("€60,000–80,000 per year").unwrap();
        assert_eq!(
            (s.min, s.max, s.currency.as_deref()),
            (Some(60_000.0), Some(80_000.0), Some("EUR"))
        );
        let s = salary_from_text("USD 52.50/hr").unwrap();
        assert_eq!((s.min, s.interval.as_deref()), (Some(52.5), Some("hour")));
        let s = salary_from_text("100-130K GBP").unwrap();
        assert_eq!(
            (s.min, s.max, s.currency.as_deref()),
            (Some(100_000.0), Some(130_000.0), Some("GBP"))
        );
        assert_eq!(salary_from_text("competitive"), None);
    }

    #[test]
    fn mojibake_is_repaired_and_clean_text_kept() {
        assert_eq!(repair_mojibake("ZÃ¼rich"), "Zürich");
        assert_eq!(repair_mojibake("itâ€™s"), "it’s");
        assert_eq!(repair_mojibake("Zürich"), "Zürich");
        assert_eq!(repair_mojibake("São Paulo, Ñandú"), "São Paulo, Ñandú");
    }

    #[test]
    fn levels_types_and_places() {
        assert_eq!(seniority("Sr. Backend Engineer").as_deref(), Some("senior"));
        assert_eq!(
            seniority("Staff Engineer, Platform").as_deref(),
            Some("staff")
        );
        assert_eq!(seniority("Engineering Intern").as_deref(), Some("intern"));
        assert_eq!(seniority("Backend Engineer"), None);
        assert_eq!(employment_type("FullTime").as_deref(), Some("full-time"));
        assert_eq!(employment_type("full_time").as_deref(), Some("full-time"));
        assert_eq!(employment_type("Contractor").as_deref(), Some("contract"));
        assert_eq!(workplace_word("OnSite"), Some(Workplace::Onsite));
        assert_eq!(
            workplace_from_location("Remote - Europe"),
            Some(Workplace::Remote)
        );
        assert_eq!(
            parse_time("2026-11-02T10:11:12").unwrap().unix_timestamp(),
            1_793_614_272
        );
        assert_eq!(
            parse_time("2026-11-02").unwrap().unix_timestamp(),
            1_793_577_600
        );
    }
}
