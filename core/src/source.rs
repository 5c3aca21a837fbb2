//! `JobSource`: a board to poll, how often, and what to keep.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which board, and its identity on that board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Board {
    /// `GET /v1/boards/{token}/jobs?content=true`
    Greenhouse { token: String },
    /// `GET /v0/postings/{site}?mode=json`; `region: eu` uses Lever's EU host.
    Lever {
        site: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<LeverRegion>,
    },
    /// `GET /posting-api/job-board/{name}?includeCompensation=true`
    Ashby { name: String },
    /// `GET /v1/companies/{company}/postings`, then each posting's detail.
    SmartRecruiters { company: String },
    /// `GET /api/v1/widget/accounts/{account}?details=true`
    Workable { account: String },
    /// `GET /api`: every remote job on remoteok.com.
    RemoteOk {},
    /// `GET /api/remote-jobs`, optionally one `category`. Remotive allows 4 polls a day.
    Remotive {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
    },
    /// `GET /api/job-board-api?page=N`
    Arbeitnow {},
    /// The month's Hacker News "Ask HN: Who is hiring?" thread, through the Algolia API.
    HackerNews {},
    /// An RSS or Atom feed of job postings.
    Feed {
        url: String,
        /// The employer, when the feed is one company's (otherwise read from each entry).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        company: Option<String>,
    },
    /// A career page carrying schema.org `JobPosting` JSON-LD.
    CareerPage {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        company: Option<String>,
    },
}

/// One board kind as YAML writes it, the fields it requires, and the fields it allows.
pub struct BoardKind {
    pub kind: &'static str,
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
}

/// Every board kind: the operator derives the CRD's per-kind rules from this table.
pub const BOARD_KINDS: &[BoardKind] = &[
    BoardKind {
        kind: "greenhouse",
        required: &["token"],
        optional: &[],
    },
    BoardKind {
        kind: "lever",
        required: &["site"],
        optional: &["region"],
    },
    BoardKind {
        kind: "ashby",
        required: &["name"],
        optional: &[],
    },
    BoardKind {
        kind: "smartrecruiters",
        required: &["company"],
        optional: &[],
    },
    BoardKind {
        kind: "workable",
        required: &["account"],
        optional: &[],
    },
    BoardKind {
        kind: "remoteok",
        required: &[],
        optional: &[],
    },
    BoardKind {
        kind: "remotive",
        required: &[],
        optional: &["category"],
    },
    BoardKind {
        kind: "arbeitnow",
        required: &[],
        optional: &[],
    },
    BoardKind {
        kind: "hackernews",
        required: &[],
        optional: &[],
    },
    BoardKind {
        kind: "feed",
        required: &["url"],
        optional: &["company"],
    },
    BoardKind {
        kind: "careerpage",
        required: &["url"],
        optional: &["company"],
    },
];

/// Every field any board kind has, besides `kind`.
pub const BOARD_FIELDS: &[&str] = &[
    "token", "site", "region", "name", "company", "account", "category", "url",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum LeverRegion {
    Global,
    Eu,
}

impl Board {
    /// The board kind as it is written in YAML (`greenhouse`, `lever`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Board::Greenhouse { .. } => "greenhouse",
            Board::Lever { .. } => "lever",
            Board::Ashby { .. } => "ashby",
            Board::SmartRecruiters { .. } => "smartrecruiters",
            Board::Workable { .. } => "workable",
            Board::RemoteOk {} => "remoteok",
            Board::Remotive { .. } => "remotive",
            Board::Arbeitnow {} => "arbeitnow",
            Board::HackerNews {} => "hackernews",
            Board::Feed { .. } => "feed",
            Board::CareerPage { .. } => "careerpage",
        }
    }

    /// Who the postings belong to on the board: the company's token, site, name or
    /// account; the site for aggregators; the host of a feed or career page. The middle
    /// part of every posting id.
    pub fn identity(&self) -> String {
        match self {
            Board::Greenhouse { token } => token.clone(),
            Board::Lever { site, .. } => site.clone(),
            Board::Ashby { name } => name.clone(),
            Board::SmartRecruiters { company } => company.clone(),
            Board::Workable { account } => account.clone(),
            Board::RemoteOk {} => "remoteok.com".to_owned(),
            Board::Remotive { .. } => "remotive.com".to_owned(),
            Board::Arbeitnow {} => "arbeitnow.com".to_owned(),
            Board::HackerNews {} => "whoishiring".to_owned(),
            Board::Feed { url, .. } | Board::CareerPage { url, .. } => url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default(),
        }
    }

    /// The public API base URL, used when the source sets no `baseUrl`. Feeds and
    /// career pages are fetched from their own `url`.
    pub fn default_base_url(&self) -> &'static str {
        match self {
            Board::Greenhouse { .. } => "https://boards-api.greenhouse.io",
            Board::Lever {
                region: Some(LeverRegion::Eu),
                ..
            } => "https://api.eu.lever.co",
            Board::Lever { .. } => "https://api.lever.co",
            Board::Ashby { .. } => "https://api.ashbyhq.com",
            Board::SmartRecruiters { .. } => "https://api.smartrecruiters.com",
            Board::Workable { .. } => "https://apply.workable.com",
            Board::RemoteOk {} => "https://remoteok.com",
            Board::Remotive { .. } => "https://remotive.com",
            Board::Arbeitnow {} => "https://www.arbeitnow.com",
            Board::HackerNews {} => "https://hn.algolia.com",
            Board::Feed { .. } | Board::CareerPage { .. } => "",
        }
    }

    /// The shortest interval the board's terms allow (Remotive: 4 requests a day).
    pub fn min_interval(&self) -> Duration {
        match self {
            Board::Remotive { .. } => Duration::from_secs(6 * 3600),
            _ => MIN_INTERVAL,
        }
    }
}

