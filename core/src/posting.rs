//! The one normalized shape of a job posting, whatever board it came from.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::digest_hex;

/// Where the work happens.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Workplace {
    Remote,
    Hybrid,
    Onsite,
    #[default]
    Unknown,
}

/// A salary range as the board states it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Salary {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub currency: Option<String>,
    /// `year`, `month`, `hour`... as the board says it.
    pub interval: Option<String>,
}

/// A job posting, normalized.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Posting {
    /// `board:identity:native-id`, e.g. `greenhouse:acme:4012345`.
    pub id: String,
    /// Name of the `JobSource` that produced it.
    pub source: String,
    pub title: String,
    pub company: String,
    pub locations: Vec<String>,
    pub workplace: Workplace,
    pub url: String,
    /// Plain text, HTML removed.
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employment_type: Option<String>,
    /// `intern`, `junior`, `mid`, `senior`, `staff`, `principal`, `lead` or `director`:
    /// as the board states it, else read from the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seniority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salary: Option<Salary>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub posted_at: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub updated_at: Option<OffsetDateTime>,
    /// The posting disappeared from its board: it is no longer open.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
    /// An earlier posting (another id) with nearly the same description: a re-post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repost_of: Option<String>,
}

impl Posting {
    /// Digest of everything that, when it changes, makes the posting an update that must
    /// be re-embedded and re-matched. Board timestamps are left out: some boards bump
    /// `updated_at` without changing anything a reader sees.
    pub fn content_hash(&self) -> String {
        let locations = self.locations.join("\n");
        let workplace = format!("{:?}", self.workplace);
        let terms = format!(
            "{:?}|{:?}|{:?}|{}",
            self.employment_type, self.seniority, self.salary, self.closed
        );
        digest_hex(&[
            self.title.as_bytes(),
            self.company.as_bytes(),
            locations.as_bytes(),
            workplace.as_bytes(),
            self.url.as_bytes(),
            self.description.as_bytes(),
            terms.as_bytes(),
        ])
    }

    /// The text the embedder sees: title, company, place and description.
    pub fn embedding_text(&self) -> String {
        format!(
            "{} at {}. {}. {}",
            self.title,
            self.company,
            self.locations.join("; "),
            self.description
        )
    }

    /// Everything a term criterion is checked against, lower-cased.
    pub fn searchable_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.title,
            self.company,
            self.description,
            self.tags.join(" ")
        )
        .to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting() -> Posting {
        Posting {
            id: "greenhouse:acme:1".into(),
            source: "acme".into(),
            title: "Rust Engineer".into(),
            company: "Acme".into(),
            locations: vec!["Berlin".into()],
            workplace: Workplace::Hybrid,
            url: "https://example.com/1".into(),
            description: "Build things.".into(),
            tags: vec![],
            employment_type: None,
            seniority: None,
            salary: None,
            posted_at: None,
            updated_at: None,
            closed: false,
            repost_of: None,
        }
    }

    #[test]
    fn content_hash_ignores_timestamps_but_not_text() {
        let a = posting();
        let mut b = posting();
        b.updated_at = Some(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(a.content_hash(), b.content_hash());
        b.description.push('!');
        assert_ne!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn json_round_trip_uses_camel_case_and_rfc3339() {
        let mut p = posting();
        p.posted_at = Some(time::macros::datetime!(2026-11-01 12:00 UTC));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["postedAt"], "2026-11-01T12:00:00Z");
        assert_eq!(json["workplace"], "hybrid");
        let back: Posting = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }
}
