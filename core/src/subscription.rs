//! `MatchSubscription`: a resume, what counts as a match, and where to say so.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `spec` of a `MatchSubscription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchSubscriptionSpec {
    pub resume: ResumeSpec,
    #[serde(default)]
    pub criteria: Criteria,
    pub notify: NotifySpec,
}

/// Where the resume text comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeSpec {
    /// The resume inline, as plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The resume in a key of a ConfigMap in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
    /// The resume in a key of a Secret in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
}

impl ResumeSpec {
    /// A resume given inline.
    pub fn inline(text: impl Into<String>) -> Self {
        ResumeSpec {
            text: Some(text.into()),
            config_map_key_ref: None,
            secret_key_ref: None,
        }
    }
}

/// Whether remote postings are wanted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RemotePolicy {
    /// Only remote postings.
    Required,
    /// Remote postings, and on-site or hybrid ones in `locations`.
    #[default]
    Allowed,
    /// Only on-site or hybrid postings in `locations`.
    Excluded,
}

/// What makes a posting a match for a subscription.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Criteria {
    #[serde(default)]
    pub remote: RemotePolicy,
    /// Places an on-site or hybrid posting must be in (case-insensitive substring of a
    /// posting location). Empty means anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// Terms that must all appear in the posting (whole words, case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_have: Vec<String>,
    /// Terms none of which may appear in the posting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_not_have: Vec<String>,
    /// Terms that are nice to have: reported as matched or missing in each match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred: Vec<String>,
    /// Cosine similarity between resume and posting below which nothing matches (0..1).
    #[serde(default = "default_min_score")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0, max = 1.0)))]
    pub min_score: f32,
    /// When a subscription is new or changed, notify at most this many of the jobs already
    /// stored (the best first).
    #[serde(default = "default_top_k")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    pub top_k: usize,
    /// Postings whose stated pay (their maximum, in the same currency, over the same
    /// period) is below this are out. A posting without a comparable salary passes
    /// unless `requireSalary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_salary: Option<SalaryFloor>,
    /// With `minSalary`: refuse postings that state no salary in its currency.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_salary: bool,
    /// Levels wanted; a posting of another level is out (one of unknown level passes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seniority: Vec<Seniority>,
    /// The candidate's working languages (ISO 639-1: `en`, `de`, …): a posting written
    /// in, or requiring, another language is out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "language_codes"))]
    pub languages: Vec<String>,
    /// Employment types wanted; a posting of another type is out (unknown passes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub employment_types: Vec<EmploymentType>,
    /// Where the candidate can work remotely from: countries (`uk`, `de`, `fr`, `us`,
    /// `ca`, …) or regions (`europe`, `emea`, `north-america`, `latam`, `americas`,
    /// `apac`). A remote posting restricted to regions none of these overlaps (`uk` and
    /// `europe` overlap, `uk` and `de` do not) is out; unrestricted remote postings pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "region_codes"))]
    pub remote_regions: Vec<String>,
}

/// `languages` in the CRD: the API server refuses a code jobmatch does not know.
#[cfg(feature = "schema")]
fn language_codes(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let codes: Vec<&str> = crate::languages::LANGUAGES.iter().map(|l| l.code).collect();
    schemars::json_schema!({"type": "array", "items": {"type": "string", "enum": codes}})
}

/// `remoteRegions` in the CRD, the same way.
#[cfg(feature = "schema")]
fn region_codes(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let codes: Vec<&str> = crate::places::REGIONS.iter().map(|r| r.code).collect();
    schemars::json_schema!({"type": "array", "items": {"type": "string", "enum": codes}})
}

/// A salary floor: an amount in a currency per period.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SalaryFloor {
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0)))]
    pub amount: f64,
    /// ISO 4217, e.g. `EUR`, `USD`, `GBP`.
    pub currency: String,
    #[serde(default)]
    pub period: SalaryPeriod,
}

/// What a salary amount is paid for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SalaryPeriod {
    #[default]
    Year,
    Month,
    Week,
    Day,
    Hour,
}

impl SalaryPeriod {
    /// The period a board's interval word names (`year`, `month`, `week`, `day`, `hour`).
    pub fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "year" => SalaryPeriod::Year,
            "month" => SalaryPeriod::Month,
            "week" => SalaryPeriod::Week,
            "day" => SalaryPeriod::Day,
            "hour" => SalaryPeriod::Hour,
            _ => return None,
        })
    }

    /// How many of these make a working year (12 months, 52 weeks, 260 days, 2,080
    /// hours): amounts of different periods are compared per year.
    pub fn per_year(self) -> f64 {
        match self {
            SalaryPeriod::Year => 1.0,
            SalaryPeriod::Month => 12.0,
            SalaryPeriod::Week => 52.0,
            SalaryPeriod::Day => 260.0,
            SalaryPeriod::Hour => 2080.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SalaryPeriod::Year => "year",
            SalaryPeriod::Month => "month",
            SalaryPeriod::Week => "week",
            SalaryPeriod::Day => "day",
            SalaryPeriod::Hour => "hour",
        }
    }
}