/// A Kubernetes structural schema cannot hold a tagged enum as such: one object with
/// every field and the kind as an enum (the operator adds which fields each kind needs,
/// from [`BOARD_KINDS`]).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Board {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Board".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let kinds: Vec<&str> = BOARD_KINDS.iter().map(|k| k.kind).collect();
        let text = |description: &str| serde_json::json!({"description": description, "type": "string", "minLength": 1, "maxLength": 200});
        let url = |description: &str| serde_json::json!({"description": description, "type": "string", "maxLength": 2000, "pattern": "^https?://[^\\s]+$"});
        schemars::json_schema!({
            "description": "Which board, and the company's identity on it.",
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"type": "string", "enum": kinds},
                "token": text("greenhouse: the board token (boards.greenhouse.io/<token>)."),
                "site": text("lever: the site (jobs.lever.co/<site>)."),
                "region": {
                    "description": "lever: `eu` polls Lever's EU host.",
                    "type": "string", "enum": ["global", "eu"]
                },
                "name": text("ashby: the job board name (jobs.ashbyhq.com/<name>)."),
                "company": text("smartrecruiters: the company identifier (jobs.smartrecruiters.com/<company>); feed, careerpage: the employer's name."),
                "account": text("workable: the account (apply.workable.com/<account>)."),
                "category": text("remotive: only this category (e.g. software-dev)."),
                "url": url("feed: the RSS or Atom feed; careerpage: the page carrying JobPosting JSON-LD.")
            }
        })
    }
}

/// The `spec` of a `JobSource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSourceSpec {
    pub board: Board,
    /// Overrides the board's public API host (tests, proxies, mirrors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("pattern" = "^https?://[^\\s]+$")))]
    pub base_url: Option<String>,
    /// How often to poll, e.g. `5m`, `1h`, `30s` (at least 1s).
    #[serde(default = "default_interval", with = "humantime_serde_compat")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "String", extend("pattern" = "^([0-9]{1,9}(ms|s|m|h|d) ?)+$"))
    )]
    pub interval: Duration,
    /// Keep only postings whose title contains one of these (case-insensitive); empty keeps all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub title_includes: Vec<String>,
    /// Stop polling without deleting the source.
    #[serde(default)]
    pub suspend: bool,
}

fn default_interval() -> Duration {
    Duration::from_secs(15 * 60)
}

/// The shortest interval accepted: boards are polled politely.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl JobSourceSpec {
    /// The API base URL this source polls.
    pub fn base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or_else(|| self.board.default_base_url())
            .trim_end_matches('/')
    }

    /// Whether a posting title passes `titleIncludes`.
    pub fn keeps_title(&self, title: &str) -> bool {
        if self.title_includes.is_empty() {
            return true;
        }
        let title = title.to_lowercase();
        self.title_includes
            .iter()
            .any(|needle| title.contains(&needle.to_lowercase()))
    }
}

/// `interval: 5m` in YAML, a `Duration` in Rust.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| D::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_reads_the_documented_yaml_shape() {
        let spec: JobSourceSpec = serde_json::from_value(serde_json::json!({
            "board": {"kind": "lever", "site": "globex", "region": "eu"},
            "interval": "5m",
            "titleIncludes": ["engineer"]
        }))
        .unwrap();
        assert_eq!(spec.interval, Duration::from_secs(300));
        assert_eq!(spec.base_url(), "https://api.eu.lever.co");
        assert!(spec.keeps_title("Senior Engineer"));
        assert!(!spec.keeps_title("Accountant"));
    }

    #[test]
    fn bad_interval_names_the_value() {
        let err = serde_json::from_value::<JobSourceSpec>(serde_json::json!({
            "board": {"kind": "greenhouse", "token": "acme"},
            "interval": "soon"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("\"soon\""), "{err}");
    }

    #[test]
    fn base_url_override_drops_trailing_slash() {
        let spec: JobSourceSpec = serde_json::from_value(serde_json::json!({
            "board": {"kind": "greenhouse", "token": "acme"},
            "baseUrl": "http://127.0.0.1:8089/"
        }))
        .unwrap();
        assert_eq!(spec.base_url(), "http://127.0.0.1:8089");
        assert_eq!(spec.interval, Duration::from_secs(900));
    }
}