/// A posting's level, as the connectors normalize it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Seniority {
    Intern,
    Junior,
    Mid,
    Senior,
    Staff,
    Principal,
    Lead,
    Director,
}

impl Seniority {
    pub const ALL: [Seniority; 8] = [
        Seniority::Intern,
        Seniority::Junior,
        Seniority::Mid,
        Seniority::Senior,
        Seniority::Staff,
        Seniority::Principal,
        Seniority::Lead,
        Seniority::Director,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Seniority::Intern => "intern",
            Seniority::Junior => "junior",
            Seniority::Mid => "mid",
            Seniority::Senior => "senior",
            Seniority::Staff => "staff",
            Seniority::Principal => "principal",
            Seniority::Lead => "lead",
            Seniority::Director => "director",
        }
    }

    /// The level a posting's `seniority` names.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

/// A posting's employment type, as the connectors normalize it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EmploymentType {
    FullTime,
    PartTime,
    Contract,
    Temporary,
    Internship,
    Volunteer,
}

impl EmploymentType {
    pub const ALL: [EmploymentType; 6] = [
        EmploymentType::FullTime,
        EmploymentType::PartTime,
        EmploymentType::Contract,
        EmploymentType::Temporary,
        EmploymentType::Internship,
        EmploymentType::Volunteer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EmploymentType::FullTime => "full-time",
            EmploymentType::PartTime => "part-time",
            EmploymentType::Contract => "contract",
            EmploymentType::Temporary => "temporary",
            EmploymentType::Internship => "internship",
            EmploymentType::Volunteer => "volunteer",
        }
    }

    /// The type a posting's `employmentType` names.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == word)
    }
}

fn default_min_score() -> f32 {
    0.3
}

fn default_top_k() -> usize {
    20
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            remote: RemotePolicy::default(),
            locations: Vec::new(),
            must_have: Vec::new(),
            must_not_have: Vec::new(),
            preferred: Vec::new(),
            min_score: default_min_score(),
            top_k: default_top_k(),
            min_salary: None,
            require_salary: false,
            seniority: Vec::new(),
            languages: Vec::new(),
            employment_types: Vec::new(),
            remote_regions: Vec::new(),
        }
    }
}

/// Where and when to notify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackSpec>,
    #[serde(default)]
    pub schedule: Schedule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailSpec {
    /// The address notices go to.
    #[cfg_attr(feature = "schema", schemars(extend("format" = "email")))]
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackSpec {
    /// The Secret key that holds the incoming-webhook URL.
    pub webhook_secret_ref: SecretKeyRef,
}

/// A key of a Kubernetes `Secret` or `ConfigMap` in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRef {
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 253)))]
    pub name: String,
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 253)))]
    pub key: String,
}

/// The Secret key that holds a credential.
pub type SecretKeyRef = KeyRef;

/// When notices go out. Digests (daily/weekly) are planned; today every match is sent
/// as soon as it is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    #[default]
    Instant,
}

/// A notification channel with its secrets resolved: what the notifier sends to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Channel {
    Email {
        to: String,
    },
    Slack {
        #[serde(rename = "webhookUrl")]
        webhook_url: String,
    },
}

impl fmt::Debug for Channel {
    /// The webhook URL is a credential: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Email { to } => f.debug_struct("Email").field("to", to).finish(),
            Channel::Slack { .. } => f
                .debug_struct("Slack")
                .field("webhook_url", &"<redacted>")
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_defaults_apply() {
        let c: Criteria =
            serde_json::from_value(serde_json::json!({"locations": ["Berlin"]})).unwrap();
        assert_eq!(c.remote, RemotePolicy::Allowed);
        assert_eq!(c.min_score, 0.3);
        assert_eq!(c.top_k, 20);
    }

    #[test]
    fn unknown_criteria_field_is_refused_by_name() {
        let err =
            serde_json::from_value::<Criteria>(serde_json::json!({"minScroe": 0.5})).unwrap_err();
        assert!(err.to_string().contains("minScroe"), "{err}");
    }

    #[test]
    fn slack_webhook_is_redacted_in_debug() {
        let c = Channel::Slack {
            webhook_url: "https://hooks.slack.com/services/T/B/secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
